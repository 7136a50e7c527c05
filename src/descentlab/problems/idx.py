"""Reading IDX files, the format of MNIST and Fashion-MNIST, optionally gzip-compressed.

Layout (big-endian): two zero bytes, a type code, the number of dimensions ``d``; then ``d``
unsigned 32-bit sizes; then the data in C order. Type codes: 0x08 unsigned byte, 0x09 signed byte,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

Reference: LeCun, Cortes & Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/ (section "File formats for the MNIST database").

The header is read and checked before any data: the data size it declares is computed exactly (Python
integers, so a product of sizes cannot wrap around), a size above ``max_bytes`` is refused, and then
exactly that many bytes are read, in chunks, so memory follows what the file really holds. A small ``.gz``
that decompresses to gigabytes therefore costs no more than its header claims, and at most ``max_bytes``.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = "0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64"
# Four times the largest IDX file we know of (EMNIST ByClass training images: 697,932 x 28 x 28 bytes,
# 547 MB); a header claiming more is far likelier damaged or hostile than real.
MAX_DATA_BYTES = 2**31
_CHUNK_BYTES = 2**20  # read in pieces, so a truncated file never costs much more than it holds


class IdxFormatError(ValueError):
    """An IDX file whose header or length does not follow the format."""


@dataclass(frozen=True)
class IdxHeader:
    """What the first ``4 + 4 * len(shape)`` bytes of an IDX file declare."""

    dtype: np.dtype
    shape: tuple[int, ...]
    raw: bytes

    @property
    def data_bytes(self) -> int:
        """Bytes of data the header promises; exact, as Python integers do not overflow."""
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        """``shape (…) of <dtype> needs N data bytes after the H-byte header``, for error messages."""
        return (
            f"shape {self.shape} of {self.dtype.name} needs {self.data_bytes} data bytes after the "
            f"{len(self.raw)}-byte header"
        )


def _read_header(stream: IO[bytes], path: Path) -> IdxHeader:
    magic = stream.read(4)
    if len(magic) < 4:
        raise IdxFormatError(f"{path}: {len(magic)} bytes, too short for the 4-byte IDX magic number")
    zero_high, zero_low, type_code, dimensions = magic
    if zero_high or zero_low or type_code not in IDX_TYPES or dimensions == 0:
        raise IdxFormatError(
            f"{path}: bad magic number 0x{magic.hex()}; an IDX file starts with two zero bytes, a type "
            f"code ({_TYPE_NAMES}) and the number of dimensions >= 1, e.g. 0x00000803 for MNIST images "
            "and 0x00000801 for labels"
        )
    sizes = stream.read(4 * dimensions)
    if len(sizes) < 4 * dimensions:
        raise IdxFormatError(
            f"{path}: truncated header; {dimensions} dimensions need {4 + 4 * dimensions} header bytes, "
            f"found {4 + len(sizes)}"
        )
    return IdxHeader(IDX_TYPES[type_code], struct.unpack(f">{dimensions}I", sizes), magic + sizes)


def _length_error(path: Path, header: IdxHeader, found: int | None) -> IdxFormatError:
    """The error for data of the wrong length; ``found=None``: more than needed, by an unknown amount."""
    if found is None:
        return IdxFormatError(f"{path}: longer than its header says; {header.describe()}, found more")
    problem = "truncated" if found < header.data_bytes else "longer than its header says"
    return IdxFormatError(f"{path}: {problem}; {header.describe()}, found {found}")


def _read_data(stream: IO[bytes], path: Path, header: IdxHeader) -> list[bytes]:
    """Exactly ``header.data_bytes`` bytes, in chunks; an error if the stream ends early or goes on."""
    chunks, remaining = [], header.data_bytes
    while remaining:
        chunk = stream.read(min(remaining, _CHUNK_BYTES))
        if not chunk:
            raise _length_error(path, header, header.data_bytes - remaining)
        chunks.append(chunk)
        remaining -= len(chunk)
    if stream.read(1):  # one byte, not the rest: the rest may be gigabytes of a decompression bomb
        raise _length_error(path, header, None)
    return chunks


def _read_idx(path: Path, max_bytes: int) -> tuple[IdxHeader, bytes]:
    """The checked header and the file's (decompressed) bytes, header included."""
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    compressed = path.suffix == ".gz"
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
            header = _read_header(stream, path)
            if header.data_bytes > max_bytes:
                raise IdxFormatError(
                    f"{path}: the header claims shape {header.shape} of {header.dtype.name}, "
                    f"{header.data_bytes} bytes of data, more than max_bytes={max_bytes}; the file is "
                    "damaged, or pass a larger max_bytes if it really is that large"
                )
            if not compressed:  # a plain file's length is known without reading it
                found = os.fstat(stream.fileno()).st_size - len(header.raw)
                if found != header.data_bytes:
                    raise _length_error(path, header, found)
            return header, b"".join([header.raw, *_read_data(stream, path, header)])
    except (OSError, EOFError, zlib.error) as error:
        if not compressed:
            raise
        raise IdxFormatError(
            f"{path}: not a readable gzip file ({error}); re-download or gunzip it"
        ) from error


def read_idx_bytes(path: str | os.PathLike[str], max_bytes: int = MAX_DATA_BYTES) -> bytes:
    """The (decompressed) bytes of a well-formed IDX file, header included; checked as by :func:`load_idx`."""
    return _read_idx(Path(path), max_bytes)[1]


def load_idx(path: str | os.PathLike[str], max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    """Load an IDX file (``.gz`` allowed) as a native-endian NumPy array of the stored shape.

    ``max_bytes`` bounds the data size a header may declare (default :data:`MAX_DATA_BYTES`, 2 GiB).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IdxFormatError: bad magic number, unknown type code, a header declaring more than ``max_bytes``
            bytes, or data shorter or longer than the declared shape; the message names the file and
            what was expected.
    """
    header, raw = _read_idx(Path(path), max_bytes)
    data = np.frombuffer(raw, dtype=header.dtype, offset=len(header.raw)).reshape(header.shape)
    return data.astype(header.dtype.newbyteorder("="))
