"""Regenerate the bundled fashion-mnist-mini from the original Fashion-MNIST IDX files.

    apt-get install dataset-fashion-mnist      # puts the IDX files in /usr/share/datasets/fashion-mnist
    python scripts/make_mini_dataset.py [--source DIR]

Takes a class-balanced, seeded subset (1,200 train and 200 test images per class)
and writes gzipped IDX files byte-for-byte reproducibly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tui_trainer.engine.data import DEBIAN_FASHION_MNIST, IDX_FILES, bundled_dir  # noqa: E402
from tui_trainer.engine.idx import read_idx, write_idx  # noqa: E402

PER_CLASS = {"train": 1200, "t10k": 200}


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    picked = [order[labels[order] == c][:per_class] for c in range(int(labels.max()) + 1)]
    return torch.cat(picked).sort().values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_FASHION_MNIST)
    parser.add_argument("--out", type=Path, default=bundled_dir())
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        images = read_idx(args.source / (IDX_FILES[f"{'test' if split == 't10k' else 'train'}_images"] + ".gz"))
        labels = read_idx(args.source / (IDX_FILES[f"{'test' if split == 't10k' else 'train'}_labels"] + ".gz"))
        keep = balanced_subset(labels.long(), per_class, seed=2024)
        for kind, tensor in (("images-idx3", images[keep]), ("labels-idx1", labels[keep])):
            path = args.out / f"{split}-{kind}-ubyte.gz"
            write_idx(path, tensor)
            print(f"wrote {path} {tuple(tensor.shape)} {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
