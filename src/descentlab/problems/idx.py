"""Reading IDX files, the format of MNIST and Fashion-MNIST, optionally gzip-compressed.

Layout (big-endian): two zero bytes, a type code, the number of dimensions ``d``; then ``d``
unsigned 32-bit sizes; then the data in C order. Type codes: 0x08 unsigned byte, 0x09 signed byte,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

Reference: LeCun, Cortes & Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/ (section "File formats for the MNIST database").
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

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


class IdxFormatError(ValueError):
    """An IDX file whose header or length does not follow the format."""


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when the name ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise IdxFormatError(
            f"{path}: not a readable gzip file ({error}); re-download or gunzip it"
        ) from error


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Load an IDX file (``.gz`` allowed) as a native-endian NumPy array of the stored shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IdxFormatError: bad magic number, unknown type code, or a header/data length that does not
            match the declared shape; the message names the file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    raw = read_bytes(path)
    if len(raw) < 4:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, too short for the 4-byte IDX magic number")
    zero_high, zero_low, type_code, dimensions = raw[:4]
    if zero_high or zero_low or type_code not in IDX_TYPES or dimensions == 0:
        raise IdxFormatError(
            f"{path}: bad magic number 0x{raw[:4].hex()}; an IDX file starts with two zero bytes, a type "
            f"code ({_TYPE_NAMES}) and the number of dimensions >= 1, e.g. 0x00000803 for MNIST images "
            "and 0x00000801 for labels"
        )
    header_length = 4 + 4 * dimensions
    if len(raw) < header_length:
        raise IdxFormatError(
            f"{path}: truncated header; {dimensions} dimensions need {header_length} header bytes, "
            f"found {len(raw)}"
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=dimensions, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - header_length
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise IdxFormatError(
            f"{path}: {problem}; shape {shape} of {dtype.name} needs {expected} data bytes after the "
            f"{header_length}-byte header, found {found}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_length).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
