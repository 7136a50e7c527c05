"""Inductor's CPU vector-ISA checks, remembered on disk, so that a fresh process does not probe again.

Before inductor compiles, or loads from its cache, the first C++ kernel of a process, it checks which
vector ISAs this machine can build and load (AMX, AVX512 with VNNI and BF16, AVX2): for each one it builds a
small test library and spawns a Python subprocess that loads it, ten subprocesses on an AMX Xeon, which
cost 1.6-2.9 s of the generated kernel's first step in every process even with every cache warm
(``benchmarks/results/generated_kernel.md``). A verdict is a fact of the machine and its toolchain, so
:func:`remembered_isa_checks` keeps every check that passed in a file in inductor's cache folder, keyed by
everything the check depends on (the torch build and interpreter, the compiler, the ISA's flags, the test
code, the CPU's flags, the host, the loader path); a later process with the same key takes the verdict
instead of probing. A failed check is never remembered (it may have timed out): it runs again next time.
Torch's own switch ``TORCHINDUCTOR_VEC_ISA_OK=1`` skips the base checks without having run them; this
skips a check only where it passed before, on this machine, with this toolchain.

It patches torch 2.x's ``VecISA.check_build`` only while a generated kernel is being compiled (the
``with`` block; nested and concurrent blocks share one patch) and restores it after; a torch without that
method is left alone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from descentlab.atomic import write_text

FILE_NAME = "descentlab-vec-isa-checks.json"

_lock = threading.Lock()
_depth = 0  # open remembered_isa_checks blocks
_original: Any = None  # torch's VecISA.check_build while patched


@contextlib.contextmanager
def remembered_isa_checks() -> Iterator[None]:
    """Within the block, inductor's ISA checks that passed before on this machine are not run again."""
    global _depth, _original
    try:
        from torch._inductor import cpu_vec_isa
    except ImportError:  # no inductor: nothing to check
        cpu_vec_isa = None
    patchable = cpu_vec_isa is not None and callable(getattr(cpu_vec_isa.VecISA, "check_build", None))
    if patchable:
        with _lock:
            if _depth == 0:
                _original = cpu_vec_isa.VecISA.check_build
                cpu_vec_isa.VecISA.check_build = _remembered_check_build
            _depth += 1
    try:
        yield
    finally:
        if patchable:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    cpu_vec_isa.VecISA.check_build = _original
                    _original = None


def _remembered_check_build(isa: Any, code: str) -> bool:
    """``VecISA.check_build`` (build the test ``code`` with ``isa``'s flags and load it), skipped where
    the same check passed before."""
    key = _key(isa, code)
    path = _memo_path()
    if key is not None and key in _read(path):
        return True
    passed = bool(_original(isa, code))
    if passed and key is not None:
        with _lock:  # read again: another process may have added its own verdicts meanwhile
            verdicts = _read(path)
            verdicts[key] = f"{isa} {isa.build_arch_flags()}".strip()
            # A folder we cannot write: the next process probes again, nothing else changes.
            with contextlib.suppress(OSError):
                write_text(path, json.dumps(verdicts, indent=1, sort_keys=True), parents=True)
    return passed


def _key(isa: Any, code: str) -> str | None:
    """What the check's verdict depends on, hashed; ``None`` where inductor finds no compiler (the check
    itself will fail, and is not remembered)."""
    try:
        compiler = _compiler()
    except Exception:  # inductor's InvalidCxxCompiler, or whatever its search raises
        return None
    parts = [
        torch.__version__,
        torch.version.git_version,
        os.path.dirname(torch.__file__),
        sys.executable,
        compiler,
        str(isa),
        isa.build_arch_flags(),
        code,
        _cpu_flags(),
        socket.gethostname(),
        os.environ.get("LD_LIBRARY_PATH", ""),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _compiler() -> str:
    from torch._inductor import cpp_builder

    return str(cpp_builder.get_cpp_compiler())  # follows inductor's config.cpp.cxx


@functools.cache
def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _memo_path() -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / FILE_NAME


def _read(path: Path) -> dict[str, str]:
    try:
        verdicts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: probe (and rewrite it)
        return {}
    return verdicts if isinstance(verdicts, dict) else {}
