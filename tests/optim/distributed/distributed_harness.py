"""Two-process gloo runs on loopback, and the training workers the distributed tests spawn.

Each section trains descentlab's optimizer and torch.optim's class of the same name on the same model,
data and parallel wrapper, and returns what the parent test compares (full parameters); assertions run
in the pytest process, with readable messages. All sections share one spawned pair of processes, because
starting one (importing torch, FSDP's first shard) costs far more than the training. Workers live here,
not in the test modules, because spawned processes unpickle them by module name.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional

import descentlab.optim as dl

WORLD_SIZE = 2
# Hyperparameters per optimizer that torch also has, chosen so that every state buffer and decay term
# of the update takes part (amsgrad, centered, nesterov, initial accumulator ...).
TORCH_TWINS: dict[str, dict] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    "Adagrad": {"lr": 0.1, "lr_decay": 1e-2, "weight_decay": 1e-2, "initial_accumulator_value": 0.1},
    "RMSprop": {"lr": 1e-3, "momentum": 0.5, "centered": True, "weight_decay": 1e-2},
    "Adadelta": {"lr": 1.0, "rho": 0.8, "weight_decay": 1e-2},
    "Adam": {"lr": 1e-3, "weight_decay": 1e-2, "amsgrad": True},
    "AdamW": {"lr": 1e-3},
    "Adamax": {"lr": 1e-3, "weight_decay": 1e-2},
    "NAdam": {"lr": 1e-3, "momentum_decay": 4e-3},
    "RAdam": {"lr": 1e-3, "weight_decay": 1e-2},
}
# The optimizers: cache-blocked ones whose big parameter stayed frozen under FSDP2.
FSDP_OPTIMIZERS = ("Adam", "AdamW", "RAdam", "Adagrad", "RMSprop")
# RAdam switches to its rectified update only once rho_t > 5, from step 6 with beta2 = 0.999: DDP
# runs that many. FSDP2 runs fewer (its collectives dominate the time); both RAdam branches take the
# same engine path, which is what FSDP2 tests.
STEPS = 6
FSDP_STEPS = 3
# nn.Linear(1100, 1000).weight has 1_100_000 > 2**20 elements: cut into blocks by the engine.
BIG_SHAPE = (1000, 1100)
# DDP and ZeRO hold plain tensors, where the blocked path needs no big tensor to run: a small model with
# our optimizers' block_numel lowered to SMALL_BLOCK cuts its weight as a big one would be (and is fast).
SMALL_SHAPE = (40, 60)
SMALL_BLOCK = 512


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_on_two_ranks(worker: Callable[[int, Path], None], out_dir: Path, timeout: float = 120.0) -> None:
    """Run ``worker(rank, out_dir)`` in two spawned processes joined by a gloo group; fail on a hang."""
    context = mp.start_processes(
        _entry,
        args=(worker, free_port(), out_dir),
        nprocs=WORLD_SIZE,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
            raise AssertionError(f"{worker.__name__} still running after {timeout:.0f} s: killed")


def _entry(rank: int, worker: Callable[[int, Path], None], port: int, out_dir: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two ranks share a small machine
    # A collective left waiting by a failed peer raises after this, instead of hanging until the test's
    # timeout kills both ranks and every section's result.
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        worker(rank, out_dir)
    finally:
        dist.destroy_process_group()


def has_fully_shard() -> bool:
    """Whether this torch has FSDP2 (``torch.distributed.fsdp.fully_shard``, torch >= 2.6)."""
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return False
    return True


def suite_worker(rank: int, out_dir: Path) -> None:
    """Run every section of SECTIONS; save ``{name: result, or the traceback text if it raised}``."""
    results = {}
    for name, section in SECTIONS.items():
        if section is None:
            continue
        try:
            results[name] = section(rank, out_dir)
        except Exception:
            results[name] = traceback.format_exc()
    torch.save(results, out_dir / f"rank{rank}.pt")


def load_results(out_dir: Path) -> dict:
    """Rank 0's results per section; a section that raised on any rank maps to its traceback text."""
    ranks = [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]
    results = {}
    for name, result in ranks[0].items():
        failures = [f"rank {rank}:\n{r[name]}" for rank, r in enumerate(ranks) if isinstance(r[name], str)]
        results[name] = "\n".join(failures) if failures else result
    return results


def make_model(seed: int = 0, shape: tuple[int, int] = BIG_SHAPE) -> nn.Module:
    """A ``shape`` weight (by default bigger than the engine's block) and small ones, same on all ranks."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(shape[1], shape[0]), nn.Tanh(), nn.Linear(shape[0], 3))


def shard(model: nn.Module) -> nn.Module:
    """``model`` under FSDP2: every parameter a DTensor sharded on dim 0 across the two ranks.

    One FSDP group kept gathered through backward: two collectives per step, as few as FSDP2 allows
    (gloo moving megabytes on loopback dominates these tests' time).
    """
    from torch.distributed.fsdp import fully_shard

    return fully_shard(model, reshard_after_forward=False)


def full_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter as one full tensor (DTensor shards gathered), keyed by name."""
    full = {}
    for name, param in model.named_parameters():
        value = param.full_tensor() if hasattr(param, "full_tensor") else param
        full[name] = value.detach().clone()
    return full


def train(model: nn.Module, optimizer: torch.optim.Optimizer, rank: int, steps: range) -> None:
    """Least squares on a batch that differs per rank and per step (so gradients are averaged)."""
    for step in steps:
        generator = torch.Generator().manual_seed(1000 * step + rank)
        inputs = torch.randn(8, _in_features(model), generator=generator)
        targets = torch.randn(8, 3, generator=generator)
        optimizer.zero_grad()
        functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def _in_features(model: nn.Module) -> int:
    return next(layer for layer in model.modules() if isinstance(layer, nn.Linear)).in_features


def _both_libraries(name: str) -> tuple[tuple[str, type], ...]:
    return (("descentlab", getattr(dl, name)), ("torch", getattr(torch.optim, name)))


def fsdp_section(rank: int, out_dir: Path) -> dict:
    """FSDP2: each FSDP_OPTIMIZERS entry of both libraries trained FSDP_STEPS steps from one init."""
    results = {"initial": full_parameters(make_model())}
    for name in FSDP_OPTIMIZERS:
        for library, cls in _both_libraries(name):
            model = shard(make_model())
            train(model, cls(model.parameters(), **TORCH_TWINS[name]), rank, range(FSDP_STEPS))
            results[name, library] = full_parameters(model)
    return results


# Chains with per-tensor reductions (trust ratios over the whole tensor): a DTensor shard's norm is not the
# tensor's, so under FSDP2 compiled=True must not hand their shards to the generated kernel.
# Chains with reductions a shard cannot take: LAMB's and LARS's per-tensor norms, SWATS's dot products over
# the group (its switch test; eps = 1e-2 lets it switch at step 2), Prodigy's sums over the group (its d).
PER_TENSOR_OPTIMIZERS: dict[str, dict] = {
    "LAMB": {"lr": 1e-2, "weight_decay": 1e-2},
    "LARS": {"lr": 0.1},
    "SWATS": {"lr": 1e-2, "eps": 1e-2},
    "SWATS-per-tensor": {"lr": 1e-2, "eps": 1e-2, "switch_rtol": 0.5, "variant": "per-tensor"},
    "Prodigy": {"d0": 1e-3},
    "Prodigy-paper": {"d0": 1e-3, "variant": "paper"},
}


def per_tensor_section(rank: int, out_dir: Path) -> dict:
    """Each PER_TENSOR_OPTIMIZERS entry under FSDP2, eager and with compiled=True, and eagerly under DDP
    (whole tensors, the same averaged gradients): the reference for the norms of the sharded runs."""
    from torch.nn.parallel import DistributedDataParallel

    results = {"initial": full_parameters(make_model())}
    for name, hyper in PER_TENSOR_OPTIMIZERS.items():
        cls = getattr(dl, name.split("-")[0])
        for run, compiled in (("fsdp2 eager", False), ("fsdp2 compiled", True)):
            model = shard(make_model())
            optimizer = cls([{"params": list(model.parameters()), "compiled": compiled}], **hyper)
            train(model, optimizer, rank, range(3))
            results[name, run] = full_parameters(model)
            results[name, run, "learnt"] = _learnt(optimizer)
        model = DistributedDataParallel(make_model())
        optimizer = cls(model.parameters(), **hyper)
        train(model, optimizer, rank, range(3))
        results[name, "ddp"] = full_parameters(model.module)
        results[name, "ddp", "learnt"] = _learnt(optimizer)
    results["Prodigy slice_p=2", "error"] = _first_step_error(dl.Prodigy, slice_p=2)
    return results


def _first_step_error(cls: type, **hyper) -> str | None:
    """The message of the error that ``cls`` raises at its first step under FSDP2 (``None``: no error)."""
    model = shard(make_model())
    try:
        train(model, cls(model.parameters(), **hyper), dist.get_rank(), range(1))
    except ValueError as error:
        return str(error)
    return None


def _learnt(optimizer: torch.optim.Optimizer) -> list | None:
    """What the group sums decided: SWATS's switch steps, Prodigy's raw estimate and ``||s||_1`` of each group
    (its d stays d0 on these targets, the estimate being negative), else ``None``."""
    if hasattr(optimizer, "switch_steps"):
        return optimizer.switch_steps()
    if isinstance(optimizer, dl.Prodigy):
        return [float(group[key]) for group in optimizer.param_groups for key in ("d_hat", "d_denom")]
    return None


def ddp_section(rank: int, out_dir: Path) -> dict:
    """DDP: every TORCH_TWINS entry of both libraries trained STEPS steps from the same init."""
    from torch.nn.parallel import DistributedDataParallel

    results = {"initial": full_parameters(make_model(shape=SMALL_SHAPE))}
    for name, hyper in TORCH_TWINS.items():
        for library, cls in _both_libraries(name):
            model = DistributedDataParallel(make_model(shape=SMALL_SHAPE))
            optimizer = cls(model.parameters(), **hyper)
            if library == "descentlab":
                optimizer.block_numel = SMALL_BLOCK
            train(model, optimizer, rank, range(STEPS))
            results[name, library] = full_parameters(model.module)
    return results


def zero_section(rank: int, out_dir: Path) -> dict:
    """ZeroRedundancyOptimizer over each library's Adam, with and without parameters as bucket views."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    results = {"initial": full_parameters(make_model(shape=SMALL_SHAPE))}
    for bucket_view in (False, True):
        for library, cls in _both_libraries("Adam"):
            model = DistributedDataParallel(make_model(shape=SMALL_SHAPE))
            optimizer = ZeroRedundancyOptimizer(
                model.parameters(),
                optimizer_class=cls,
                parameters_as_bucket_view=bucket_view,
                **TORCH_TWINS["Adam"],
            )
            if library == "descentlab":
                optimizer.optim.block_numel = SMALL_BLOCK
            train(model, optimizer, rank, range(STEPS))
            optimizer.consolidate_state_dict(to=0)
            state = optimizer.state_dict()["state"] if rank == 0 else {}
            results[bucket_view, library] = (full_parameters(model.module), state)
    return results


def dcp_section(rank: int, out_dir: Path) -> dict:
    """FSDP2 + DCP: 2 steps, save, load into a fresh model and optimizer, 2 more; versus 4 straight."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    results = {"initial": full_parameters(make_model())}
    for name in FSDP_OPTIMIZERS:
        cls, hyper = getattr(dl, name), TORCH_TWINS[name]
        model = shard(make_model())
        optimizer = cls(model.parameters(), **hyper)
        train(model, optimizer, rank, range(4))
        straight = full_parameters(model)

        model = shard(make_model())
        optimizer = cls(model.parameters(), **hyper)
        train(model, optimizer, rank, range(2))
        checkpoint = {
            "model": get_model_state_dict(model),
            "optim": get_optimizer_state_dict(model, optimizer),
        }
        dcp.save(checkpoint, checkpoint_id=out_dir / name)

        # A different init, so that only the checkpoint can make the resumed run equal the straight one.
        model = shard(make_model(seed=1))
        optimizer = cls(model.parameters(), **hyper)
        checkpoint = {
            "model": get_model_state_dict(model),
            "optim": get_optimizer_state_dict(model, optimizer),
        }
        dcp.load(checkpoint, checkpoint_id=out_dir / name)
        set_model_state_dict(model, checkpoint["model"])
        set_optimizer_state_dict(model, optimizer, checkpoint["optim"])
        train(model, optimizer, rank, range(2, 4))
        results[name] = (straight, full_parameters(model))
    return results


SECTIONS = {
    "fsdp": fsdp_section if has_fully_shard() else None,
    "ddp": ddp_section,
    "zero": zero_section,
    "dcp": dcp_section if has_fully_shard() else None,
    "per_tensor": per_tensor_section if has_fully_shard() else None,
}
