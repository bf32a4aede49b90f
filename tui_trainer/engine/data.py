"""Datasets: found on disk, bundled, or downloaded, then held as normalized tensors on the device.

Which datasets there are, and what each is (its classes, shape, loader, normalisation, fingerprint and the traits
its loader reads), is engine/registry.py's: `load_raw` and `dataset_status` ask a dataset's entry, and the loaders
here (bundled IDX files, torchvision's folders) read its traits, never its name.

Each split is converted once; training indexes into device tensors, so no
DataLoader, PIL image or per-sample transform sits in the hot loop.
"""

from __future__ import annotations

import hashlib
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch

from .gz_raw import gunzip_raw
from .idx import IdxFormatError, read_idx
from .registry import (CIFAR10_CLASSES, DATASETS, FASHION_CLASSES, KMNIST_CLASSES, MNIST_CLASSES, DatasetEntry,
                       resolve)

# (bytes done, bytes total or None, what is being done: "Downloading mnist", "Converting images of my-set")
DownloadProgress = Callable[[int, int | None, str], None]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Kept for what imported them from here; the entries carry them.
FASHION_CLASSES = list(FASHION_CLASSES)
MNIST_CLASSES = list(MNIST_CLASSES)
KMNIST_CLASSES = list(KMNIST_CLASSES)
CIFAR10_CLASSES = list(CIFAR10_CLASSES)


class DatasetUnavailable(RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says where we looked and what to do."""


@dataclass(frozen=True)
class RawDataset:
    """uint8 images [N, C, H, W] and int64 labels, straight from the files."""

    spec: DatasetEntry
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # where it was read from


@dataclass(frozen=True)
class DeviceData:
    """Normalized float splits living on the training device."""

    spec: DatasetEntry
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_images: torch.Tensor  # uint8 on the CPU, for drawing sample predictions
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    fingerprint: str = ""  # sha256 (first 16 hex digits) of the training images and labels, in order

    @property
    def classes(self) -> list[str]:
        return list(self.spec.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def default_data_dir() -> Path:
    env = os.environ.get("SCRATCH_TUI_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("scratch-tui")) / "datasets"


def bundled_dir(entry: DatasetEntry | None = None) -> Path:
    """The folder of a dataset that ships with the package (fashion-mnist-mini's by default)."""
    folder = entry.trait("folder") if entry is not None else DATASETS.entry("fashion-mnist-mini").trait("folder")
    return Path(str(resources.files("tui_trainer") / "datasets" / folder))


def load_raw(name: str, data_dir: str | Path | None = None, progress: DownloadProgress | None = None,
             download: bool = True, config: Any = None) -> RawDataset:
    """The dataset `name` as uint8 images and int64 labels, by its entry's loader (downloading it if asked), given
    the config's fields the entry reads (its `settings`)."""
    entry = DATASETS.entry(name)
    settings = {s: getattr(config, s) for s in entry.settings} if config is not None else {}
    return resolve(entry.load)(entry, data_dir, progress, download, **settings)


def dataset_status(name: str, data_dir: str | Path | None = None) -> str:
    """'bundled', 'on disk' or 'needs download (30 MB)' — cheap, reads no image data."""
    entry = DATASETS.entry(name)
    return resolve(entry.status)(entry, data_dir)


# -- bundled IDX files ---------------------------------------------------------------------------------------------
def load_bundled(entry: DatasetEntry, data_dir: str | Path | None = None, progress: DownloadProgress | None = None,
                 download: bool = True) -> RawDataset:
    return _read_idx_dir(entry, bundled_dir(entry))


def bundled_status(entry: DatasetEntry, data_dir: str | Path | None = None) -> str:
    return "bundled"


def _idx_dir_complete(folder: Path) -> bool:
    return all((folder / f).exists() or (folder / (f + ".gz")).exists() for f in IDX_FILES.values())


def _read_idx_dir(spec: DatasetEntry, folder: Path) -> RawDataset:
    def load(key: str) -> torch.Tensor:
        plain = folder / IDX_FILES[key]
        return read_idx(plain if plain.exists() else plain.with_name(plain.name + ".gz"))

    images = {k: load(k) for k in ("train_images", "test_images")}
    if any(v.dim() != 3 for v in images.values()):
        raise IdxFormatError(f"{folder}: the image files do not hold N images of H×W pixels")
    labels = {k: load(k).long() for k in ("train_labels", "test_labels")}
    return checked(RawDataset(spec, images["train_images"].unsqueeze(1), labels["train_labels"],
                              images["test_images"].unsqueeze(1), labels["test_labels"], str(folder)))


def checked(raw: RawDataset) -> RawDataset:
    """`raw` when its files agree with each other and with its entry: one label per image, each a class of the
    entry's; else IdxFormatError saying which split is wrong (files cut short, or mixed from two sets)."""
    classes = len(raw.spec.classes)
    for split, images, labels in (("training", raw.train_images, raw.train_labels),
                                  ("test", raw.test_images, raw.test_labels)):
        if labels.dim() != 1 or len(labels) != len(images):
            raise IdxFormatError(f"{raw.source}: the {split} split has {len(images):,} images but "
                                 f"{labels.numel():,} labels")
        if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
            raise IdxFormatError(f"{raw.source}: the {split} labels run from {int(labels.min())} to "
                                 f"{int(labels.max())}, but {raw.spec.name} has classes 0 to {classes - 1}")
    return raw


# -- torchvision's folders -----------------------------------------------------------------------------------------
# An entry's traits: `torchvision_class` (the torchvision.datasets class whose files these are), `layout` ("raw":
# IDX files in <root>/<class>/raw, as the MNIST family; "batches": python batches of HWC images in the class's base
# folder, as CIFAR), `idx_folders` (other folders that may hold its IDX files) and `install_hint`.
def _torchvision(entry: DatasetEntry):
    import torchvision.datasets as tvd

    return getattr(tvd, entry.trait("torchvision_class"))


def _batches(entry: DatasetEntry) -> bool:
    return entry.trait("layout") == "batches"


def _torchvision_folder(spec: DatasetEntry, root: Path) -> Path:
    cls = _torchvision(spec)
    if _batches(spec):
        return root / cls.base_folder
    return root / cls.__name__ / "raw"


def _torchvision_present(spec: DatasetEntry, root: Path) -> bool:
    cls = _torchvision(spec)
    folder = _torchvision_folder(spec, root)
    if _batches(spec):
        names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    else:
        names = [os.path.splitext(f)[0] for f, _ in cls.resources]
    # the .gz files as distributed count: loading decompresses them (gunzip_raw)
    return all((folder / n).exists() or (folder / (n + ".gz")).exists() for n in names)


def _idx_folders(spec: DatasetEntry) -> list[Path]:
    return [Path(p) for p in spec.trait("idx_folders", ())]


def _load_torchvision(spec: DatasetEntry, root: Path) -> RawDataset:
    cls = _torchvision(spec)
    train = cls(str(root), train=True, download=False)
    test = cls(str(root), train=False, download=False)

    def images(ds) -> torch.Tensor:
        data = ds.data
        if _batches(spec):  # numpy N,H,W,C
            return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
        return data.unsqueeze(1)

    def labels(ds) -> torch.Tensor:
        return torch.as_tensor(ds.targets, dtype=torch.long)

    return checked(RawDataset(spec, images(train), labels(train), images(test), labels(test),
                              str(_torchvision_folder(spec, root))))


def _candidate_places(spec: DatasetEntry, root: Path) -> list[Path]:
    return [_torchvision_folder(spec, root), *_idx_folders(spec)]


def torchvision_status(spec: DatasetEntry, data_dir: str | Path | None = None) -> str:
    root = Path(data_dir) if data_dir else default_data_dir()
    if _torchvision_present(spec, root):
        return "on disk"
    if any(_idx_dir_complete(folder) for folder in _idx_folders(spec)):
        return "on disk"
    return f"needs download ({spec.download_mb:.0f} MB)"


def load_torchvision(spec: DatasetEntry, data_dir: str | Path | None = None,
                     progress: DownloadProgress | None = None, download: bool = True) -> RawDataset:
    name = spec.name
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    try:
        if _torchvision_present(spec, root):
            if not _batches(spec):
                gunzip_raw(_torchvision_folder(spec, root))  # torchvision reads only the decompressed files
            return _load_torchvision(spec, root)
        for folder in _idx_folders(spec):
            if _idx_dir_complete(folder):
                return _read_idx_dir(spec, folder)
    # torchvision checks its files' headers with asserts; a gzip cut short ends in EOFError or zlib.error
    except (IdxFormatError, RuntimeError, OSError, ValueError, AssertionError, EOFError, zlib.error,
            struct.error) as exc:
        raise DatasetUnavailable(f"{name}: the files in {_torchvision_folder(spec, root)} could not be read "
                                 f"({exc}); delete them to download afresh") from None
    places = ", ".join(str(p) for p in _candidate_places(spec, root))
    if not download:
        raise DatasetUnavailable(f"{name} is not on this machine (looked in {places}); "
                                 f"run without --no-download to fetch it ({spec.download_mb:.0f} MB)")
    try:
        download_dataset(spec, root, progress)
    except OSError as exc:
        hint = f" or {spec.trait('install_hint')}" if spec.trait("install_hint") else ""
        raise DatasetUnavailable(
            f"{name} is not on this machine (looked in {places}) and the download failed ({_reason(exc)}); "
            f"connect to the internet and retry, copy the files into {_torchvision_folder(spec, root)}{hint}, "
            f"or use the bundled fashion-mnist-mini"
        ) from None
    return _load_torchvision(spec, root)


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"network unreachable: {exc.reason}"
    return str(exc) or type(exc).__name__


def _fetch(url: str, dest: Path, progress: DownloadProgress | None, label: str) -> None:
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        done = 0
        while chunk := response.read(1 << 16):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total, f"Downloading {label}")
    tmp.replace(dest)


def download_dataset(spec: DatasetEntry, root: Path, progress: DownloadProgress | None = None) -> None:
    """Fetch the files torchvision expects, from torchvision's own mirror list, checking their MD5."""
    from torchvision.datasets.utils import check_integrity, extract_archive

    cls = _torchvision(spec)
    if _batches(spec):
        jobs = [([cls.url], cls.filename, cls.tgz_md5, root)]
    else:
        raw = _torchvision_folder(spec, root)
        jobs = [([m + f for m in cls.mirrors], f, md5, raw) for f, md5 in cls.resources]
    for urls, filename, md5, folder in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / filename
        last_error: OSError | None = None
        for url in urls:
            try:
                _fetch(url, dest, progress, f"{spec.name}: {filename}")
                if not check_integrity(str(dest), md5):
                    dest.unlink(missing_ok=True)
                    raise OSError(f"{filename} from {url} failed its MD5 check")
                last_error = None
                break
            except OSError as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        extract_archive(str(dest), str(folder))


def prepare(raw: RawDataset, device: torch.device, val_split: float = 0.1, seed: int = 0,
            max_train_samples: int = 0) -> DeviceData:
    """Split validation off train (seeded), normalize by the dataset's entry (the training split's statistics),
    move to device; the fingerprint is the entry's too."""
    n = raw.train_images.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_split))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if max_train_samples:
        train_idx = train_idx[:max_train_samples]
    # Sorting keeps memory access sequential; shuffling happens per epoch anyway.
    train_idx, val_idx = train_idx.sort().values, val_idx.sort().values

    train_u8 = raw.train_images[train_idx]
    mean, std = resolve(raw.spec.normalise)(train_u8)

    def to_device(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device).float().div_(255.0)
        shape = (1, -1, 1, 1)
        return x.sub_(mean.float().to(device).view(shape)).div_(std.float().to(device).view(shape))

    return DeviceData(
        spec=raw.spec,
        train_x=to_device(train_u8),
        train_y=raw.train_labels[train_idx].to(device),
        val_x=to_device(raw.train_images[val_idx]),
        val_y=raw.train_labels[val_idx].to(device),
        test_x=to_device(raw.test_images),
        test_y=raw.test_labels.to(device),
        test_images=raw.test_images,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        source=raw.source,
        fingerprint=resolve(raw.spec.fingerprint)(train_u8, raw.train_labels[train_idx]),
    )


def channel_statistics(train_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and std over the training images, on the 0-1 scale: what every split is normalised by."""
    pixels = train_u8.transpose(0, 1).reshape(train_u8.shape[1], -1).double() / 255.0
    return pixels.mean(dim=1), pixels.std(dim=1).clamp_min(1e-6)


def fingerprint(*tensors: torch.Tensor) -> str:
    """Names exactly these bytes: two runs with the same fingerprint trained on the same images and labels."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
