"""Inductor's toolchain probes remembered on disk (optim/_remembered_probes.py): its vector-ISA checks
and its precompiled header's validation.

The unit tests stand counting functions in for torch's (no compiler needed); the end-to-end test runs the
generated kernel in two fresh processes sharing an inductor cache folder and counts the ISA probe
subprocesses and the header validations: some in the first, none in the second, which still runs the kernel.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from descentlab.optim import _remembered_probes

cpu_vec_isa = pytest.importorskip("torch._inductor.cpu_vec_isa", reason="this torch has no inductor")
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")


@pytest.fixture
def counted_checks(monkeypatch, tmp_path):
    """torch's check replaced by one that passes for code "ok", fails otherwise, and counts its calls."""
    calls: list[str] = []

    def check_build(isa, code):
        calls.append(code)
        return code == "ok"

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", check_build)
    # No checks ahead of inductor's: they would cache these verdicts in torch's own ISA objects.
    monkeypatch.setattr(_remembered_probes, "_check_isas_at_once", lambda: None)
    return calls


def test_a_passed_check_is_remembered_and_a_failed_one_is_not(counted_checks, tmp_path):
    isa = cpu_vec_isa.VecAVX2()
    with _remembered_probes.remembered_probes():
        assert [isa.check_build("ok"), isa.check_build("ok")] == [True, True]
        assert [isa.check_build("bad"), isa.check_build("bad")] == [False, False]
    assert counted_checks == ["ok", "bad", "bad"]
    verdicts = json.loads((tmp_path / _remembered_probes.FILE_NAME).read_text())
    assert list(verdicts.values()) == ["avx2 -mavx2 -mfma -mf16c"]
    with _remembered_probes.remembered_probes():  # a later block (or process) reads the file
        assert isa.check_build("ok")
    assert counted_checks == ["ok", "bad", "bad"]


def test_the_patch_lives_only_inside_the_block(counted_checks):
    isa = cpu_vec_isa.VecAVX2()
    with _remembered_probes.remembered_probes():
        with _remembered_probes.remembered_probes():  # nested: one patch
            isa.check_build("ok")
        isa.check_build("ok")  # still patched: remembered
    assert counted_checks == ["ok"]
    isa.check_build("ok")  # torch's own check again
    assert counted_checks == ["ok", "ok"]


def test_a_folder_that_cannot_be_written_only_costs_the_probe(counted_checks, tmp_path):
    (
        tmp_path / _remembered_probes.FILE_NAME
    ).mkdir()  # the file's name taken by a folder: reads and writes fail
    isa = cpu_vec_isa.VecAVX2()
    with _remembered_probes.remembered_probes():
        assert isa.check_build("ok") and isa.check_build("ok")
    assert counted_checks == ["ok", "ok"]


class _SlowIsa:
    """An ISA whose check takes 0.3 s and records when it ran."""

    def __init__(self, name: str, spans: dict) -> None:
        self.name, self.spans = name, spans

    def __str__(self) -> str:
        return self.name

    def __bool__(self) -> bool:
        start = time.monotonic()
        time.sleep(0.3)
        self.spans[self.name] = (start, time.monotonic())
        return True


def test_the_cpus_isas_are_checked_at_once_before_inductor_asks(monkeypatch):
    spans: dict[str, tuple[float, float]] = {}
    isas = [_SlowIsa(name, spans) for name in ("avx512 amx_tile", "avx512", "avx2", "sve256")]
    listing = functools.cache(lambda: [isa for isa in isas if isa])  # inductor's list, not yet asked for
    monkeypatch.setattr(cpu_vec_isa, "supported_vec_isa_list", isas)
    monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", listing)
    monkeypatch.setattr(cpu_vec_isa, "x86_isa_checker", lambda: ["avx2", "avx512", "amx_tile"])
    monkeypatch.setattr(_remembered_probes.platform, "machine", lambda: "x86_64")
    with _remembered_probes.remembered_probes():
        pass
    assert sorted(spans) == ["avx2", "avx512", "avx512 amx_tile"]  # the CPU has no sve256
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values())  # overlapping
    spans.clear()
    listing()  # once inductor has its list (here: after a call), nothing is checked again ahead of it
    with _remembered_probes.remembered_probes():
        pass
    assert sorted(spans) == ["avx2", "avx512", "avx512 amx_tile", "sve256"]  # only the listing's own calls


@pytest.fixture
def counted_headers(monkeypatch, tmp_path):
    """torch's header validation replaced by one that writes a header and its precompiled file under
    ``tmp_path`` (named by its arguments) and counts its calls."""
    from torch._inductor import codecache

    calls: list[str] = []

    def precompile_header(header, command_line, **options):
        calls.append(command_line)
        path = tmp_path / f"{abs(hash((header, command_line, str(sorted(options.items())))))}.h"
        path.write_text(f"#include <{header}>\n")
        path.with_name(path.name + ".gch").write_text("precompiled")
        return str(path)

    monkeypatch.setattr(codecache, "_HEADER_DIR", str(tmp_path))
    monkeypatch.setattr(codecache, "_precompile_header", precompile_header)
    return calls


@needs_compiler
def test_a_validated_header_is_remembered_while_its_precompiled_file_exists(counted_headers, tmp_path):
    from torch._inductor import codecache

    with _remembered_probes.remembered_probes():
        first = codecache._precompile_header("a.h", "g++ -O3", min_optimize=False)
        assert codecache._precompile_header("a.h", "g++ -O3", min_optimize=False) == first
        other = codecache._precompile_header("a.h", "g++ -O1", min_optimize=False)  # other flags: validated
    assert counted_headers == ["g++ -O3", "g++ -O1"] and other != first
    answers = json.loads((tmp_path / _remembered_probes.HEADER_FILE_NAME).read_text())
    assert sorted(answers.values()) == sorted([first, other])
    _remembered_probes._headers.clear()  # as a fresh process: only the file remembers
    with _remembered_probes.remembered_probes():
        assert codecache._precompile_header("a.h", "g++ -O3", min_optimize=False) == first
        os.remove(first + ".gch")  # its precompiled file gone: validated (and rebuilt) again
        assert codecache._precompile_header("a.h", "g++ -O3", min_optimize=False) == first
    assert counted_headers == ["g++ -O3", "g++ -O1", "g++ -O3"]
    codecache._precompile_header("a.h", "g++ -O3", min_optimize=False)  # outside the block: torch's own
    assert len(counted_headers) == 4


@needs_compiler
def test_another_compiler_is_checked_again_and_none_is_never_remembered(counted_checks):
    import torch._inductor.config as config

    isa = cpu_vec_isa.VecAVX2()
    with _remembered_probes.remembered_probes():
        isa.check_build("ok")
        with config.patch({"cpp.cxx": (shutil.which("g++"),)}):  # the same compiler named otherwise
            isa.check_build("ok")
        isa.check_build("ok")
        with config.patch({"cpp.cxx": ("/nonexistent/c++",)}):
            isa.check_build("ok")
            isa.check_build("ok")
    assert counted_checks == ["ok"] * 4


FRESH_PROCESS = textwrap.dedent(
    """
    import torch
    from torch._inductor import cpu_vec_isa
    import descentlab.optim as dl
    from descentlab.optim import _generated
    probes = []
    original = cpu_vec_isa.VecISA._probe_load
    def counted(self, path):
        probes.append(path)
        return original(self, path)
    cpu_vec_isa.VecISA._probe_load = counted
    from torch._inductor import codecache
    validations = []
    validate = codecache._precompile_header
    def counted_validation(*args, **kwargs):
        validations.append(args[0])
        return validate(*args, **kwargs)
    codecache._precompile_header = counted_validation
    params = [torch.linspace(-1, 1, 20000, requires_grad=True)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours, eager = dl.Adam([{"params": params, "compiled": True}], lr=0.1), dl.Adam(twins, lr=0.1)
    for step in range(2):
        params[0].grad = twins[0].grad = torch.cos(torch.arange(20000.0) * (step + 1))
        ours.step(); eager.step()
    assert _generated.kernel_calls == 2, _generated.kernel_calls
    torch.testing.assert_close(params[0], twins[0], rtol=1e-6, atol=1e-7)
    print("validations", len(validations), "probes", len(probes))
    """
)


@needs_compiler
def test_a_second_process_runs_the_kernel_without_probing_or_validating(tmp_path):
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    environment.pop("TORCHINDUCTOR_VEC_ISA_OK", None)
    counts = []
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS],
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        words = completed.stdout.split()
        counts.append((int(words[words.index("probes") + 1]), int(words[words.index("validations") + 1])))
    # The first process probes (its header validated unless another process on this machine did before).
    assert counts[0][0] > 0 and counts[1] == (0, 0), counts
    assert (tmp_path / _remembered_probes.FILE_NAME).exists()
