"""timm: make ``timm.optim.create_optimizer_v2(model, "descentlab.radam", ...)`` build descentlab's RAdam.

:func:`register` adds one ``timm.optim.OptimInfo`` per gradient-protocol descentlab optimizer to the
registry that ``create_optimizer_v2`` consults (``timm.optim._optim_factory.default_registry``; timm
exports no other handle on it). Names are ``"descentlab."`` plus the lower-case class name, without
``_``: timm splits names on ``_`` (``lookahead_adamw``), so ``descentlab.radam`` composes as
``lookahead_descentlab.radam``. timm passes ``weight_decay`` to every optimizer and its param groups
(no decay on parameters with at most one dimension), so only classes taking ``weight_decay`` are
registered; closure optimizers are left out, since timm's training loop calls ``step()`` without one.

timm imports torchvision; on a CPU-only torch there is no matching torchvision wheel (see the README).
"""

from __future__ import annotations

import inspect
from typing import Any

from descentlab.optim.registry import optimizer_classes, step_protocol

__all__ = ["PREFIX", "register", "timm_descriptions"]

PREFIX = "descentlab."


def timm_descriptions() -> list[dict[str, Any]]:
    """The ``OptimInfo`` fields of each registrable optimizer (plain data; needs no timm)."""
    descriptions = []
    for cls in optimizer_classes().values():
        parameters = inspect.signature(cls).parameters
        if step_protocol(cls) != "gradient" or "weight_decay" not in parameters:
            continue
        descriptions.append(
            {
                "name": PREFIX + cls.__name__.lower(),
                "opt_class": cls,
                "description": f"descentlab {cls.__name__}: {cls.reference}",
                # timm passes one number as eps; Adafactor's eps is torch's pair (eps1, eps2)
                "has_eps": "eps" in parameters and not isinstance(parameters["eps"].default, tuple),
                "has_momentum": "momentum" in parameters,
                "has_betas": "betas" in parameters,
            }
        )
    return descriptions


def register() -> list[str]:
    """Register descentlab's optimizers with timm (idempotent); returns the names registered."""
    try:
        from timm.optim import OptimInfo
        from timm.optim._optim_factory import default_registry
    except ImportError as error:
        raise ImportError(
            f"descentlab.integrations.timm.register needs timm (and a torchvision matching torch): {error}"
        ) from error
    names = []
    for description in timm_descriptions():
        # timm logs a warning when a name is registered twice; skip names already ours.
        if description["name"] not in default_registry._optimizers:
            default_registry.register(OptimInfo(**description))
        names.append(description["name"])
    return names
