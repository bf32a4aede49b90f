"""torchvision's raw folders accept the standard `*-ubyte.gz` files once they are gunzipped.

torchvision's MNIST family (and this engine's `_torchvision_present`) looks for the uncompressed
`train-images-idx3-ubyte` etc. in `<root>/<Class>/raw`; the `.gz` files a user downloads by hand and
copies there are ignored. `gunzip_raw` decompresses each `*-ubyte.gz` whose uncompressed twin is
missing, so "copy the files into …/MNIST/raw" works with the files as they are published.
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

GZ_PATTERN = "*-ubyte.gz"


def gz_without_twin(folder: str | Path) -> list[Path]:
    """The `*-ubyte.gz` files in `folder` whose uncompressed twin is not there (cheap: reads no data)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(gz for gz in folder.glob(GZ_PATTERN) if gz.is_file() and not gz.with_suffix("").exists())


def gunzip_raw(folder: str | Path) -> list[Path]:
    """Decompress every `*-ubyte.gz` in `folder` that lacks its uncompressed twin; return the files written.

    The `.gz` files are kept. Each twin is written to a `.part` file first and renamed when complete, so an
    interrupted run never leaves a half-written file that looks finished. A `.gz` that cannot be decompressed
    raises OSError naming it (load_raw's handler turns OSError into DatasetUnavailable).
    """
    written = []
    for gz in gz_without_twin(folder):
        plain = gz.with_suffix("")
        part = plain.with_name(plain.name + ".part")
        try:
            with gzip.open(gz, "rb") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, zlib.error) as exc:
            part.unlink(missing_ok=True)
            raise OSError(f"{gz} is not a complete gzip file ({exc}); download it again") from None
        part.replace(plain)
        written.append(plain)
    return written
