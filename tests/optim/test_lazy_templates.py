"""Inductor's kernel templates compile lazily when the generated kernel imports inductor first
(:func:`descentlab.optim._hoisting._compile_fx`): the same text rendered, nothing compiled until used, and
inductor's own method back in place afterwards."""

from __future__ import annotations

import subprocess
import sys

import jinja2
import pytest

from descentlab.optim import _hoisting

common = pytest.importorskip("torch._inductor.codegen.common", reason="this torch has no inductor")

SOURCE = "def {{ name }}():\n{{ body | indent_except_first(1) }}\n"


def test_a_lazy_template_renders_what_inductor_compiles():
    original = common.KernelTemplate._template_from_string
    lazy = _hoisting._LazyTemplate(original, SOURCE)
    assert lazy._template is None  # nothing compiled yet
    arguments = {"name": "kernel", "body": "x = 1\nreturn x"}
    assert lazy.render(**arguments) == original(SOURCE).render(**arguments)
    assert isinstance(lazy._template, jinja2.Template)
    assert lazy.render(name="other", body="pass") == "def other():\npass"  # jinja2 drops the final newline


def test_a_lazy_template_forwards_other_attributes_and_refuses_private_ones():
    lazy = _hoisting._LazyTemplate(common.KernelTemplate._template_from_string, "{{ a }}")
    assert lazy.environment is lazy._compiled().environment
    with pytest.raises(AttributeError):
        lazy._not_an_attribute  # noqa: B018


FRESH_PROCESS = """
from torch._inductor.codegen import common
original = common.KernelTemplate._template_from_string
from descentlab.optim import _hoisting
_hoisting._compile_fx()
from torch._inductor.select_algorithm import TritonTemplate
templates = [template.template for template in TritonTemplate.all_templates.values()]
lazy = [template for template in templates if isinstance(template, _hoisting._LazyTemplate)]
compiled = [template for template in lazy if template._template is not None]
restored = common.KernelTemplate._template_from_string is original
print(len(templates), len(lazy), len(compiled), restored, type(lazy[0]._compiled()).__name__)
"""


def test_inductor_imported_by_the_backend_defines_its_templates_uncompiled():
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    total, lazy, compiled, restored, first = completed.stdout.split()
    assert int(total) > 0 and int(lazy) == int(total), completed.stdout
    assert int(compiled) == 0 and restored == "True" and first == "Template", completed.stdout
