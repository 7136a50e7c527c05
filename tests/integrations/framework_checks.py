"""Which optional frameworks import here (shared by the integration tests)."""

import os

REQUIRE_TIMM = "DESCENTLAB_REQUIRE_TIMM"
"""Set (to anything) by ``make test-timm``: there timm must import, so its tests cannot skip quietly."""


def timm_imports() -> bool:
    """Whether ``timm.optim`` imports: it needs a torchvision built for the installed torch.

    Where ``DESCENTLAB_REQUIRE_TIMM`` is set, a timm that does not import raises instead.
    """
    try:
        import timm.optim  # noqa: F401
    except (ImportError, RuntimeError):  # a CUDA torchvision beside a CPU torch raises RuntimeError
        if os.environ.get(REQUIRE_TIMM):
            raise
        return False
    return True
