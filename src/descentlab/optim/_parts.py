"""A bucket cut into its repeated layers, so that the generated kernel compiles one layer, not the model.

A cold compile grows with the number of tensors it traces (inductor's lowering, fusion and code
generation visit each tensor's loops): 188 s for SWATS's per-tensor variant on a 196-tensor transformer
on 2 cores. A deep model repeats one layer's shapes many times over, and a compiled entry serves any
tensors of its shapes; so a bucket is cut into parts of whole layers (:func:`repeated_parts`), each part
is one call, and the layers after the first reuse the first's entry. That SWATS then compiles in 16 s,
LAMB in 15 s, Muon in 10 s (were 188, 55 and 49 s; ``benchmarks/results/step_speed.md``).

Each call costs about 25 us of Python (dynamo's guards and wrappers) and one more OpenMP region, which
matters for an elementwise chain. Paired in one process on a 2-core Xeon (transformer-10M, 16 blocks of
12 tensors), compiled Adam was 0.950 of torch's fused Adam's time whole, 1.002 in parts of 8 blocks
and 1.046 in parts of 4; in a fresh process with a fresh cache folder (vector-ISA checks included) the
cold compile was 41.5 s whole and 28.0 s in parts of 8 blocks, NAdam's 54.7 s and 37.9 s. A compile is
paid once per machine and a step at every step; the cold compile's target (30 s) decides: a part holds
at least :data:`ELEMENTWISE_PART` tensors for an elementwise chain (only models deep enough for two
such parts are cut), at least :data:`AVERAGING_PART` where the kernel also updates WeightAveraging's
averages (a fifth list: around Adam on the transformer, on a 2-core AMD EPYC, 39.6 s in parts of 8
blocks, 26.5 s in parts of 4), and at least :data:`REDUCING_PART` for one with per-tensor reductions (LAMB's
norms) or sums over the group (SWATS's switch test, whose kernel returns each part's dot products for
the engine to add: ``UpdateSums``), whose compile grows fastest with its tensor count. Where a count of
layers from that minimum to twice it divides the run, every part has that many (16 blocks: two parts of
8, not 6, 6 and 4), so the parts share one compiled entry.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence

# The fewest tensors of a part: for an elementwise chain, for one that also updates a wrapper's averages
# (WeightAveraging's, fused into the update's loop), and for one with per-tensor reductions.
ELEMENTWISE_PART = 64
AVERAGING_PART = 32
REDUCING_PART = 8
# The longest layer (in tensors) looked for.
MAX_PERIOD = 64


def repeated_parts(keys: Sequence[Hashable], min_tensors: int) -> tuple[tuple[int, ...], ...]:
    """The indices of a bucket's tensors as parts: the longest run of a repeated layer cut into parts of
    ``ceil(min_tensors / layer)`` layers, the rest (tensors before and after the run) as one part first.

    ``keys`` identify what a compiled entry specialises on (each tensor's shape). Every index is in
    exactly one part. Where no layer repeats enough to fill two parts, or the run would save compiling
    fewer than a quarter of the tensors, the bucket is one part. Cached: called with the same keys at
    every step.
    """
    return _parts(tuple(keys), min_tensors)


@functools.lru_cache(maxsize=256)
def _parts(keys: tuple[Hashable, ...], min_tensors: int) -> tuple[tuple[int, ...], ...]:
    count = len(keys)
    whole = (tuple(range(count)),)
    found = _longest_repetition(keys)
    if found is None:
        return whole
    period, start, repeats = found
    layers_per_part = _even_layers(repeats, -(-min_tensors // period))
    if repeats < 2 * layers_per_part or (repeats - 1) * period < count // 4:
        return whole
    end = start + repeats * period
    rest = (*range(start), *range(end, count))
    parts = [rest] if rest else []
    for first in range(0, repeats, layers_per_part):
        last = min(repeats, first + layers_per_part)
        parts.append(tuple(range(start + first * period, start + last * period)))
    return tuple(parts)


def _even_layers(repeats: int, fewest: int) -> int:
    """Layers a part: the first divisor of ``repeats`` from ``fewest`` up to twice that, so every part has
    as many layers (one compiled entry, not one more for a shorter last part), else ``fewest``."""
    return next((layers for layers in range(fewest, 2 * fewest) if repeats % layers == 0), fewest)


def _longest_repetition(keys: tuple[Hashable, ...]) -> tuple[int, int, int] | None:
    """``(period, start, repeats)`` of the run ``keys[start : start + repeats * period]`` made of one
    block of ``period`` keys repeated, chosen to cover the most keys beyond its first block (the shortest
    period on a tie); ``None`` where nothing repeats."""
    count = len(keys)
    best: tuple[int, int, int] | None = None
    best_saved = 0
    for period in range(1, min(MAX_PERIOD, count // 2) + 1):
        run = 0  # how many keys in a row equal the key one period later
        for index in range(count - period + 1):
            if index < count - period and keys[index] == keys[index + period]:
                run += 1
                continue
            repeats = (run + period) // period
            saved = (repeats - 1) * period
            if saved > best_saved:
                best, best_saved = (period, index - run, repeats), saved
            run = 0
    return best
