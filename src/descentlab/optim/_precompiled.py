"""The generated kernel's compiled entries kept on disk, so that a fresh process loads one without tracing.

An entry is dynamo's ahead-of-time compile of one bucket's update (``torch.compile(...).aot_compile``):
its guards, its transformed bytecode and inductor's compiled graph, serialized together. Loading one skips
what a warm inductor cache still costs every process (dynamo's trace of the engine's update, AOTAutograd's
cache key and importing inductor's compiler), which kept the first step above 2 s.

The file of an entry is named by a hash of what the entry was compiled for: the class, the source of this
package's optimizers (every module of :mod:`descentlab.optim`, since the trace inlines the engine and the
transforms), torch's build and inductor's and dynamo's settings, and the call's arguments as the guards see
them (each tensor's type, dtype, device, shape, strides and grad flag; every other hyperparameter's value).
A loaded entry must still pass its own guards before it runs (the name only finds the candidate), and
anything that fails to read, to load or to pass them is compiled anew and written again. Files go to
``descentlab-precompiled/`` in inductor's cache folder (``TORCHINDUCTOR_CACHE_DIR``), written atomically;
deleting the folder only costs the next process a trace, and ``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``
(inductor's switch for all its caches) turns this one off too (dynamo then compiles in each process, as
it refuses to compile ahead of time without caches).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from descentlab.atomic import write_bytes

FOLDER = "descentlab-precompiled"
logger = logging.getLogger("descentlab.optim")


def entry_path(cls: type, arguments: dict[str, Any]) -> Path:
    """Where the entry compiled for ``cls`` and ``arguments`` (those of the traced update) is kept."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    parts = [cls.__module__, cls.__qualname__, _sources(), _settings(), _described(arguments)]
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    return Path(cache_dir()) / FOLDER / f"{cls.__name__}-{digest[:40]}.bin"


def load(path: Path, f_globals: dict[str, Any]) -> Any:
    """The entry saved at ``path`` (with ``f_globals``, the traced function's globals), or ``None`` where
    there is none or it cannot be loaded (another torch, a damaged file): then the caller compiles."""
    if caches_disabled():
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    from descentlab.optim._hoisting import _lazy_kernel_templates
    from descentlab.optim._remembered_probes import remembered_probes

    try:
        with remembered_probes(), _lazy_kernel_templates():
            return torch.compiler.load_compiled_function(io.BytesIO(data), f_globals=f_globals)
    except Exception as error:  # whatever a stale or damaged file raises: compile anew
        logger.info(
            "descentlab: the precompiled kernel %s could not be loaded (%s); compiling anew", path, error
        )
        return None


def save(entry: Any, path: Path) -> None:
    """Write ``entry`` to ``path`` atomically; an entry that cannot be serialized or a folder that cannot be
    written only costs later processes a trace (said once on the ``descentlab.optim`` logger, at info)."""
    if caches_disabled():
        return
    try:
        data = type(entry).serialize(entry).serialized_data
        write_bytes(path, data, parents=True)
    except Exception as error:  # torch's PackageError, a pickling error, OSError
        logger.info("the compiled kernel could not be saved to %s (%s)", path, error)


def caches_disabled() -> bool:
    """Inductor's own switch for every cache (``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``) turns this one off."""
    import torch._inductor.config as inductor_config

    return bool(inductor_config.force_disable_caches)


@functools.cache
def _sources() -> str:
    """A hash of every module of :mod:`descentlab.optim` (the code a compiled entry was traced from)."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _settings() -> str:
    """torch's build and inductor's and dynamo's current settings (a user may change them between runs)."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    settings = [
        torch.__version__,
        torch.version.git_version,
        sorted(inductor_config.save_config_portable().items()),
        sorted(dynamo_config.save_config_portable().items()),
    ]
    return hashlib.sha256(json.dumps(settings, default=_stable_repr).encode()).hexdigest()


def _stable_repr(value: Any) -> Any:
    """A JSON stand-in for a setting's value that is the same in every process (sets sorted)."""
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    return repr(value)


def _described(value: Any) -> Any:
    """``value`` (an argument of the traced update) as its guards see it, in JSON terms."""
    if isinstance(value, Tensor):
        return [type(value).__name__, str(value.dtype), str(value.device), list(value.shape),
                list(value.stride()), value.requires_grad]  # fmt: skip
    if isinstance(value, dict):
        return [[str(key), _described(item)] for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [_described(item) for item in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    if hasattr(value, "params") and hasattr(value, "state"):  # a Bucket
        return [_described(value.params), _described(value.grads), _described(dict(value.state))]
    return type(value).__qualname__
