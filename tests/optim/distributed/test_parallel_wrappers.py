"""descentlab optimizers under torch's parallel wrappers (2 gloo processes on CPU) equal torch.optim's.

Regression for "FSDP2 / DTensor: a parameter with more than 2^20 elements is never updated": the engine
cut it into flat slices of the sharded DTensor, which are gathered copies, so every update was lost.
All tests read one module-scoped run of both processes (see distributed_harness).
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from distributed_harness import (
    BIG_SHAPE,
    FSDP_OPTIMIZERS,
    PER_TENSOR_OPTIMIZERS,
    TORCH_TWINS,
    has_fully_shard,
    load_results,
    run_on_two_ranks,
    suite_worker,
)

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch is built without torch.distributed or its gloo backend", allow_module_level=True)

needs_fsdp2 = pytest.mark.skipif(not has_fully_shard(), reason="torch.distributed.fsdp.fully_shard missing")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("two_ranks")
    run_on_two_ranks(suite_worker, out_dir, timeout=240)
    return load_results(out_dir)


def _section(results: dict, name: str):
    if isinstance(results[name], str):
        pytest.fail(f"the {name} section raised in a worker:\n{results[name]}", pytrace=False)
    return results[name]


def _prefixed(context: str):
    """An ``assert_close`` message that keeps torch's mismatch details after our context."""
    return lambda details: f"{context}: {details}"


def _assert_same_as_torch(
    ours: dict, theirs: dict, initial: dict, label: str, rtol: float = 1e-6, atol: float = 1e-7
) -> None:
    for key, expected in theirs.items():
        # Both libraries must move every parameter: a frozen one would also match a frozen reference.
        assert not torch.equal(expected, initial[key]), f"{label}: torch left {key} unchanged"
        torch.testing.assert_close(
            ours[key], expected, rtol=rtol, atol=atol, msg=_prefixed(f"{label}, {key}")
        )


@needs_fsdp2
def test_fsdp2_big_parameter_updates_equal_torch(results):
    section = _section(results, "fsdp")
    big = section["initial"]["0.weight"]
    assert big.numel() > 1 << 20 and tuple(big.shape) == BIG_SHAPE
    for name in FSDP_OPTIMIZERS:
        _assert_same_as_torch(section[name, "descentlab"], section[name, "torch"], section["initial"], name)


@needs_fsdp2
def test_fsdp2_compiled_per_tensor_norms_are_the_whole_tensors(results):
    # compiled=True once gave a chain with per-tensor norms (LAMB, LARS) the local shards of each DTensor,
    # whose norms are not the tensor's; SWATS's switch test needs the whole group's dot products too. DDP
    # steps the same averaged gradients over whole tensors.
    section = _section(results, "per_tensor")
    for name in PER_TENSOR_OPTIMIZERS:
        # float32 norms summed over two shards round differently from one whole-tensor sum: 2e-7.
        for run in ("fsdp2 eager", "fsdp2 compiled"):
            ours, reference = section[name, run], section[name, "ddp"]
            _assert_same_as_torch(ours, reference, section["initial"], f"{name} {run}", rtol=1e-5, atol=1e-6)
            learnt, expected = section[name, run, "learnt"], section[name, "ddp", "learnt"]
            assert learnt == (pytest.approx(expected, rel=1e-5) if name.startswith("Prodigy") else expected)
    # The switch tests' sums decided the last step (they were a shard's under FSDP2: Lambda 0.021, not 0.038).
    assert section["SWATS", "ddp", "learnt"] == [2]
    assert 2 in section["SWATS-per-tensor", "ddp", "learnt"][0].values()
    # Prodigy's sums were taken (a shard's would not give DDP's; an unevenly sharded p0 was once refused).
    for name in ("Prodigy", "Prodigy-paper"):
        d_hat, norm = section[name, "ddp", "learnt"]
        assert d_hat != 0.0 and norm > 0.0
    # Every slice_p-th entry of a flattened shard is not the tensor's: refused, saying what to pass.
    message = section["Prodigy slice_p=2", "error"]
    assert message is not None and "sharded DTensor parameter" in message and "slice_p=1" in message


def test_ddp_updates_equal_torch(results):
    section = _section(results, "ddp")
    for name in TORCH_TWINS:
        _assert_same_as_torch(section[name, "descentlab"], section[name, "torch"], section["initial"], name)


def test_zero_redundancy_optimizer_with_our_adam_equals_torch_adam(results):
    section = _section(results, "zero")
    for bucket_view in (False, True):
        label = f"ZeRO(parameters_as_bucket_view={bucket_view}) Adam"
        (ours, our_state), (theirs, their_state) = (
            section[bucket_view, "descentlab"],
            section[bucket_view, "torch"],
        )
        _assert_same_as_torch(ours, theirs, section["initial"], label)
        assert our_state.keys() == their_state.keys()
        for index, state in their_state.items():
            assert our_state[index].keys() == state.keys()
            for key, value in state.items():
                torch.testing.assert_close(
                    our_state[index][key],
                    value,
                    rtol=1e-6,
                    atol=1e-9,
                    msg=_prefixed(f"{label}, state {index} {key}"),
                )


@needs_fsdp2
def test_dcp_round_trip_of_optimizer_state_under_fsdp2(results):
    section = _section(results, "dcp")
    for name in FSDP_OPTIMIZERS:
        straight, resumed = section[name]
        for key, value in straight.items():
            # Frozen parameters would round-trip trivially.
            assert not torch.equal(value, section["initial"][key]), f"{name} left {key} unchanged"
            torch.testing.assert_close(
                resumed[key], value, rtol=1e-6, atol=1e-7, msg=_prefixed(f"{name}, {key}")
            )
