"""Write a small image folder to try "a dataset of your own" with, in a second or two.

    python examples/make_image_folder.py [FOLDER] [--per-class 100] [--test-per-class 20]

It takes images from the Fashion-MNIST subset bundled with the package and writes them as PNG files in
torchvision's ImageFolder layout, one folder per class named after the class:

    FOLDER/train/Ankle boot/0000.png …   FOLDER/test/Ankle boot/0000.png …

which is the layout `tui_trainer.engine.own_data.load_own` reads (your own photos go the same way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tui_trainer.engine.data import FASHION_CLASSES, IDX_FILES, bundled_dir
from tui_trainer.engine.idx import read_idx


def folder_name(class_name: str) -> str:
    """A class name as a folder name: "T-shirt/top" → "T-shirt-top"."""
    return class_name.replace("/", "-").replace("\\", "-")


def write_split(out: Path, images, labels, per_class: int) -> int:
    written = 0
    for label, class_name in enumerate(FASHION_CLASSES):
        folder = out / folder_name(class_name)
        folder.mkdir(parents=True, exist_ok=True)
        picks = np.nonzero(labels == label)[0][:per_class]
        for n, i in enumerate(picks):
            Image.fromarray(images[i]).save(folder / f"{n:04d}.png")
        written += len(picks)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="fashion-folder", help="where to write (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=100,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=20,
                        help="test images per class; 0 writes no test/ folder, so 1/6 is held out "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)

    out = Path(args.folder)
    if out.exists() and any(out.iterdir()):
        print(f"{out} already exists and is not empty; give another folder or remove it", file=sys.stderr)
        return 1
    source = bundled_dir()

    def load(key: str) -> np.ndarray:
        return read_idx(source / (IDX_FILES[key] + ".gz")).numpy()

    n_train = write_split(out / "train", load("train_images"), load("train_labels"), args.per_class)
    n_test = 0
    if args.test_per_class > 0:
        n_test = write_split(out / "test", load("test_images"), load("test_labels"), args.test_per_class)
    print(f"Wrote {n_train:,} training and {n_test:,} test images ({len(FASHION_CLASSES)} classes) to {out}/")
    print(f"Load it with: python -c \"from tui_trainer.engine.own_data import load_own; "
          f"d = load_own('{out}'); print(d.classes, d.image_shape, len(d.train_labels), len(d.test_labels))\"")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
