"""Fixtures shared by test folders."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def file_events(monkeypatch):
    """The fsyncs, renames and links made during a test, in order: ``fsync file``, ``fsync folder``,
    ``replace onto NAME``, ``link onto NAME`` (the real calls still run)."""
    events: list[str] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(descriptor):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        real_fsync(descriptor)

    def replace(source, target):
        events.append(f"replace onto {os.path.basename(target)}")
        real_replace(source, target)

    def link(source, target, **options):
        events.append(f"link onto {os.path.basename(target)}")
        real_link(source, target, **options)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    return events
