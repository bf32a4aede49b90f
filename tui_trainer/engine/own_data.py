"""A dataset of the user's own: an image folder, a Keras-style `.npz` or a Kaggle-style CSV.

`load_own(path)` converts the source once into the shape every built-in dataset has (uint8 images
[N, C, H, W] of one size, int64 labels, a train and a test split) and caches the result keyed by a
fingerprint of the source's bytes, so the second load reads one file. Accepted sources:

- an image folder in torchvision's ImageFolder layout, `PATH/train/<class>/*.png|jpg|…` and optionally
  `PATH/test/<class>/…` (or the class folders straight under `PATH`, which then has no test split);
  class names are the folder names, in name order (numeric order when every name is a number);
- a `.npz` with Keras's keys `x_train`, `y_train` and optionally `x_test`, `y_test` (images (N,H,W),
  (N,H,W,C), (N,C,H,W) or flat (N,P); uint8, integers 0..255, or floats in [0,1] or [0,255]);
- a CSV of `label,p1,…,pP` rows as in Kaggle's digit recognizer (a header row allowed); a twin file
  whose name has "test" for "train" (`mnist_train.csv` → `mnist_test.csv`) is its test split when it
  has the label column too.

Without a test split a fixed, stratified 1/6 of each class is held out as the test set (seeded, so the
same source always gives the same split) and `OwnDataset.notice` says so. For a `.npz` or CSV, class
names come from a `classes.txt` next to the file (one per line), else "0".."K-1".

Every problem with the source is an `OwnDataError` whose message is one line naming the file and what
to fix.
"""

from __future__ import annotations

import hashlib
import re
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .data import fingerprint as data_fingerprint

# (done, total or None, what is being done): the shape of engine.data.DownloadProgress. done and total
# count bytes of the source converted, so a bar or an "x/y MB" line drawn for a download reads true.
Progress = Callable[[int, int | None, str], None]

HOLD_OUT = 1 / 6  # the share of each class held out as the test set when the source has none
HOLD_OUT_SEED = 0
HOLD_OUT_TEXT = "1/6"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
CACHE_VERSION = 1
FALLBACK_MAX_BYTES = 4 << 30
_CSV_CHUNK = 2048  # rows parsed at a time


class OwnDataError(ValueError):
    """A source that cannot be used as it is; the message is one line naming the file and what to fix."""


@dataclass(frozen=True)
class OwnDataset:
    """A user's dataset, converted: the fields engine.data.RawDataset has, plus what was learnt on the way."""

    name: str  # the folder's name or the file's stem
    kind: str  # "folder", "npz" or "csv"
    source: str  # the path it was read from
    classes: list[str]
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, ...]  # per channel, pixels scaled to [0, 1], over the training split
    std: tuple[float, ...]
    fingerprint: str  # engine.data.fingerprint(train_images, train_labels): 16 hex digits
    source_key: str  # sha256 of the source's bytes and the conversion options: the cache key
    held_out: bool  # the test split was held out of the training images (the source had none)
    notice: str = ""  # one line for the user when something was decided for them ("" when nothing)
    from_cache: bool = False
    cache_path: str | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for t in (self.train_images, self.train_labels, self.test_images, self.test_labels))


# -- the public helpers --------------------------------------------------------------------------------------

def own_kind(path: str | Path) -> str:
    """"folder", "npz" or "csv"; OwnDataError for anything else. Cheap: reads no data."""
    path = Path(path).expanduser()
    if not path.exists():
        raise OwnDataError(f"{path} does not exist; give an image folder, a .npz or a .csv file")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".npz", ".csv"):
        return suffix[1:]
    raise OwnDataError(f"{path} is not a folder, .npz or .csv; give an image folder (train/<class>/*.png), "
                       f"a .npz with x_train, y_train, x_test, y_test, or a CSV of label,p1,…,pN rows")


def default_max_bytes() -> int:
    """Half the memory available now (Linux's MemAvailable), else 4 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_MAX_BYTES


def memory_needed(n_images: int, image_shape: tuple[int, int, int]) -> int:
    """Bytes a set of this size takes: its uint8 images and int64 labels, and the float32 copy training makes."""
    c, h, w = image_shape
    return n_images * (c * h * w * (1 + 4) + 8)


def stratified_hold_out(labels: torch.Tensor, share: float = HOLD_OUT,
                        seed: int = HOLD_OUT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices), both sorted: `share` of each class (at least one of a class with two or
    more images) goes to the test side, chosen by a seeded permutation — the same labels give the same split."""
    generator = torch.Generator().manual_seed(seed)
    test_parts = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        k = int(round(len(members) * share))
        if k == 0 and len(members) >= 2:
            k = 1
        test_parts.append(members[torch.randperm(len(members), generator=generator)[:k]])
    test = torch.cat(test_parts).sort().values if test_parts else torch.empty(0, dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[test] = False
    return torch.nonzero(keep).flatten(), test


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of uint8 images [N, C, H, W] scaled to [0, 1], as engine.data.prepare
    computes them, summed in chunks so a large set needs no float copy of itself."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in images.split(4096):
        x = chunk.transpose(0, 1).reshape(channels, -1).double().div_(255.0)
        total += x.sum(dim=1)
        squares += (x * x).sum(dim=1)
    n = images.numel() // channels
    mean = total / n
    var = (squares - n * mean * mean) / max(n - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


# -- load_own -------------------------------------------------------------------------------------------------

@dataclass
class _Converted:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: list[str]
    why_no_test: str = ""  # when the source has a test file that could not serve


def load_own(path: str | Path, image_shape: tuple[int, int, int] | None = None,
             resize: tuple[int, int] | None = None, progress: Progress | None = None,
             cache_dir: str | Path | None = None, *, max_bytes: int | None = None,
             name: str | None = None) -> OwnDataset:
    """Convert an image folder, a `.npz` or a CSV into uint8 tensors, or read the cached conversion.

    image_shape: (C, H, W) of one converted image; how a flat row (CSV, 2-D npz) is read (needed when its
        length is not a square), the channels a folder's images are converted to (1 grey, 3 RGB), and the
        size every image must already have unless `resize` scales them.
    resize: (H, W) every image is scaled to (PIL for image files, antialiased bilinear for arrays).
    progress: called as progress(bytes done, bytes total, label) while converting; not on a cache hit.
    cache_dir: where the conversion is kept, keyed by the source's bytes and these options; None: no cache.
    max_bytes: refuse a set that needs more memory than this (see memory_needed); default half of the memory
        available (default_max_bytes).
    """
    path = Path(path).expanduser()
    kind = own_kind(path)
    name = name or (path.name if kind == "folder" else path.stem)
    image_shape, resize = _check_options(path, image_shape, resize)
    budget = default_max_bytes() if max_bytes is None else max_bytes

    if kind == "folder":
        layout = _folder_layout(path)
        files = [f for _, f in layout.items]
        extra: list[Path] = []
    else:
        layout = None
        files = [path]
        extra = [f for f in (_classes_file(path), _csv_test_twin(path) if kind == "csv" else None) if f]
    key = _source_key(kind, path, files + extra, image_shape, resize)

    cache_file = Path(cache_dir).expanduser() / f"{_safe(name)}-{key[:24]}.pt" if cache_dir else None
    if cache_file is not None:
        cached = _read_cache(cache_file, key, name, kind, path)
        if cached is not None:
            return cached

    report = _Reporter(progress, name)
    if kind == "folder":
        converted = _convert_folder(path, layout, image_shape, resize, budget, report)
    elif kind == "npz":
        converted = _convert_npz(path, image_shape, resize, budget, report)
    else:
        converted = _convert_csv(path, image_shape, resize, budget, report)

    train_x, train_y = converted.train_x, converted.train_y
    notice = ""
    if converted.test_x is None:
        train_idx, test_idx = stratified_hold_out(train_y)
        test_x, test_y = train_x[test_idx], train_y[test_idx]
        train_x, train_y = train_x[train_idx], train_y[train_idx]
        held_out = True
        notice = (f"{converted.why_no_test}{path.name} has no test split: {len(test_y):,} of its "
                  f"{len(test_y) + len(train_y):,} training images ({HOLD_OUT_TEXT} of each class, seed "
                  f"{HOLD_OUT_SEED}) are held out as the test set")
    else:
        test_x, test_y = converted.test_x, converted.test_y
        held_out = False
    mean, std = channel_stats(train_x)
    dataset = OwnDataset(
        name=name, kind=kind, source=str(path), classes=converted.classes,
        train_images=train_x.contiguous(), train_labels=train_y.contiguous(),
        test_images=test_x.contiguous(), test_labels=test_y.contiguous(),
        mean=mean, std=std, fingerprint=data_fingerprint(train_x, train_y), source_key=key,
        held_out=held_out, notice=notice,
    )
    if cache_file is not None and _write_cache(cache_file, dataset):
        dataset = replace(dataset, cache_path=str(cache_file))
    return dataset


def _check_options(path: Path, image_shape, resize):
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or min(shape) < 1 or shape[0] not in (1, 3):
            raise OwnDataError(f"{path}: image_shape {tuple(image_shape)} is not (C, H, W) with C 1 or 3")
        image_shape = shape
    if resize is not None:
        size = tuple(int(v) for v in resize)
        if len(size) != 2 or min(size) < 1:
            raise OwnDataError(f"{path}: resize {tuple(resize)} is not (H, W)")
        resize = size
    if image_shape and resize and image_shape[1:] != resize:
        raise OwnDataError(f"{path}: image_shape {image_shape} and resize {resize} disagree on the size; "
                           f"give one, or the same height and width in both")
    return image_shape, resize


class _Reporter:
    """Throttled progress in bytes: at most 20 calls a second, and always the last one."""

    def __init__(self, progress: Progress | None, name: str):
        self.progress = progress
        self.name = name
        self._last = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if done >= total or now - self._last >= 0.05:
            self._last = now
            self.progress(done, total, f"{what[:1].upper()}{what[1:]} of {self.name}")  # "Converting images of x"


def _check_budget(path: Path, n_images: int, shape: tuple[int, int, int], budget: int) -> None:
    need = memory_needed(n_images, shape)
    if need > budget:
        c, h, w = shape
        raw = n_images * c * h * w
        raise OwnDataError(
            f"{path}: {n_images:,} images of {c}×{h}×{w} need {_size(need)} ({_size(raw)} as uint8, "
            f"{_size(4 * raw)} as float32 for training), over the {_size(budget)} allowed; "
            f"pass resize=(H, W) to make them smaller, use fewer images, or raise max_bytes")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # unreachable


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "data"


# -- fingerprint of the source and the cache ------------------------------------------------------------------

def _source_key(kind: str, root: Path, files: Iterable[Path], image_shape, resize) -> str:
    """sha256 over the conversion's version and options, then each file's name (relative to the source) and bytes."""
    digest = hashlib.sha256(f"own-data v{CACHE_VERSION}|{kind}|{image_shape}|{resize}".encode())
    base = root if kind == "folder" else root.parent
    for file in files:
        digest.update(b"\0" + file.relative_to(base).as_posix().encode() + b"\0")
        digest.update(str(file.stat().st_size).encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


_TENSORS = ("train_images", "train_labels", "test_images", "test_labels")


def _read_cache(file: Path, key: str, name: str, kind: str, path: Path) -> OwnDataset | None:
    if not file.is_file():
        return None
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
        if payload.get("version") != CACHE_VERSION or payload.get("key") != key:
            return None
        return OwnDataset(
            name=name, kind=kind, source=str(path), classes=list(payload["classes"]),
            **{t: payload[t] for t in _TENSORS},
            mean=tuple(payload["mean"]), std=tuple(payload["std"]), fingerprint=payload["fingerprint"],
            source_key=key, held_out=bool(payload["held_out"]), notice=payload["notice"],
            from_cache=True, cache_path=str(file),
        )
    except Exception:  # a damaged or foreign cache file is converted afresh and overwritten
        return None


def _write_cache(file: Path, dataset: OwnDataset) -> bool:
    payload = {"version": CACHE_VERSION, "key": dataset.source_key, "classes": list(dataset.classes),
               "mean": list(dataset.mean), "std": list(dataset.std), "fingerprint": dataset.fingerprint,
               "held_out": dataset.held_out, "notice": dataset.notice}
    payload.update({t: getattr(dataset, t) for t in _TENSORS})
    part = file.with_name(file.name + ".part")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, part)
        part.replace(file)
    except OSError:  # no cache is slower, not wrong
        part.unlink(missing_ok=True)
        return False
    return True


# -- classes and labels for .npz and CSV ----------------------------------------------------------------------

def _classes_file(path: Path) -> Path | None:
    file = path.parent / "classes.txt"
    return file if file.is_file() else None


def _classes_and_check(path: Path, splits: list[tuple[torch.Tensor, Path, Callable[[int], str]]]) -> list[str]:
    """Class names for labelled arrays, training split first; every label checked against them. Each split comes
    with its file and a function naming the place of its i-th label, for the message."""
    classes_file = _classes_file(path)
    names = None
    if classes_file is not None:
        try:
            names = [line.strip() for line in classes_file.read_text(encoding="utf-8-sig").splitlines()
                     if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise OwnDataError(f"{classes_file} could not be read ({_one_line(exc)}); "
                               f"write one class name per line in UTF-8") from None
        if len(names) < 2:
            raise OwnDataError(f"{classes_file} names {len(names)} class{'es' if len(names) != 1 else ''}; "
                               f"a classifier needs at least two, one name per line")
    for labels, file, where in splits:
        if len(labels) == 0:
            continue
        low = int(labels.min())
        if low < 0:
            i = int(torch.nonzero(labels == low)[0])
            raise OwnDataError(f"{file}: {where(i)} holds label {low}; labels must be 0 or more "
                               f"(0..K-1 for K classes)")
        if names is not None and int(labels.max()) >= len(names):
            i = int(torch.nonzero(labels >= len(names))[0])
            raise OwnDataError(f"{file}: {where(i)} holds label {int(labels[i])}, "
                               f"but {classes_file} names {len(names)} classes (labels 0..{len(names) - 1}); "
                               f"fix the label or name every class there")
    train = splits[0][0]
    distinct = torch.unique(train)
    if len(distinct) < 2:
        only = int(distinct[0]) if len(distinct) else None
        raise OwnDataError(f"{path}: every training label is {only}: one class only; "
                           f"a classifier needs images of at least two classes")
    if names is None:
        top = max(int(labels.max()) for labels, _, _ in splits if len(labels))
        names = [str(i) for i in range(top + 1)]
    return names


def _whole_labels(values: np.ndarray, path: Path, where: Callable[[int], str]) -> torch.Tensor:
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise OwnDataError(f"{path}: labels of shape {values.shape} are not one class number per image "
                           f"(one-hot labels: save labels.argmax(1))")
    if values.dtype.kind in "fc":
        bad = np.nonzero(~np.isfinite(values) | (values != np.round(values)))[0]
        if len(bad):
            raise OwnDataError(f"{path}: {where(int(bad[0]))} holds label {values[bad[0]]}, "
                               f"not a whole number; labels are class numbers 0..K-1")
    elif values.dtype.kind not in "iub":
        raise OwnDataError(f"{path}: labels of type {values.dtype} are not class numbers 0..K-1")
    return torch.from_numpy(values.astype(np.int64))


def _pixels_to_uint8(values: np.ndarray, fractional: bool, path: Path,
                     where: Callable[[int], str]) -> np.ndarray:
    """uint8 pixels from 0..255 values, or from fractions in [0, 1] (scaled by 255) when `fractional`."""
    if values.dtype == np.uint8:
        return values
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = values.min(), values.max()
    if values.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        flat = np.nonzero(~np.isfinite(values.reshape(-1)))[0][0]
        raise OwnDataError(f"{path}: {where(int(flat))} is {values.reshape(-1)[flat]}; pixels must be numbers")
    if low < 0 or high > 255:
        flat = int(np.nonzero(((values < 0) | (values > 255)).reshape(-1))[0][0])
        raise OwnDataError(f"{path}: {where(flat)} is {values.reshape(-1)[flat]}; pixels must be 0..255 "
                           f"(or fractions 0..1)")
    if fractional and high <= 1:
        values = values * 255.0
    return np.rint(values).astype(np.uint8) if values.dtype.kind == "f" else values.astype(np.uint8)


def _array_layout(path: Path, key: str, shape: tuple[int, ...], image_shape, resize):
    """How an array of `shape` holds its images: (layout, source (C, H, W), converted (C, H, W))."""
    if len(shape) == 2:
        per = shape[1]
        if image_shape is not None:
            if int(np.prod(image_shape)) != per:
                raise OwnDataError(f"{path}: {key} has {per} values per image but image_shape {image_shape} "
                                   f"holds {int(np.prod(image_shape))}; give the (C, H, W) they form")
            source = image_shape
        else:
            side = int(round(per ** 0.5))
            if side * side != per:
                raise OwnDataError(f"{path}: {key} has {per} values per image, not a square; "
                                   f"pass image_shape=(C, H, W) to say how they form an image")
            source = (1, side, side)
        layout = "flat"
    elif len(shape) == 3:
        layout, source = "nhw", (1, shape[1], shape[2])
    elif len(shape) == 4 and shape[3] in (1, 3):
        layout, source = "nhwc", (shape[3], shape[1], shape[2])
    elif len(shape) == 4 and shape[1] in (1, 3):
        layout, source = "nchw", (shape[1], shape[2], shape[3])
    else:
        raise OwnDataError(f"{path}: {key} has shape {tuple(shape)}; expected (N, H, W), (N, H, W, C), "
                           f"(N, C, H, W) with C 1 or 3, or (N, pixels)")
    if image_shape is not None and source[0] != image_shape[0]:
        raise OwnDataError(f"{path}: {key} has {source[0]} channel{'s' if source[0] > 1 else ''} but image_shape "
                           f"says {image_shape[0]}; give image_shape=({source[0]}, H, W)")
    target_hw = resize or (image_shape[1:] if image_shape else source[1:])
    if source[1:] != tuple(target_hw) and resize is None:
        raise OwnDataError(f"{path}: {key}'s images are {source[1]}×{source[2]} but image_shape says "
                           f"{target_hw[0]}×{target_hw[1]}; pass resize={tuple(target_hw)} to scale them")
    return layout, source, (source[0], *target_hw)


def _as_nchw(values: np.ndarray, layout: str, source: tuple[int, int, int]) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(values))
    if layout == "flat":
        return x.reshape(len(x), *source)
    if layout == "nhw":
        return x.unsqueeze(1)
    if layout == "nhwc":
        return x.permute(0, 3, 1, 2).contiguous()
    return x


def _resize_tensor(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(images.shape[2:]) == tuple(size):
        return images
    out = torch.empty((len(images), images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, len(images), 1024):
        chunk = images[start:start + 1024].float()
        scaled = torch.nn.functional.interpolate(chunk, size=size, mode="bilinear", antialias=True,
                                                 align_corners=False)
        out[start:start + 1024] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


# -- .npz ------------------------------------------------------------------------------------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype from its .npy header, without reading the data."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                headers[info.filename[:-4]] = (tuple(shape), dtype)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise OwnDataError(f"{path} is not a readable .npz ({_one_line(exc)}); write it with "
                           f"numpy.savez(path, x_train=…, y_train=…, x_test=…, y_test=…)") from None
    return headers


def _convert_npz(path: Path, image_shape, resize, budget: int, report: _Reporter) -> _Converted:
    headers = _npz_headers(path)
    missing = [k for k in ("x_train", "y_train") if k not in headers]
    if ("x_test" in headers) != ("y_test" in headers):
        missing += [k for k in ("x_test", "y_test") if k not in headers]
    if missing:
        held = ", ".join(sorted(headers)) or "no arrays"
        raise OwnDataError(f"{path} lacks {', '.join(missing)} (it holds {held}); save it as "
                           f"numpy.savez(path, x_train=…, y_train=…, x_test=…, y_test=…)")
    has_test = "x_test" in headers
    splits = ("train", "test") if has_test else ("train",)
    layouts = {}
    for split in splits:
        shape = headers[f"x_{split}"][0]
        layouts[split] = _array_layout(path, f"x_{split}", shape, image_shape, resize)
        n_labels = headers[f"y_{split}"][0][0] if headers[f"y_{split}"][0] else 0
        if n_labels != shape[0]:
            raise OwnDataError(f"{path}: x_{split} holds {shape[0]:,} images but y_{split} {n_labels:,} labels; "
                               f"give one label per image")
    if has_test and layouts["test"][2] != layouts["train"][2]:
        raise OwnDataError(f"{path}: x_test's images are {layouts['test'][1]}, x_train's {layouts['train'][1]}; "
                           f"give both splits the same image shape")
    target = layouts["train"][2]
    n_images = sum(headers[f"x_{s}"][0][0] for s in splits)
    _check_budget(path, n_images, target, budget)

    total = sum(int(np.prod(headers[f"x_{s}"][0])) * headers[f"x_{s}"][1].itemsize for s in splits)
    done = 0
    report(0, total, "converting images")
    images, labels = {}, {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for split in splits:
                key = f"x_{split}"
                values = archive[key]
                if values.dtype.kind not in "uifb":
                    raise OwnDataError(f"{path}: {key} holds {values.dtype} values; pixels must be numbers")
                per_image = int(np.prod(values.shape[1:])) or 1

                def where_pixel(flat: int, key=key, per_image=per_image) -> str:
                    return f"{key}[{flat // per_image}] has a pixel that"

                pixels = _pixels_to_uint8(values, values.dtype.kind == "f", path, where_pixel)
                layout, source, shape = layouts[split]
                images[split] = _resize_tensor(_as_nchw(pixels, layout, source), shape[1:])
                labels[split] = _whole_labels(archive[f"y_{split}"], path,
                                              lambda i, split=split: f"y_{split}[{i}]")
                done += values.nbytes
                report(done, total, "converting images")
    except OwnDataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise OwnDataError(f"{path} could not be read ({_one_line(exc)}); write it again with numpy.savez") from None
    classes = _classes_and_check(path, [(labels[s], path, lambda i, s=s: f"y_{s}[{i}]") for s in splits])
    return _Converted(images["train"], labels["train"], images.get("test"), labels.get("test"), classes)


# -- CSV -------------------------------------------------------------------------------------------------------

def _csv_test_twin(path: Path) -> Path | None:
    """`mnist_train.csv` → `mnist_test.csv` (the last "train" in the name), when that file exists."""
    name = path.name
    at = name.lower().rfind("train")
    if at < 0:
        return None
    twin = path.with_name(name[:at] + ("TEST" if name[at:at + 5].isupper() else "test") + name[at + 5:])
    return twin if twin.is_file() and twin != path else None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@dataclass
class _CsvRows:
    file: Path
    header: list[str] | None
    rows: list[tuple[int, str]]  # (line number, 1-based; the line)
    width: int
    nbytes: int


def _csv_rows(file: Path) -> _CsvRows:
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OwnDataError(f"{file} could not be read as text ({_one_line(exc)}); "
                           f"save it as a UTF-8 CSV of label,p1,…,pN rows") from None
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        raise OwnDataError(f"{file} is empty; write one label,p1,…,pN row per image")
    header = None
    first = rows[0][1].split(",")
    if not _is_number(first[0]):
        header = [cell.strip() for cell in first]
        rows = rows[1:]
        if not rows:
            raise OwnDataError(f"{file} has a header row but no images; write one label,p1,…,pN row per image")
    width = len(header) if header else len(rows[0][1].split(","))
    return _CsvRows(file, header, rows, width, len(text.encode()))


def _parse_csv(rows: _CsvRows, report: _Reporter, done: int, total: int) -> tuple[np.ndarray, int]:
    """Every row as float64 [N, width]; the first bad cell is named by row and column."""
    out = np.empty((len(rows.rows), rows.width), dtype=np.float64)
    for start in range(0, len(rows.rows), _CSV_CHUNK):
        chunk = rows.rows[start:start + _CSV_CHUNK]
        try:
            values = np.loadtxt([line for _, line in chunk], delimiter=",", dtype=np.float64, ndmin=2,
                                comments=None)
            if values.shape[1] != rows.width:
                raise ValueError("width")
        except ValueError:
            _find_bad_cell(rows, chunk)
            raise  # _find_bad_cell always raises; this is for the type checker
        out[start:start + len(chunk)] = values
        done += sum(len(line) + 1 for _, line in chunk)
        report(min(done, total), total, "converting images")
    bad = np.nonzero(~np.isfinite(out))
    if len(bad[0]):
        r, c = int(bad[0][0]), int(bad[1][0])
        raise OwnDataError(f"{rows.file}: {_cell(rows, r, c)} is {rows.rows[r][1].split(',')[c].strip()!r}, "
                           f"not a number; every cell must be a number")
    return out, done


def _cell(rows: _CsvRows, r: int, c: int) -> str:
    column = f"column {c + 1}"
    if rows.header and c < len(rows.header) and rows.header[c]:
        column += f" ({rows.header[c]})"
    return f"row {rows.rows[r][0]}, {column}"


def _find_bad_cell(rows: _CsvRows, chunk: list[tuple[int, str]]) -> None:
    for line_no, line in chunk:
        cells = line.split(",")
        if len(cells) != rows.width:
            raise OwnDataError(f"{rows.file}: row {line_no} has {len(cells)} cells but the "
                               f"{'header' if rows.header else 'first row'} has {rows.width}; "
                               f"every row must be label,p1,…,p{rows.width - 1}")
        for c, cell in enumerate(cells):
            if not _is_number(cell):
                column = f"column {c + 1}"
                if rows.header and rows.header[c]:
                    column += f" ({rows.header[c]})"
                raise OwnDataError(f"{rows.file}: row {line_no}, {column} is {cell.strip()!r}, not a number; "
                                   f"every cell must be a number")
    raise OwnDataError(f"{rows.file}: a row between lines {chunk[0][0]} and {chunk[-1][0]} could not be read "
                       f"as numbers; every row must be label,p1,…,pN")


def _convert_csv(path: Path, image_shape, resize, budget: int, report: _Reporter) -> _Converted:
    train_rows = _csv_rows(path)
    if train_rows.width < 2:
        raise OwnDataError(f"{path}: rows of {train_rows.width} cell hold no pixels; "
                           f"every row must be label,p1,…,pN")
    twin = _csv_test_twin(path)
    test_rows, why_no_test = None, ""
    if twin is not None:
        test_rows = _csv_rows(twin)
        if test_rows.width == train_rows.width - 1:  # Kaggle's test.csv: pixels without labels
            why_no_test = f"{twin.name} has no label column, so "
            test_rows = None
        elif test_rows.width != train_rows.width:
            raise OwnDataError(f"{twin}: rows of {test_rows.width} cells, but {path.name}'s have "
                               f"{train_rows.width}; give the test split the same label,p1,…,pN columns")
    sources = [("train", train_rows)] + ([("test", test_rows)] if test_rows else [])
    per = train_rows.width - 1
    layout, source, target = _array_layout(path, "each row", (0, per), image_shape, resize)
    _check_budget(path, sum(len(r.rows) for _, r in sources), target, budget)

    total = sum(r.nbytes for _, r in sources)
    done = 0
    report(0, total, "converting images")
    images, labels, label_places = {}, {}, {}
    for split, rows in sources:
        values, done = _parse_csv(rows, report, done, total)

        def place(i: int, rows=rows) -> str:
            return f"row {rows.rows[i][0]}"

        labels[split] = _whole_labels(values[:, 0], rows.file, place)
        label_places[split] = place
        pixels = values[:, 1:]
        fractional = bool(np.any(pixels != np.round(pixels)))

        def where_pixel(flat: int, rows=rows) -> str:
            return _cell(rows, flat // per, flat % per + 1)

        as_u8 = _pixels_to_uint8(pixels, fractional, rows.file, where_pixel)
        images[split] = _resize_tensor(_as_nchw(as_u8, layout, source), target[1:])
    report(total, total, "converting images")
    classes = _classes_and_check(path, [(labels[s], rows.file, label_places[s]) for s, rows in sources])
    return _Converted(images["train"], labels["train"], images.get("test"), labels.get("test"), classes,
                      why_no_test)


# -- image folders ---------------------------------------------------------------------------------------------

@dataclass
class _FolderLayout:
    train_root: Path
    test_root: Path | None
    classes: list[str]
    items: list[tuple[str, Path]]  # (split, file), train first, class by class, files in name order
    labels: list[int]


def _class_order(names: list[str]) -> list[str]:
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and all(_visible(part) for part in p.relative_to(folder).parents if part.name)
                   and _visible(p)),
                  key=lambda p: p.relative_to(folder).as_posix())


def _class_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and _visible(p)]


def _folder_layout(path: Path) -> _FolderLayout:
    if (path / "train").is_dir():
        train_root, test_root = path / "train", (path / "test" if (path / "test").is_dir() else None)
    else:
        train_root, test_root = path, None
    dirs = {d.name: d for d in _class_dirs(train_root)}
    if not dirs:
        loose = [p for p in train_root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            raise OwnDataError(f"{train_root} holds images but no class folders; put each class's images in "
                               f"a folder of its own: {path}/train/<class>/*.png")
        raise OwnDataError(f"{train_root} is empty; put each class's images in a folder of its own: "
                           f"{path}/train/<class>/*.png (and optionally {path}/test/<class>/*.png)")
    classes = _class_order(list(dirs))
    if len(classes) < 2:
        raise OwnDataError(f"{train_root} holds one class folder ({classes[0]}): one class only; "
                           f"a classifier needs at least two class folders")
    index = {name: i for i, name in enumerate(classes)}
    items, labels = [], []
    for name in classes:
        files = _image_files(dirs[name])
        if not files:
            raise OwnDataError(f"{dirs[name]} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                               f"add some or remove the folder")
        items += [("train", f) for f in files]
        labels += [index[name]] * len(files)
    if test_root is not None:
        test_dirs = {d.name: d for d in _class_dirs(test_root)}
        stray = sorted(set(test_dirs) - set(index))
        if stray:
            raise OwnDataError(f"{test_root / stray[0]} is a class that {train_root} lacks; "
                               f"rename it to one of the training classes or remove it")
        count = 0
        for name in _class_order(list(test_dirs)):
            files = _image_files(test_dirs[name])
            items += [("test", f) for f in files]
            labels += [index[name]] * len(files)
            count += len(files)
        if count == 0:
            raise OwnDataError(f"{test_root} holds no images; put the test images in {test_root}/<class>/, "
                               f"or remove it to hold out {HOLD_OUT_TEXT} of the training images")
    return _FolderLayout(train_root, test_root, classes, items, labels)


def _open_image(file: Path):
    from PIL import Image

    try:
        return Image.open(file)
    except Exception as exc:  # PIL raises several kinds for a damaged file
        raise OwnDataError(f"{file} is not a readable image ({_one_line(exc)}); replace or delete it") from None


def _convert_folder(path: Path, layout: _FolderLayout, image_shape, resize, budget: int,
                    report: _Reporter) -> _Converted:
    from PIL import Image

    files = [f for _, f in layout.items]
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)

    # First pass: headers only (size and colour mode), so the shape and the memory are known before decoding.
    dims, grey = [], True
    done = 0
    for file, nbytes in zip(files, sizes):
        with _open_image(file) as image:
            dims.append((image.height, image.width))
            grey = grey and image.mode in GREY_MODES
        done += nbytes
        report(done, total, "checking images")
    channels = image_shape[0] if image_shape else (1 if grey else 3)
    if resize:
        hw = resize
    else:
        hw = image_shape[1:] if image_shape else dims[0]
        for file, size in zip(files, dims):
            if size != hw:
                other = files[0] if not image_shape else None
                against = (f"{other} is {hw[0]}×{hw[1]}" if other else f"image_shape says {hw[0]}×{hw[1]}")
                raise OwnDataError(f"{file} is {size[0]}×{size[1]} (height×width) but {against}; "
                                   f"pass resize=(H, W) to bring the images to one size")
    shape = (channels, *hw)
    _check_budget(path, len(files), shape, budget)

    # Second pass: decode into the preallocated tensors.
    n_train = sum(1 for split, _ in layout.items if split == "train")
    out = torch.empty((len(files), *shape), dtype=torch.uint8)
    mode = "L" if channels == 1 else "RGB"
    done = 0
    for i, (file, nbytes) in enumerate(zip(files, sizes)):
        with _open_image(file) as image:
            try:
                converted = image.convert(mode)
                if (converted.height, converted.width) != hw:
                    converted = converted.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8)
            except Exception as exc:
                raise OwnDataError(f"{file} is not a readable image ({_one_line(exc)}); "
                                   f"replace or delete it") from None
        out[i] = torch.from_numpy(pixels.reshape(hw[0], hw[1], channels).copy()).permute(2, 0, 1)
        done += nbytes
        report(done, total, "converting images")
    labels = torch.tensor(layout.labels, dtype=torch.long)
    if n_train == len(files):
        return _Converted(out, labels, None, None, list(layout.classes))
    return _Converted(out[:n_train], labels[:n_train], out[n_train:], labels[n_train:], list(layout.classes))


__all__ = ["OwnDataError", "OwnDataset", "Progress", "load_own", "own_kind", "default_max_bytes",
           "memory_needed", "stratified_hold_out", "channel_stats", "HOLD_OUT", "HOLD_OUT_SEED"]
