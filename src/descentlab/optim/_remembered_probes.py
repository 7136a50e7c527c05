"""Inductor's per-process probes of the toolchain, remembered on disk, so that a fresh process skips them.

Before inductor compiles, or loads from its cache, the first C++ kernel of a process, it probes the
toolchain twice, and a generated kernel's first step pays both in every process even with every cache warm
(``benchmarks/results/generated_kernel.md``):

- **Vector-ISA checks.** For each vector ISA (AMX, AVX512 with VNNI and BF16, AVX2) it builds a small test
  library and spawns a Python subprocess that loads it: ten subprocesses on an AMX Xeon, 1.6-2.9 s.
- **The precompiled header's validation.** Every process preprocesses inductor's C++ prefix header
  (``g++ -E``) and hashes the output to find (or build) the matching precompiled header, even where the
  kernel's library is already built and the header will not be used: 0.15-0.2 s of a 1.3 s warm first
  step on a 2-core AMD EPYC.

Both answers are facts of the machine and its toolchain, so :func:`remembered_probes` keeps them in small
JSON files keyed by everything they depend on (the torch build and interpreter, the compiler binary, the
flags, the test code or header, the CPU's flags, the host, the loader path); a later process with the same
key takes the answer instead of probing. A failed ISA check is never remembered (it may have timed out),
and a remembered header is used only while its precompiled file exists. Torch's own switch
``TORCHINDUCTOR_VEC_ISA_OK=1`` skips the base ISA checks without having run them; this skips a check only
where it passed before, on this machine, with this toolchain. What the header's key cannot see is a system
header changed under an unchanged compiler binary; deleting :data:`HEADER_FILE_NAME` (beside inductor's
precompiled headers) makes the next process validate again.

It patches torch 2.x's ``VecISA.check_build`` and ``codecache._precompile_header`` only while a generated
kernel is being compiled (the ``with`` block; nested and concurrent blocks share one patch) and restores
them after; a torch without one of them is left alone there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from descentlab.atomic import write_text

FILE_NAME = "descentlab-vec-isa-checks.json"  # in inductor's cache folder
HEADER_FILE_NAME = "descentlab-precompiled-headers.json"  # beside inductor's precompiled headers

_lock = threading.Lock()
_depth = 0  # open remembered_probes blocks
_originals: dict[str, Any] = {}  # torch's functions while patched: "check_build", "precompile_header"
_headers: dict[str, str] = {}  # this process's remembered headers, by key


@contextlib.contextmanager
def remembered_probes() -> Iterator[None]:
    """Within the block, inductor's toolchain probes answered before on this machine are not run again."""
    global _depth
    with _lock:
        first = _depth == 0
        if first:
            _install()
        _depth += 1
    try:
        if first:
            _check_isas_at_once()
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()


def _install() -> None:
    try:
        from torch._inductor import codecache, cpu_vec_isa
    except ImportError:  # no inductor: nothing to probe
        return
    if callable(getattr(cpu_vec_isa.VecISA, "check_build", None)):
        _originals["check_build"] = cpu_vec_isa.VecISA.check_build
        cpu_vec_isa.VecISA.check_build = _remembered_check_build
    if callable(getattr(codecache, "_precompile_header", None)):
        _originals["precompile_header"] = codecache._precompile_header
        codecache._precompile_header = _remembered_precompile_header


def _check_isas_at_once() -> None:
    """Run inductor's vector-ISA checks of this CPU's ISAs at the same time, a thread each, before inductor
    asks for them one after another (each builds and loads a test library; on a 2-core AMX Xeon 12.3 s
    in a row, 6.4 s at once, with the same answers). Inductor caches each ISA's verdict, so its own pass
    then reads them; where that pass already ran, or on another architecture, nothing is done here, and
    an error leaves the checks to inductor."""
    try:
        from torch._inductor import cpu_vec_isa

        listing = cpu_vec_isa.valid_vec_isa_list
        if listing.cache_info().currsize or platform.machine() not in ("x86_64", "AMD64"):
            return
        flags = cpu_vec_isa.x86_isa_checker()
        isas = [isa for isa in cpu_vec_isa.supported_vec_isa_list if set(str(isa).split()) <= set(flags)]
        if len(isas) > 1:
            with ThreadPoolExecutor(max_workers=len(isas), thread_name_prefix="descentlab-isa") as pool:
                list(pool.map(bool, isas))
    except Exception:  # an optimisation only: inductor's own pass checks what is left
        return


def _uninstall() -> None:
    if "check_build" in _originals:
        from torch._inductor import cpu_vec_isa

        cpu_vec_isa.VecISA.check_build = _originals.pop("check_build")
    if "precompile_header" in _originals:
        from torch._inductor import codecache

        codecache._precompile_header = _originals.pop("precompile_header")


def _remembered_check_build(isa: Any, code: str) -> bool:
    """``VecISA.check_build`` (build the test ``code`` with ``isa``'s flags and load it), skipped where
    the same check passed before."""
    key = _key(isa, code)
    path = _memo_path()
    if key is not None and key in _read(path):
        return True
    passed = bool(_originals["check_build"](isa, code))
    if passed and key is not None:
        _remember(path, key, f"{isa} {isa.build_arch_flags()}".strip())
    return passed


def _remembered_precompile_header(header: str, hashable_cmd_line: str, **compile_command: Any) -> str:
    """inductor's ``_precompile_header`` (preprocess ``header``, hash it, build its precompiled file if
    missing; returns the header to ``-include``), skipped where it answered before and its file exists."""
    key = _header_key(header, hashable_cmd_line, compile_command)
    path = _header_memo_path()
    if key is not None:
        known = _headers.get(key) or _read(path).get(key)
        if known is not None and os.path.isfile(known) and os.path.isfile(f"{known}.gch"):
            _headers[key] = known
            return known
    answer = _originals["precompile_header"](header, hashable_cmd_line, **compile_command)
    if key is not None and path is not None:
        _headers[key] = answer
        _remember(path, key, answer)
    return answer


def _remember(path: Path, key: str, answer: str) -> None:
    with _lock:  # read again: another process may have added its own answers meanwhile
        answers = _read(path)
        answers[key] = answer
        # A folder we cannot write: the next process probes again, nothing else changes.
        with contextlib.suppress(OSError):
            write_text(path, json.dumps(answers, indent=1, sort_keys=True), parents=True)


def _key(isa: Any, code: str) -> str | None:
    """What the check's verdict depends on, hashed; ``None`` where inductor finds no compiler (the check
    itself will fail, and is not remembered)."""
    compiler = _found_compiler()
    return None if compiler is None else _hashed([compiler, str(isa), isa.build_arch_flags(), code])


def _header_key(header: str, command_line: str, compile_command: dict[str, Any]) -> str | None:
    """What the precompiled header depends on, hashed: the compiler binary (its path, size and time),
    the command line and options, the header file in this torch's includes; ``None`` without a compiler."""
    compiler = _found_compiler()
    if compiler is None:
        return None
    options = sorted((name, str(value)) for name, value in compile_command.items())
    return _hashed(
        [
            _file_facts(shutil.which(compiler) or compiler),
            header,
            command_line,
            options,
            _file_facts(os.path.join(os.path.dirname(torch.__file__), "include", header)),
        ]
    )


def _hashed(parts: list[Any]) -> str:
    """``parts`` and this torch build, interpreter, CPU, host and loader path, hashed."""
    context = [
        torch.__version__,
        torch.version.git_version,
        os.path.dirname(torch.__file__),
        sys.executable,
        _cpu_flags(),
        socket.gethostname(),
        os.environ.get("LD_LIBRARY_PATH", ""),
    ]
    return hashlib.sha256(json.dumps([*context, *parts]).encode()).hexdigest()


def _file_facts(path: str) -> list[Any]:
    """``path`` resolved, with its size and modification time (``[path]`` where it cannot be read)."""
    try:
        real = os.path.realpath(path)
        facts = os.stat(real)
    except OSError:
        return [path]
    return [real, facts.st_size, facts.st_mtime_ns]


def _found_compiler() -> str | None:
    """Inductor's C++ compiler, or ``None`` where its search finds none."""
    try:
        return _compiler()
    except Exception:  # inductor's InvalidCxxCompiler, or whatever its search raises
        return None


def _compiler() -> str:
    from torch._inductor import cpp_builder

    return str(cpp_builder.get_cpp_compiler())  # follows inductor's config.cpp.cxx


@functools.cache
def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _memo_path() -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / FILE_NAME


def _header_memo_path() -> Path | None:
    """Beside inductor's precompiled headers (one folder per machine, whatever the cache folder)."""
    from torch._inductor import codecache

    folder = getattr(codecache, "_HEADER_DIR", None)
    return Path(folder) / HEADER_FILE_NAME if folder else None


def _read(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        verdicts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: probe (and rewrite it)
        return {}
    return verdicts if isinstance(verdicts, dict) else {}
