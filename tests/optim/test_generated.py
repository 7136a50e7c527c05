"""The generated one-pass kernel (``compiled=True``, optim/_generated.py) against the eager path.

The oracle is the eager multi-tensor path of the same class (itself checked against the float64
references and torch.optim in test_contract.py): in float64 the two must agree within rounding (1e-12)
for every elementwise row of the contract table, on a bucket of a matrix, a vector, a tiny vector and a
complex vector (updated as real pairs), all in one compiled call. Each row compiles with inductor
(seconds to a minute on a loaded 2-core machine), so those run with ``DESCENTLAB_SLOW_TESTS=1``; in CI one
compile (AdamW, float64) serves the scheduler, state_dict and second-instance tests.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from optim_descriptions import CASES

import descentlab.optim as dl
from descentlab.optim import _generated, _hoisting, _precompiled

slow = pytest.mark.skipif(
    os.environ.get("DESCENTLAB_SLOW_TESTS") != "1",
    reason="compiles with inductor (seconds to a minute each); set DESCENTLAB_SLOW_TESTS=1 to run",
)
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")

# One bucket of 56506 elements (over MIN_NUMEL): the complex (10000,) is a real (10000, 2) view. The eager
# oracle runs cache-blocked in slices of BLOCK.
SHAPES = [((150, 130), torch.float64), ((17000,), torch.float64), ((6,), torch.float64)]
COMPLEX_SHAPE = (10000,)
BLOCK = 8192
STEPS = 8
# Rows the generated kernel does not serve (they run eagerly with compiled=True): no state at all (plain SGD
# is one kernel already). NAdam's 0-d mu_product, not shaped like its parameter, is served; so is
# Schedule-Free, whose group-level state the kernel takes as tensors.
EAGER_ONLY = {"sgd"}


def _generated_cases():
    """Rows the generated path serves (``has_generated_kernel``): elementwise chains where cache-blocking
    applies, and chains with per-tensor reductions (LAMB's trust ratio, Muon's orthogonalisation)."""
    for case in CASES:
        cls = case.cls
        if case.protocol != "gradient" or not getattr(cls, "has_generated_kernel", lambda: False)():
            continue
        if not cls.elementwise or case.applies("cache-blocking"):
            yield case


def _params(with_complex: bool) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    params = [torch.randn(shape, generator=generator, dtype=dtype) for shape, dtype in SHAPES]
    if with_complex:
        params.append(torch.randn(COMPLEX_SHAPE, generator=generator, dtype=torch.complex128))
    return [param.requires_grad_() for param in params]


def _run(cls, hyper: dict, compiled: bool, with_complex: bool = True) -> list[torch.Tensor]:
    params = _params(with_complex)
    optimizer = cls([{"params": params, "compiled": compiled}], **hyper)
    optimizer.block_numel = BLOCK
    generator = torch.Generator().manual_seed(5)
    for _ in range(STEPS):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator, dtype=param.dtype)
        optimizer.step()
    return [param.detach() for param in params]


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[slow, needs_compiler]) for c in _generated_cases()], ids=lambda c: c.id
)
def test_generated_kernel_matches_the_eager_path_in_float64(case):
    # A complex parameter joins the bucket as a real view, except where the row refuses mixing it in
    # (SWATS's paper variant: one dtype per group).
    with_complex = case.applies("complex")
    eager = _run(case.cls, case.hyper, compiled=False, with_complex=with_complex)
    calls, entries = _generated.kernel_calls, _generated.compiled_entries
    generated = _run(case.cls, case.hyper, compiled=True, with_complex=with_complex)
    # One entry per row (two where a state created on first use changes the bucket), never one a step.
    assert _generated.compiled_entries - entries <= 2
    assert case.cls.__name__ not in _generated._unavailable
    if case.id in EAGER_ONLY:
        assert _generated.kernel_calls == calls, (
            "the generated kernel now serves this row: drop it from EAGER_ONLY"
        )
    else:
        # One call per step (the whole bucket), from the second step on for a state created on first
        # use (SGD's momentum buffer), from the first otherwise.
        assert _generated.kernel_calls - calls >= STEPS - 1
    start = _params(with_complex)
    assert any(not torch.equal(a, b) for a, b in zip(eager, start))  # they moved
    for a, b in zip(eager, generated):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@needs_compiler
@pytest.mark.parametrize("cls", [dl.ScheduleFreeSGD, dl.ScheduleFreeAdamW])
def test_group_level_state_advancing_every_step_compiles_once_and_matches_eager(cls):
    # Schedule-Free's k, scheduled_lr, lr_max and weight_sum advance every step; as constants of the traced
    # kernel every step compiled a new entry (20 s each on 196 tensors), so the kernel takes them as tensors.
    params, twins = _twin_params(seed=17)
    options = {"lr": 0.05, "warmup_steps": 3, "weight_decay": 0.01}
    ours = cls([{"params": params, "compiled": True}], **options)
    eager = cls([{"params": twins}], **options)
    entries, calls = _generated.compiled_entries, _generated.kernel_calls
    for step in range(6):
        _step_both((ours, eager), params, twins, step)
    assert _generated.compiled_entries - entries <= 1
    assert _generated.kernel_calls - calls == 6
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    ours.eval()
    eager.eval()  # the average x, which the kernel's lerp wrote
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_a_chain_with_per_tensor_norms_runs_the_kernel_over_whole_tensors_one_call_per_layer_part(
    monkeypatch, caplog
):
    # LARS's trust ratio is a norm over each whole tensor: the kernel traces it over whole tensors (never
    # slices), so it equals the eager step. The bucket is a head and 8 layers of a (48, 32) weight and its
    # bias: called as the head, then 2 parts of 4 layers that share one compiled entry (optim/_parts.py),
    # and a compile's report says it is a part. The one per-tensor-reduction compile of CI (a few seconds;
    # compiled anew, not loaded from an earlier run's entries).
    monkeypatch.setattr(_precompiled, "load", lambda path, f_globals: None)
    monkeypatch.setattr(_generated, "REPORT_AFTER_S", 0.0)
    caplog.set_level(logging.WARNING, logger="descentlab.optim")
    generator = torch.Generator().manual_seed(23)
    shapes = [(80, 64), *[(48, 32), (48,)] * 8]
    params = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    params = [param.requires_grad_() for param in params]
    twins = [param.detach().clone().requires_grad_() for param in params]
    options = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}
    ours = dl.LARS([{"params": params, "compiled": True}], **options)
    eager = dl.LARS([{"params": twins}], **options)
    calls, entries = _generated.kernel_calls, _entries_made()
    for step in range(4):
        _step_both((ours, eager), params, twins, step)
    assert _generated.kernel_calls - calls == 4 * 3
    assert _entries_made() - entries == 2
    ready = [record.getMessage() for record in caplog.records if "is ready after" in record.getMessage()]
    assert len(ready) == 2
    assert all(
        "; one part of a 17-tensor bucket called in parts of its repeated layers)" in line for line in ready
    )
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_a_group_reduction_runs_both_phases_in_kernels_and_its_rule_on_the_host():
    # Prodigy's d comes from sums over the whole group: phase one is a kernel of the sums, then the rule
    # turns them into d on the host, and the update (phase two) runs in the kernel with d and the rest of
    # the group state as tensors. One entry of each serves a run whose d grows over 100-fold and whose
    # first steps are skipped (lr = 0 leaves ||s||_1 = 0: a step of zero in the kernel, none eagerly).
    params, twins = _twin_params(seed=31)
    ours = dl.Prodigy([{"params": params, "compiled": True}], weight_decay=0.01)
    eager = dl.Prodigy([{"params": twins}], weight_decay=0.01)
    entries, calls = _entries_made(), _generated.kernel_calls
    start = [param.detach().clone() for param in params]
    for lr in [0.0, 0.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0]:
        for optimizer in (ours, eager):
            optimizer.param_groups[0]["lr"] = lr
        for a, b in zip(params, twins):
            a.grad, b.grad = 2 * (a.detach() - 0.5), 2 * (b.detach() - 0.5)
        ours.step()
        eager.step()
        if lr == 0.0:
            assert all(torch.equal(a, b) for a, b in zip(params, start))
    assert _entries_made() - entries == 2
    assert _generated.kernel_calls - calls == 2 * 8
    group, eager_group = ours.param_groups[0], eager.param_groups[0]
    assert group["d"] > 100 * group["d0"]
    assert group["d"] == pytest.approx(eager_group["d"], rel=1e-12, abs=0)
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_a_trust_ratio_step_fuses_its_norms_and_allocates_no_temporary_the_size_of_a_parameter(monkeypatch):
    # LAMB's update u is read by its norm and by the step. Traced as _foreach_norm, the norm was aten's
    # kernel, so inductor stored u in a buffer the size of each parameter, allocated at every step (with
    # its page faults: LAMB on 4 x 25M elements 207 ms a step, not 120). Fused, the norms are reductions
    # in the loops and u is recomputed where the step reads it: only scalars are allocated.
    from torch._inductor.graph import GraphLowering

    monkeypatch.setattr(_precompiled, "load", lambda path, f_globals: None)
    wrappers: list[str] = []
    codegen = GraphLowering.codegen

    def spy(self):
        code = codegen(self)
        wrappers.append(code[0].value)
        return code

    monkeypatch.setattr(GraphLowering, "codegen", spy)
    generator = torch.Generator().manual_seed(29)
    params = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((300, 200), (200,))]
    params = [param.requires_grad_() for param in params]
    twins = [param.detach().clone().requires_grad_() for param in params]
    options = {"lr": 0.01, "weight_decay": 0.01}
    ours, eager = dl.LAMB([{"params": params, "compiled": True}], **options), dl.LAMB(twins, **options)
    with torch._inductor.config.patch(fx_graph_cache=False):  # the wrapper is generated, not loaded
        for step in range(3):
            _step_both((ours, eager), params, twins, step)
    assert len(wrappers) == 1
    allocated = re.findall(r"empty_strided_cpu\(\(([^)]*)\)", wrappers[0])
    assert allocated, "the wrapper allocates its scalars: the pattern must see them"
    assert all(shape in ("", "2, ") for shape in allocated), allocated  # 0-d, or one entry per tensor
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _entries_made() -> int:
    """Compiled entries this process compiled or loaded from disk."""
    return _generated.compiled_entries + _generated.loaded_entries


def _adamw_pair(compiled_params, eager_params, **hyper):
    options = {"lr": 0.05, "weight_decay": 0.1, **hyper}
    return (
        dl.AdamW([{"params": compiled_params, "compiled": True}], **options),
        dl.AdamW(eager_params, **options),
    )


def _twin_params(seed: int = 7) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in ((120, 100), (9000,))
    ]
    return params, [param.detach().clone().requires_grad_() for param in params]


def _step_both(optimizers, params, twins, step: int) -> None:
    for a, b in zip(params, twins):
        a.grad = b.grad = torch.sin(torch.arange(a.numel(), dtype=a.dtype) * (step + 1)).reshape(a.shape)
    for optimizer in optimizers:
        optimizer.step()


@needs_compiler
def test_a_scheduler_changing_lr_and_betas_never_recompiles_and_matches_eager():
    # The one CI compile of this file (AdamW, float64, these two shapes); the tests below reuse it.
    params, twins = _twin_params()
    ours, eager = _adamw_pair(params, twins)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: 1.0 / (1 + step)) for o in (ours, eager)]
    entries, calls = _entries_made(), _generated.kernel_calls
    for step in range(6):
        _step_both((ours, eager), params, twins, step)
        for scheduler in schedulers:
            scheduler.step()
        if step == 2:  # betas are tensor inputs of the kernel too (declared so by Adam's transform)
            for optimizer in (ours, eager):
                optimizer.param_groups[0]["betas"] = (0.8, 0.99)
    assert _generated.kernel_calls - calls == 6
    assert _entries_made() - entries <= 1  # 0 when an earlier test made the same entry
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_state_dict_round_trip_and_a_second_instance_reuse_the_compiled_kernel():
    params, twins = _twin_params(seed=11)
    ours, eager = _adamw_pair(params, twins)
    for step in range(3):
        _step_both((ours, eager), params, twins, step)
    entries = _entries_made()
    saved = ours.state_dict()
    # A new optimizer instance (dynamo would guard an optimizer by identity: the kernel is keyed by class).
    resumed, _ = _adamw_pair(params, [p.detach().clone() for p in params])
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        _step_both((resumed, eager), params, twins, step)
    assert _entries_made() == entries
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_calls_that_skip_dynamo_still_obey_its_guards(monkeypatch, caplog):
    # The kernel runs a compiled entry directly where that entry's guards pass (_entry). A constant
    # hyperparameter changed mid-run (eps is a constant of the kernel) and a gradient with other strides
    # must fail those guards and compile a new entry, not run the old one: both equal eager. Each compile
    # is one the user is told about once it runs longer than REPORT_AFTER_S. (No entries from disk here:
    # an earlier run of this test would have saved them.)
    monkeypatch.setattr(_precompiled, "load", lambda path, f_globals: None)
    caplog.set_level(logging.WARNING, logger="descentlab.optim")
    params, twins = _twin_params(seed=13)
    ours, eager = _adamw_pair(params, twins)
    for step in range(2):
        _step_both((ours, eager), params, twins, step)
    compiled, calls = _generated.compiled_entries, _generated.kernel_calls
    caplog.clear()
    monkeypatch.setattr(_generated, "REPORT_AFTER_S", 0.0)
    for optimizer in (ours, eager):
        optimizer.param_groups[0]["eps"] = 1e-3
    _step_both((ours, eager), params, twins, 2)
    assert _generated.compiled_entries - compiled == 1
    notice, ready = (record.getMessage() for record in caplog.records)
    bucket = "AdamW(compiled=True): the generated kernel for a bucket of 2 tensors (21,000 elements, float64"
    assert notice.startswith(bucket) and "is compiling" in notice
    assert ready.startswith(bucket) and re.search(r"is ready after \d+\.\d s \(compiled anew", ready)
    caplog.clear()
    monkeypatch.setattr(_generated, "REPORT_AFTER_S", 1e6)  # a compile shorter than that: not reported
    matrix, twin = params[0], twins[0]
    column_major = torch.cos(torch.arange(matrix.numel(), dtype=matrix.dtype)).reshape(100, 120).t()
    matrix.grad, twin.grad = column_major, column_major.clone()
    params[1].grad = twins[1].grad = torch.ones_like(params[1])
    ours.step()
    eager.step()
    assert _generated.compiled_entries - compiled == 2
    monkeypatch.setattr(_generated, "REPORT_AFTER_S", 0.0)  # an entry that admits the call: no compile
    _step_both((ours, eager), params, twins, 4)  # contiguous again: the eps entry's guards pass
    assert _generated.compiled_entries - compiled == 2 and _generated.kernel_calls - calls == 3
    assert caplog.records == []
    for a, b in zip(params, twins):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_compiler
def test_an_entry_gives_its_guards_the_locals_dynamo_binds_and_their_verdicts(monkeypatch):
    # _Entry.admits checks an entry's guards without inspect's Signature.bind: the locals it builds must
    # be the ones dynamo's guard_check binds (the signature's order, defaults applied, the same objects),
    # and its verdict guard_check's, passing and failing (a constant hyperparameter changed).
    seen = []
    entry_of = _generated._entry

    def recording(cls, traced, bucket, arguments):
        entry = entry_of(cls, traced, bucket, arguments)
        seen.append((entry, dict(arguments)))
        return entry

    monkeypatch.setattr(_generated, "_entry", recording)
    params, twins = _twin_params(seed=17)
    ours, eager = _adamw_pair(params, twins)
    _step_both((ours, eager), params, twins, 0)
    ((entry, arguments),) = seen
    assert entry._check is not None  # this torch's entries take the direct check
    bound, built = entry.compiled.prepare_f_locals(**arguments), entry.frame_locals(arguments)
    assert list(built) == list(bound) and all(built[name] is bound[name] for name in bound)
    changed = {**arguments, "group": {**arguments["group"], "eps": 0.5}}
    with torch.no_grad():
        assert entry.admits(arguments) and entry.compiled.guard_check(**arguments)
        assert not entry.admits(changed) and not entry.compiled.guard_check(**changed)


FRESH_PROCESS = textwrap.dedent(
    """
    import torch
    import descentlab.optim as dl
    from descentlab.optim import _generated
    params = [torch.linspace(-1, 1, 20000, dtype=torch.float64, requires_grad=True)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours = dl.NAdam([{"params": params, "compiled": True}], lr=0.1, weight_decay=0.01)
    eager = dl.NAdam(twins, lr=0.1, weight_decay=0.01)
    for step in range(3):
        params[0].grad = twins[0].grad = torch.cos(torch.arange(20000.0, dtype=torch.float64) * (step + 1))
        ours.step(); eager.step()
    assert _generated.kernel_calls == 3, _generated.kernel_calls
    torch.testing.assert_close(params[0], twins[0], rtol=1e-12, atol=1e-12)
    print("compiled", _generated.compiled_entries, "loaded", _generated.loaded_entries)
    """
)


@needs_compiler
def test_a_later_process_loads_the_saved_entry_unless_damaged_or_caches_are_off(tmp_path):
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}

    def fresh_process(**variables: str) -> tuple[int, int]:
        completed = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS],
            env={**environment, **variables},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        words = completed.stdout.split()
        return int(words[words.index("compiled") + 1]), int(words[words.index("loaded") + 1])

    assert fresh_process() == (1, 0)
    assert fresh_process() == (0, 1)  # loaded: not traced, and still equal to eager
    (saved,) = (tmp_path / _precompiled.FOLDER).iterdir()
    assert saved.name.startswith("NAdam-")
    saved.write_bytes(saved.read_bytes()[:1000])  # damaged: compiled (and saved) again, silently
    assert fresh_process() == (1, 0)
    assert fresh_process() == (0, 1)
    # Inductor's switch for all its caches: the kernel compiled through dynamo, nothing loaded or saved.
    assert fresh_process(TORCHINDUCTOR_FORCE_DISABLE_CACHES="1") == (0, 0)


@needs_compiler
def test_one_trace_per_compile_and_the_hoisting_pass_is_told_only_the_scalar_inputs(monkeypatch):
    # An ahead-of-time compile's placeholders do not record their sources: were the bucket's tensors
    # taken for scalars, every value would be materialised and the loops not fused (2.2x slower on 196
    # tensors). Adam over two float32 tensors: 2 step counts, the step, lr and the two betas are the
    # scalars. None of them is a 0-d float64 tensor, so dynamo traces once: a 0-d lr or beta made
    # inductor's tensorify pass restart the trace (6.5 s of a 36 s compile of 196 tensors).
    monkeypatch.setattr(_precompiled, "load", lambda path, f_globals: None)
    told: list[frozenset[int]] = []
    original = _hoisting.HoistScalars.__init__

    def spy(self, scalar_inputs):
        told.append(scalar_inputs)
        original(self, scalar_inputs)

    monkeypatch.setattr(_hoisting.HoistScalars, "__init__", spy)
    params = [torch.ones(shape, dtype=torch.float32, requires_grad=True) for shape in ((20011,), (5,))]
    for param in params:
        param.grad = torch.full_like(param, 0.5)
    compiled, traces = _generated.compiled_entries, _generated.traces
    dl.Adam([{"params": params, "compiled": True}], lr=0.1).step()
    assert _generated.compiled_entries - compiled == 1
    assert _generated.traces - traces == 1
    assert told and all(len(scalars) == 6 for scalars in told), told


@needs_compiler
def test_the_lowering_realizes_only_live_readers_of_a_written_buffer(monkeypatch):
    # Inductor realised every value that read a state tensor before the final copy_ into it, so each
    # intermediate of the chain became a scheduler node (Adam over these two tensors: 30). Only the
    # readers still used after the write need a buffer (16 here); the kernels read the same values, which
    # the float64 rows check against the eager path (a lowering that realises no reader fails them).
    from torch._inductor import scheduler

    monkeypatch.setattr(_precompiled, "load", lambda path, f_globals: None)
    scheduled: list[int] = []
    original = scheduler.Scheduler._init

    def spy(self, nodes):
        scheduled.append(len(nodes))
        return original(self, nodes)

    monkeypatch.setattr(scheduler.Scheduler, "_init", spy)
    params = [torch.ones(shape, dtype=torch.float32, requires_grad=True) for shape in ((20011,), (7,))]
    twins = [param.detach().clone().requires_grad_() for param in params]
    for param, twin in zip(params, twins):
        param.grad = twin.grad = torch.linspace(-1, 1, param.numel())
    dl.Adam([{"params": params, "compiled": True}], lr=0.1).step()
    dl.Adam(twins, lr=0.1).step()
    assert scheduled and scheduled[0] <= 20, scheduled
    for param, twin in zip(params, twins):
        torch.testing.assert_close(param, twin)


def _independent_loops(a, b, c):
    a.mul_(2)
    b.add_(1)
    c.sub_(3)


def _a_loop_reading_another(a, b, c):
    a.mul_(2)
    b.copy_(a.flip(0)[: b.numel()] + b)  # reads a's new values in another order: a loop of its own
    c.sub_(3)


@needs_compiler
@pytest.mark.parametrize(
    ("update", "pragmas", "expected_b"),
    [
        (_independent_loops, ["for nowait", "for nowait", "single nowait"], 2.0),
        (_a_loop_reading_another, ["for", "for nowait", "single nowait"], 3.0),
    ],
)
def test_a_loop_waits_at_a_barrier_only_for_the_loops_it_depends_on(update, pragmas, expected_b):
    # Each loop of an inductor C++ kernel ended with an OpenMP barrier; a bucket's loops are independent,
    # so only a loop that reads what an earlier one writes needs the threads to meet before it.
    from torch._inductor import config as inductor_config
    from torch._inductor.utils import run_and_get_code

    def backend(graph_module, example_inputs):
        # Not from inductor's cache, whose key does not know the patch (the hoisting pass's key does).
        with _hoisting._no_barriers_between_independent_loops(), inductor_config.patch(fx_graph_cache=False):
            return _hoisting._compile_fx()(graph_module, example_inputs)

    torch._dynamo.reset()
    a, b, c = torch.ones(1 << 16), torch.ones(60001), torch.ones(100)
    _, sources = run_and_get_code(torch.compile(update, backend=backend), a, b, c)
    emitted = [
        line.strip().removeprefix("#pragma omp ") for line in sources[0].splitlines() if "#pragma omp" in line
    ]
    assert emitted == ["parallel", *pragmas]
    assert torch.equal(a, torch.full_like(a, 2.0)) and torch.equal(c, torch.full_like(c, -2.0))
    assert torch.equal(b, torch.full_like(b, expected_b))


class _Node:
    """A scheduler node as the barrier plan reads it."""

    def __init__(self, name, ancestors=(), reduction=False):
        self.name, self.ancestors, self.reduction = name, set(ancestors), reduction

    def get_name(self):
        return self.name

    def is_reduction(self):
        return self.reduction


def _loop(pragma, after=()):
    return [
        "{",
        f"    #pragma omp {pragma}",
        "    for(int64_t x0=0; x0<64; x0+=1)",
        "    {",
        "        out_ptr0[x0] = in_ptr0[x0];",
        "    }",
        *after,
        "}",
    ]


@pytest.mark.parametrize(
    ("second", "reduction", "kept"),
    [
        (_loop("for"), False, []),
        (_loop("for", after=["    out_ptr1[0] = out_ptr0[63];"]), False, [0, 1]),  # code after the loop
        (_loop("for"), True, [0, 1]),  # a reduction
        (_loop("for") + _loop("single"), False, [0, 1, 2]),  # two loops in one node
    ],
)
def test_only_a_plain_loop_ends_without_a_barrier(second, reduction, kept):
    # Each chunk is what inductor emits for one fused node, here inside one parallel region; a loop that
    # is not plain keeps its barriers and restores the one before it.
    lines = ["#pragma omp parallel", "{", "int tid = omp_get_thread_num();"]
    plan = _hoisting._BarrierPlan(lines)
    for index, (chunk, is_reduction) in enumerate([(_loop("single"), False), (second, reduction)]):
        start = len(lines)
        lines += chunk
        plan.add(start, [_Node(f"op{index}", reduction=is_reduction)])
    pragmas = [
        line.strip() for line in lines if line.strip().startswith(("#pragma omp for", "#pragma omp single"))
    ]
    assert [index for index, pragma in enumerate(pragmas) if not pragma.endswith(" nowait")] == kept


def test_a_loop_reading_one_since_the_last_barrier_restores_that_barrier():
    lines = ["#pragma omp parallel", "{"]
    plan = _hoisting._BarrierPlan(lines)
    for name, ancestors in [("op0", ()), ("op1", ()), ("op2", {"op1"}), ("op3", {"op0"})]:
        start = len(lines)
        lines += _loop("for")
        plan.add(start, [_Node(name, ancestors)])
    pragmas = [line.strip() for line in lines if line.strip().startswith("#pragma omp for")]
    # op2 reads op1, so op1 keeps its barrier; op3 reads op0, which finished before that barrier.
    assert pragmas == [
        "#pragma omp for nowait",
        "#pragma omp for",
        "#pragma omp for nowait",
        "#pragma omp for nowait",
    ]


def test_past_the_entry_limit_new_configurations_run_eagerly_after_one_warning(monkeypatch):
    held = sum(len(entries) for entries in _generated._entries.values())
    monkeypatch.setattr(_generated, "RECOMPILE_LIMIT", held)
    monkeypatch.setattr(_generated, "_over_the_limit", set())
    params = [torch.linspace(-1, 1, 20003, dtype=torch.float64, requires_grad=True)]
    twins = [param.detach().clone().requires_grad_() for param in params]
    ours = dl.Adam([{"params": params, "compiled": True}], lr=0.1)
    eager = dl.Adam(twins, lr=0.1)
    calls = _generated.kernel_calls
    with pytest.warns(RuntimeWarning, match="generated kernels compiled in this process") as caught:
        for step in range(3):
            params[0].grad = twins[0].grad = torch.full_like(params[0], 0.5 - step)
            ours.step()
            eager.step()
    assert len([w for w in caught if "compiled in this process" in str(w.message)]) == 1
    assert _generated.kernel_calls == calls and torch.equal(params[0], twins[0])


def test_hoisting_marks_the_scalar_values_the_loop_reads():
    # A post-grad-like graph: c = 1 - 0.9**step is scalar; x * c is the loop; the pass must have inductor
    # materialise c (read by the loop), not 0.9**step (read only by scalar code) and never the loop.
    aten = torch.ops.aten
    graph = torch.fx.Graph()
    step, x = graph.placeholder("step"), graph.placeholder("x")
    power = graph.call_function(aten.pow.Scalar, (0.9, step))
    correction = graph.call_function(aten.rsub.Scalar, (power, 1.0))
    scaled = graph.call_function(aten.mul.Tensor, (x, correction))
    graph.call_function(aten.copy_.default, (x, scaled))
    graph.output(None)
    for node, value in ((power, 0.9), (correction, 0.1), (scaled, torch.ones(8))):
        node.meta["val"] = torch.as_tensor(value)
    _hoisting.HoistScalars(frozenset({0}))(graph)
    marked = {node.name for node in graph.nodes if node.meta.get("inductor_realize_to_strides")}
    assert marked == {correction.name}


def test_every_elementwise_row_is_covered():
    names = {case.cls.__name__ for case in _generated_cases()}
    assert {"Adam", "AdamW", "SGD", "Adagrad", "RMSprop", "Adamax", "Lion"} <= names


def test_small_tensors_take_the_eager_path_without_compiling():
    before = _entries_made()
    params = [torch.randn(40, 30, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    twins = [param.detach().clone().requires_grad_() for param in params]
    ours = dl.Adam([{"params": params, "compiled": True}], lr=0.1, weight_decay=0.1)
    eager = dl.Adam(twins, lr=0.1, weight_decay=0.1)
    for step in range(3):
        for a, b in zip(params, twins):
            a.grad = b.grad = torch.full_like(a, 0.5 + step)
        ours.step()
        eager.step()
    assert all(torch.equal(a, b) for a, b in zip(params, twins))
    assert _entries_made() == before


def test_compiled_flag_is_validated():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="compiled must be True or False"):
        dl.Adam([{"params": [param], "compiled": "yes"}])


FALLBACK = textwrap.dedent(
    """
    import warnings, torch
    import torch._inductor.config as config
    import descentlab.optim as dl
    config.cpp.cxx = ("/nonexistent/c++",)
    params = [torch.ones(20000, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours, eager = dl.Adam([{"params": params, "compiled": True}], lr=0.1), dl.Adam(twins, lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(2):
            for a, b in zip(params, twins):
                a.grad = b.grad = torch.full_like(a, 0.5 + step)
            ours.step(); eager.step()
    messages = [str(w.message) for w in caught if "compiled=True" in str(w.message)]
    assert len(messages) == 1, messages
    assert all(torch.equal(a, b) for a, b in zip(params, twins))
    print("fallback ok:", messages[0][:60])
    """
)


@slow
def test_without_a_compiler_the_eager_path_runs_after_one_warning(tmp_path):
    environment = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path),
        "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", FALLBACK], env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "fallback ok" in completed.stdout
