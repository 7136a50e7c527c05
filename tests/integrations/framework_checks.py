"""Which optional frameworks import here (shared by the integration tests)."""

import importlib.util


def timm_imports() -> bool:
    """Whether ``timm.optim`` imports: it needs a torchvision built for the installed torch."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm.optim  # noqa: F401
    except (ImportError, RuntimeError):  # a CUDA torchvision beside a CPU torch raises RuntimeError
        return False
    return True
