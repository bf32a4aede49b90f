"""Reading and writing IDX files, the MNIST family's format (optionally gzipped)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch

_DTYPES = {0x08: torch.uint8}


class IdxFormatError(ValueError):
    pass


def read_idx(path: str | Path) -> torch.Tensor:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a download cut short
        raise IdxFormatError(f"{path} is not a complete gzip file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _DTYPES:
        raise IdxFormatError(f"{path}: IDX element type 0x{dtype_code:02x} is not supported (only unsigned bytes)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{path}: the file ends inside its header ({len(data)} bytes of {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = 1
    for size in shape:
        count *= size
    if len(data) - header != count:
        raise IdxFormatError(f"{path}: header says {count} values but the file holds {len(data) - header}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape).clone()


def write_idx(path: str | Path, tensor: torch.Tensor, compress: bool | None = None) -> None:
    path = Path(path)
    tensor = tensor.to(torch.uint8).contiguous()
    header = bytes([0, 0, 0x08, tensor.dim()]) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    payload = header + tensor.numpy().tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        # mtime=0 keeps the bytes identical from one regeneration to the next
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
