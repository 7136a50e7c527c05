"""Who beats whom beyond noise: estimates over seeds, paired differences and verdicts.

A configuration is run on several seeds; each seed ends with one final value of the headline metric.
This module turns those values into statements that survive noise and float round-off.

**The rule** ("beats beyond noise", the project's definition). Candidates are ranked by the mean of
their finite values (ties broken by label); the top one is the best, ``B``. Every other candidate ``C``
is compared with ``B`` alone. Differences are oriented so that a positive number means ``B`` is better.
``C`` is *distinguishable from* (worse than) ``B`` only when all of these hold:

1. ``C``'s values are not equal to ``B``'s within ``tolerance`` on every seed they share;
2. the means differ by more than ``tolerance``;
3. either ``B`` and ``C`` share at least two seeds and the 95 % percentile-bootstrap interval of the
   mean paired difference over those seeds lies entirely above ``tolerance`` (so above 0 too), or they
   share fewer than two seeds and the runs are ``deterministic`` (exact, noise-free), in which case the
   difference of the means, already beyond ``tolerance``, decides.

Otherwise ``C`` is *tied* with ``B``: one stochastic run per configuration is not evidence, and runs on
different seeds cannot be paired. :attr:`Verdict.tied` is ``B`` plus every candidate tied with it, best
first; :attr:`Verdict.winner` is ``B`` only when nothing is tied with it and there were at least two
candidates. A single candidate is "only one configuration": ``winner`` is ``None`` because nothing was
beaten, ``tied`` is the candidate alone.

``tolerance`` is the smallest difference that means anything; for metrics computed in floating point,
:func:`resolution` gives it from the dtype and the metric's scale (e.g. the loss at the start).

Bootstrap intervals use a fixed generator seed, so every result is reproducible and independent of the
order in which candidates are given; the resampling weights for a given ``n`` are drawn once and reused.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

INTERVAL_LEVEL = 0.95
"""Coverage of every bootstrap interval of this module."""

DEFAULT_RESAMPLES = 4000
"""Bootstrap resamples: enough that the 2.5 % and 97.5 % quantiles move by well under a standard error."""

RESOLUTION_ULPS = 8
"""``k`` of :func:`resolution`: machine epsilons (times the scale) that round-off alone can produce.

A final metric and the value another run reaches are each the result of a handful of rounded operations
(a few products and sums of a loss) on numbers of about the metric's scale; each rounding errs by up to
half an epsilon of that scale, so two runs that reach the same point can differ by several ``eps·scale``.
Eight covers about sixteen such roundings while staying far below any difference an optimizer makes.
"""

_EPSILON = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,  # 8 significand bits; numpy has no bfloat16 to ask
}


@dataclass(frozen=True)
class Estimate:
    """The mean of one configuration's final values over its seeds, with its uncertainty.

    ``std`` is the sample standard deviation (0 for one value); ``low``/``high`` the 95 % percentile
    bootstrap interval of the mean, equal to ``mean`` when there is one value or all are ``identical``.
    """

    n: int
    mean: float
    std: float
    low: float
    high: float
    identical: bool


@dataclass(frozen=True)
class PairedDifference:
    """The mean of ``a - b`` over the seeds both share, with its 95 % bootstrap interval."""

    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`decide`.

    ``winner`` is the best candidate when it is distinguishable from every other one, else ``None``;
    ``tied`` is the best and every candidate not distinguishable from it, best first (empty when there
    is no candidate); ``reason`` says why, in a few words, about the comparison of the best with
    ``versus`` (the runner-up when there is a winner, the closest tied candidate otherwise; ``None``
    when there is at most one candidate).
    """

    winner: str | None
    tied: tuple[str, ...]
    reason: str
    versus: str | None = None

    def sentence(self, name: Callable[[str], str] = str) -> str:
        """``"A"`` for a winner, ``"tie: A, B"``, ``"only A"`` or ``"none"``; ``name`` displays a label."""
        if self.winner is not None:
            return name(self.winner)
        if len(self.tied) > 1:
            return "tie: " + ", ".join(name(label) for label in self.tied)
        if self.tied:
            return f"only {name(self.tied[0])}"
        return "none"


def _check_resamples(resamples: int) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")


@functools.lru_cache(maxsize=64)
def _resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """Row ``r`` weighs the ``n`` values as bootstrap resample ``r`` does: ``weights @ values`` are means."""
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    weights = counts / n
    weights.setflags(write=False)
    return weights


def _summarise(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float, bool]:
    """``(mean, low, high, identical)`` of a non-empty array of finite values."""
    identical = bool(np.all(values == values[0]))
    if identical:
        # Summing n copies and dividing can move the mean by an ulp; an exact tie must stay exact.
        value = float(values[0])
        return value, value, value, True
    mean = math.fsum(values.tolist()) / len(values)
    means = _resample_weights(len(values), resamples, seed) @ values
    tail = (1.0 - INTERVAL_LEVEL) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # A resampled mean cannot leave [min, max]; clipping removes round-off that would.
    return mean, float(max(low, values.min())), float(min(high, values.max())), False


def _is_finite_number(value: object) -> bool:
    return value is not None and math.isfinite(value)


def estimate(
    values: Iterable[float | None], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Estimate | None:
    """Mean, sample std and 95 % bootstrap interval of the finite ``values``; ``None`` if there are none.

    ``None``, NaN and infinite values are dropped. ``seed`` fixes the bootstrap generator.

    >>> estimate([1.0, 1.0, float("nan")])
    Estimate(n=2, mean=1.0, std=0.0, low=1.0, high=1.0, identical=True)
    """
    _check_resamples(resamples)
    finite = np.array([float(value) for value in values if _is_finite_number(value)], dtype=np.float64)
    if finite.size == 0:
        return None
    mean, low, high, identical = _summarise(finite, resamples, seed)
    std = 0.0 if identical or finite.size == 1 else float(np.std(finite, ddof=1))
    return Estimate(n=int(finite.size), mean=mean, std=std, low=low, high=high, identical=identical)


def resolution(dtype: str, scale: float) -> float:
    """The smallest difference that means anything between values of size ``scale`` computed in ``dtype``.

    ``RESOLUTION_ULPS * eps(dtype) * |scale|``; ``dtype`` is ``"float64"``, ``"float32"``, ``"float16"``
    or ``"bfloat16"``, optionally written as torch prints it (``"torch.float32"``; a ``torch.dtype``
    works too). ``scale`` is the magnitude of the metric, e.g. the loss at the start of training.

    >>> resolution("float32", 1.0) == 8 * 2.0**-23
    True
    """
    name = str(dtype).removeprefix("torch.")
    if name not in _EPSILON:
        raise ValueError(f"dtype must be one of {sorted(_EPSILON)} (or 'torch.<name>'), got {dtype!r}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    return RESOLUTION_ULPS * _EPSILON[name] * abs(scale)


def _finite_by_seed(label: str, values: Mapping[int, float]) -> dict[int, float]:
    if not isinstance(values, Mapping):
        raise TypeError(f"candidates[{label!r}] must map seed -> final value, got {type(values).__name__}")
    return {seed: float(value) for seed, value in values.items() if _is_finite_number(value)}


def paired_difference(
    a: Mapping[int, float],
    b: Mapping[int, float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedDifference | None:
    """Mean of ``a[s] - b[s]`` over the seeds ``s`` where both are finite, with its 95 % bootstrap interval.

    ``None`` when no seed has a finite value in both. With one common seed, or when every difference
    is the same, the interval collapses to the mean.
    """
    _check_resamples(resamples)
    a, b = _finite_by_seed("a", a), _finite_by_seed("b", b)
    common = sorted(a.keys() & b.keys())
    if not common:
        return None
    differences = np.array([a[s] - b[s] for s in common], dtype=np.float64)
    mean, low, high, _ = _summarise(differences, resamples, seed)
    return PairedDifference(n=len(common), mean=mean, low=low, high=high)


def _mean(values: Mapping[int, float]) -> float:
    numbers = list(values.values())
    if all(value == numbers[0] for value in numbers):
        return numbers[0]
    return math.fsum(numbers) / len(numbers)


def _ranked(finite: Mapping[str, Mapping[int, float]], higher_is_better: bool) -> list[str]:
    sign = -1.0 if higher_is_better else 1.0
    return sorted(finite, key=lambda label: (sign * _mean(finite[label]), label))


def rank(candidates: Mapping[str, Mapping[int, float]], higher_is_better: bool) -> list[str]:
    """Labels best first by the mean of their finite values, then by label; those with none come last."""
    finite = {label: _finite_by_seed(label, values) for label, values in candidates.items()}
    scored = {label: values for label, values in finite.items() if values}
    return _ranked(scored, higher_is_better) + sorted(set(finite) - set(scored))


def _number(value: float) -> str:
    return f"{value:.3g}"


def _seeds(count: int) -> str:
    return f"{count} common seed" + ("" if count == 1 else "s")


def _compare(
    best: Mapping[int, float],
    other: Mapping[int, float],
    sign: float,
    tolerance: float,
    tolerance_name: str,
    deterministic: bool,
) -> tuple[bool, str]:
    """Whether ``other`` is distinguishable from (worse than) ``best``, and why, as a short phrase.

    ``sign`` orients differences so that positive means ``best`` is better.
    """
    common = sorted(best.keys() & other.keys())
    differences = np.array([sign * (best[s] - other[s]) for s in common], dtype=np.float64)
    within = f"the {tolerance_name} {_number(tolerance)}"
    if common and np.all(np.abs(differences) <= tolerance):
        equal = "equal" if tolerance == 0 else f"within {within}"
        where = "the one common seed" if len(common) == 1 else f"all {_seeds(len(common))}"
        return False, f"{equal} on {where}"
    gap = sign * (_mean(best) - _mean(other))
    if gap <= tolerance:
        return False, ("equal means" if tolerance == 0 else f"mean difference {_number(gap)} within {within}")
    if len(common) >= 2:
        mean, low, high, _ = _summarise(differences, DEFAULT_RESAMPLES, 0)
        bounds = f"[{_number(low)}, {_number(high)}]"
        interval = f"95 % interval {bounds}"
        if low > tolerance:
            better = int(np.sum(differences > 0))
            share = "all" if better == len(common) else f"{better} of"
            return True, f"on {share} {_seeds(len(common))}: mean difference {_number(mean)} {bounds}"
        if low <= 0 <= high:
            return False, f"difference within noise: {interval} contains 0"
        if high < 0:
            return False, f"ahead only on seeds not shared: {interval} over the {_seeds(len(common))}"
        return False, f"difference within noise: {interval} does not clear {within}"
    if deterministic:
        return True, f"by {_number(gap)} (deterministic runs)"
    if common:
        return False, "one seed only: a difference on one stochastic run is not evidence"
    return False, "no common seed: runs on different seeds cannot be paired"


def decide(
    candidates: Mapping[str, Mapping[int, float]],
    *,
    higher_is_better: bool,
    tolerance: float = 0.0,
    deterministic: bool = False,
    tolerance_name: str = "tolerance",
) -> Verdict:
    """Apply the module's rule to ``candidates`` (label -> {seed: final value}) and say who wins.

    Non-finite values are dropped and candidates left without any are ignored; diverged runs should be
    excluded by the caller. ``tolerance`` (>= 0, e.g. :func:`resolution`) is the smallest meaningful
    difference and ``tolerance_name`` how the reason calls it (e.g. ``"float32 resolution"``);
    ``deterministic`` declares the runs exact and noise-free, so a single seed can decide.
    """
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be a bool, got {higher_is_better!r}")
    if not (isinstance(tolerance, numbers.Real) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    finite = {label: _finite_by_seed(label, values) for label, values in candidates.items()}
    finite = {label: values for label, values in finite.items() if values}
    ranked = _ranked(finite, higher_is_better)
    if not ranked:
        return Verdict(winner=None, tied=(), reason="no candidate has a finite value")
    best = ranked[0]
    if len(ranked) == 1:
        return Verdict(winner=None, tied=(best,), reason="only one configuration")
    sign = 1.0 if higher_is_better else -1.0
    outcomes = {
        label: _compare(finite[best], finite[label], sign, tolerance, tolerance_name, deterministic)
        for label in ranked[1:]
    }
    tied = (best, *(label for label in ranked[1:] if not outcomes[label][0]))
    if len(tied) == 1:
        runner_up = ranked[1]
        return Verdict(
            winner=best, tied=tied, reason=f"beats the runner-up {outcomes[runner_up][1]}", versus=runner_up
        )
    closest = tied[1]
    return Verdict(winner=None, tied=tied, reason=outcomes[closest][1], versus=closest)
