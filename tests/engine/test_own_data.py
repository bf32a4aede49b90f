"""A dataset of one's own: image folders, Keras .npz and Kaggle CSV files, written small into tmp_path."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tui_trainer.engine import own_data
from tui_trainer.engine.data import fingerprint
from tui_trainer.engine.gz_raw import gunzip_raw, gz_without_twin
from tui_trainer.engine.idx import read_idx, write_idx
from tui_trainer.engine.own_data import OwnDataError, load_own, memory_needed, stratified_hold_out


def grey(value, size=(5, 6)):  # size is (height, width)
    return np.full(size, value, dtype=np.uint8)


def write_folder(root, splits, suffix=".png", size=(5, 6), colour=False):
    """splits: {"train": {"cat": 4, ...}, "test": {...}}; image i of a class has pixel value 10*class + i."""
    for split, classes in splits.items():
        for c, (name, count) in enumerate(classes.items()):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = grey(10 * c + i, size)
                if colour:
                    pixels = np.stack([pixels, pixels // 2, 255 - pixels], axis=-1)
                Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")
    return root


def one_line_naming(exc_info, name):
    message = str(exc_info.value)
    assert "\n" not in message
    assert str(name) in message, message
    return message


# -- image folders ---------------------------------------------------------------------------------------------

def test_folder_with_test_split(tmp_path):
    root = write_folder(tmp_path / "pets", {"train": {"cat": 3, "dog": 4, "emu": 2},
                                            "test": {"cat": 1, "dog": 2, "emu": 1}})
    seen = []
    data = load_own(root, progress=lambda done, total, label: seen.append((done, total, label)))
    assert data.kind == "folder" and data.name == "pets"
    assert data.classes == ["cat", "dog", "emu"]
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (9, 1, 5, 6)
    assert data.test_images.shape == (4, 1, 5, 6)
    assert data.train_labels.dtype == torch.int64
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert data.test_labels.tolist() == [0, 1, 1, 2]
    assert data.train_images[4, 0, 0, 0] == 11  # dog (class 1), its second image
    assert not data.held_out and data.notice == ""
    assert data.fingerprint == fingerprint(data.train_images, data.train_labels)
    pixels = data.train_images.double() / 255
    assert data.mean[0] == pytest.approx(pixels.mean().item())
    assert data.std[0] == pytest.approx(pixels.std().item())
    assert seen and seen[-1][0] == seen[-1][1] and seen[-1][2] == "Converting images of pets"


def test_folder_without_test_split_holds_out_a_stratified_sixth(tmp_path):
    root = write_folder(tmp_path / "digits", {"": {"2": 6, "10": 12}}, suffix=".jpg", colour=True)
    data = load_own(root)
    assert data.classes == ["2", "10"]  # numeric names in numeric order
    assert data.image_shape == (3, 5, 6)  # colour JPEGs stay RGB
    assert data.held_out and "held out" in data.notice and "1/6" in data.notice
    assert data.test_labels.bincount().tolist() == [1, 2]
    assert data.train_labels.bincount().tolist() == [5, 10]
    again = load_own(root)
    assert torch.equal(again.test_images, data.test_images)  # the same split every time
    train, test = stratified_hold_out(torch.tensor([0] * 60 + [1] * 6))
    assert len(test) == 11 and len(set(train.tolist()) | set(test.tolist())) == 66


def test_folder_of_mixed_sizes_needs_resize(tmp_path):
    root = write_folder(tmp_path / "mixed", {"train": {"a": 2, "b": 2}})
    Image.fromarray(grey(7, (9, 4))).save(root / "train" / "b" / "odd.png")
    with pytest.raises(OwnDataError) as exc:
        load_own(root)
    assert "resize=(H, W)" in one_line_naming(exc, root / "train" / "b" / "odd.png")
    data = load_own(root, resize=(8, 8))
    assert data.train_images.shape[1:] == (1, 8, 8) and len(data.train_labels) + len(data.test_labels) == 5
    assert load_own(root, image_shape=(3, 8, 8), resize=(8, 8)).image_shape == (3, 8, 8)


@pytest.mark.parametrize("case", ["corrupt", "truncated", "one class", "empty", "empty class", "no class folders"])
def test_broken_folders(tmp_path, case):
    root = tmp_path / "set"
    if case == "corrupt":
        write_folder(root, {"train": {"a": 2, "b": 2}})
        culprit = root / "train" / "b" / "broken.png"
        culprit.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    elif case == "truncated":  # the header reads; decoding fails
        write_folder(root, {"train": {"a": 2, "b": 2}}, suffix=".jpg", size=(40, 40))
        culprit = root / "train" / "a" / "001.jpg"
        culprit.write_bytes(culprit.read_bytes()[:200])
    elif case == "one class":
        write_folder(root, {"train": {"only": 3}})
        culprit = root / "train"
    elif case == "empty":
        (root / "train").mkdir(parents=True)
        culprit = root / "train"
    elif case == "empty class":
        write_folder(root, {"train": {"a": 2, "b": 2}})
        culprit = root / "train" / "c"
        culprit.mkdir()
    else:
        root.mkdir()
        Image.fromarray(grey(1)).save(root / "loose.png")
        culprit = root
    with pytest.raises(OwnDataError) as exc:
        load_own(root)
    one_line_naming(exc, culprit)


# -- .npz --------------------------------------------------------------------------------------------------------

def test_npz_with_both_splits_and_classes_txt(tmp_path):
    x_train = np.random.default_rng(0).integers(0, 256, (12, 4, 4), dtype=np.uint8)
    y_train = np.arange(12) % 3
    np.savez(tmp_path / "set.npz", x_train=x_train, y_train=y_train,
             x_test=x_train[:5], y_test=y_train[:5].reshape(-1, 1))  # Keras's CIFAR labels are (N, 1)
    (tmp_path / "classes.txt").write_text("red\ngreen\nblue\n")
    data = load_own(tmp_path / "set.npz")
    assert data.kind == "npz" and data.classes == ["red", "green", "blue"]
    assert data.train_images.shape == (12, 1, 4, 4) and data.test_images.shape == (5, 1, 4, 4)
    assert torch.equal(data.train_images[:, 0], torch.from_numpy(x_train))
    assert data.test_labels.tolist() == [0, 1, 2, 0, 1] and not data.held_out


def test_npz_of_float_colour_images_without_test_split(tmp_path):
    x = np.random.default_rng(1).random((12, 3, 5, 3)).astype(np.float32)  # N, H, W, C in [0, 1]
    np.savez(tmp_path / "float.npz", x_train=x, y_train=np.arange(12) % 2)
    data = load_own(tmp_path / "float.npz")
    assert data.classes == ["0", "1"] and data.image_shape == (3, 3, 5)
    assert data.held_out and len(data.test_labels) == 2 and data.test_labels.tolist() == [0, 1]
    everything = torch.cat([data.train_images, data.test_images]).double()
    assert everything.max() > 200  # fractions were scaled to 0..255
    expected = torch.from_numpy(np.rint(x * 255).astype(np.uint8)).permute(0, 3, 1, 2)
    rows = sorted(map(tuple, everything.flatten(1).tolist()))
    assert rows == sorted(map(tuple, expected.double().flatten(1).tolist()))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "keys.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "keys.npz")
    message = one_line_naming(exc, tmp_path / "keys.npz")
    assert "x_train, y_train" in message and "images, labels" in message

    np.savez(tmp_path / "half.npz", x_train=np.zeros((2, 4, 4)), y_train=[0, 1], x_test=np.zeros((1, 4, 4)))
    with pytest.raises(OwnDataError, match="lacks y_test") as exc:
        load_own(tmp_path / "half.npz")

    np.savez(tmp_path / "one.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=[2, 2, 2])
    with pytest.raises(OwnDataError, match="one class only") as exc:
        load_own(tmp_path / "one.npz")
    one_line_naming(exc, tmp_path / "one.npz")

    np.savez(tmp_path / "negative.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=[0, -1, 1])
    with pytest.raises(OwnDataError, match=r"y_train\[1\] holds label -1") as exc:
        load_own(tmp_path / "negative.npz")
    one_line_naming(exc, tmp_path / "negative.npz")

    folder = tmp_path / "named"
    folder.mkdir()
    (folder / "classes.txt").write_text("a\nb\n")
    np.savez(folder / "big.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=[0, 1, 2])
    with pytest.raises(OwnDataError, match=r"y_train\[2\] holds label 2.*names 2 classes") as exc:
        load_own(folder / "big.npz")
    one_line_naming(exc, folder / "big.npz")


# -- CSV ---------------------------------------------------------------------------------------------------------

def csv_rows(n, pixels=16, classes=3):
    return [",".join([str(i % classes)] + [str((i * 7 + j) % 256) for j in range(pixels)]) for i in range(n)]


def test_csv_with_header_holds_out_a_test_split(tmp_path):
    """Kaggle's digit recognizer: train.csv with a header, and a test.csv without labels that cannot serve."""
    header = "label," + ",".join(f"pixel{j}" for j in range(16))
    (tmp_path / "train.csv").write_text("\n".join([header] + csv_rows(18)) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([header[6:]] + [r[2:] for r in csv_rows(4)]) + "\n")
    seen = []
    data = load_own(tmp_path / "train.csv", progress=lambda *a: seen.append(a))
    assert data.kind == "csv" and data.name == "train" and data.classes == ["0", "1", "2"]
    assert data.notice.startswith("test.csv has no label column, so train.csv has no test split: 3 of its 18")
    assert data.image_shape == (1, 4, 4)
    assert data.held_out and data.test_labels.bincount().tolist() == [1, 1, 1]
    assert len(data.train_labels) == 15
    assert seen[-1][0] == seen[-1][1]
    row0 = torch.tensor([(j) % 256 for j in range(16)], dtype=torch.uint8).view(1, 4, 4)
    assert torch.equal(data.train_images[0], row0)


def test_csv_needs_image_shape_when_not_square_and_reads_a_test_twin(tmp_path):
    (tmp_path / "wide_train.csv").write_text("\n".join(csv_rows(6, pixels=12, classes=2)))
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "wide_train.csv")
    assert "image_shape=(C, H, W)" in one_line_naming(exc, tmp_path / "wide_train.csv")
    (tmp_path / "wide_test.csv").write_text("\n".join(csv_rows(4, pixels=12, classes=2)))
    data = load_own(tmp_path / "wide_train.csv", image_shape=(3, 2, 2))
    assert data.image_shape == (3, 2, 2) and len(data.train_labels) == 6 and len(data.test_labels) == 4
    assert not data.held_out
    assert data.train_images[1].flatten().tolist() == [(7 + j) % 256 for j in range(12)]  # read as C, H, W


def test_csv_errors(tmp_path):
    rows = csv_rows(5)
    cells = rows[3].split(",")
    cells[1] = "x7"  # the file's 5th line (after the header), its 2nd column
    rows[3] = ",".join(cells)
    header = "label," + ",".join(f"pixel{j}" for j in range(16))
    (tmp_path / "bad.csv").write_text("\n".join([header] + rows))
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "bad.csv")
    message = one_line_naming(exc, tmp_path / "bad.csv")
    assert "row 5, column 2 (pixel0)" in message and "'x7'" in message

    (tmp_path / "negative.csv").write_text("\n".join(csv_rows(3) + ["-1" + ",0" * 16]))
    with pytest.raises(OwnDataError, match="row 4 holds label -1") as exc:
        load_own(tmp_path / "negative.csv")
    one_line_naming(exc, tmp_path / "negative.csv")


# -- any kind ----------------------------------------------------------------------------------------------------

def test_unknown_kinds(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "notes.txt")
    assert "not a folder, .npz or .csv" in one_line_naming(exc, tmp_path / "notes.txt")
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "missing.npz")
    one_line_naming(exc, tmp_path / "missing.npz")


def test_the_second_load_reads_the_cache(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "pets", {"train": {"cat": 3, "dog": 3}})
    cache = tmp_path / "cache"
    calls = []
    first = load_own(root, cache_dir=cache, progress=lambda *a: calls.append(a))
    assert calls and not first.from_cache and first.cache_path and Path(first.cache_path).parent == cache

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(own_data, "_convert_folder", no_conversion)
    calls.clear()
    second = load_own(root, cache_dir=cache, progress=lambda *a: calls.append(a))
    assert second.from_cache and not calls
    assert second.fingerprint == first.fingerprint and second.classes == first.classes
    assert torch.equal(second.test_images, first.test_images) and second.notice == first.notice
    monkeypatch.undo()

    # New bytes or other options: another key, converted afresh.
    Image.fromarray(grey(200)).save(root / "train" / "dog" / "new.png")
    third = load_own(root, cache_dir=cache)
    assert not third.from_cache and third.source_key != first.source_key
    assert load_own(root, cache_dir=cache, resize=(3, 3)).source_key != third.source_key


def test_a_set_too_big_is_refused_with_its_sizes(tmp_path):
    np.savez(tmp_path / "big.npz", x_train=np.zeros((100, 32, 32, 3), np.uint8), y_train=np.arange(100) % 2)
    need = memory_needed(100, (3, 32, 32))
    assert need == 100 * (3 * 32 * 32 * 5 + 8)
    with pytest.raises(OwnDataError) as exc:
        load_own(tmp_path / "big.npz", max_bytes=100_000)
    message = one_line_naming(exc, tmp_path / "big.npz")
    assert "100 images of 3×32×32" in message and "1.5 MiB" in message and "97.7 KiB allowed" in message
    assert load_own(tmp_path / "big.npz", max_bytes=need).image_shape == (3, 32, 32)


# -- torchvision raw folders: the .gz files as published ---------------------------------------------------------

def test_gunzip_raw_makes_copied_gz_files_loadable(tmp_path):
    import torchvision.datasets as tvd

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 10
    for stem, tensor in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                         ("t10k-images-idx3-ubyte", x[:2]), ("t10k-labels-idx1-ubyte", y[:2])):
        write_idx(raw / f"{stem}.gz", tensor)
    write_idx(raw / "t10k-labels-idx1-ubyte", y[:2])  # already there: left alone
    with pytest.raises(RuntimeError):
        tvd.MNIST(str(tmp_path), train=True, download=False)
    assert [p.name for p in gz_without_twin(raw)] == ["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz",
                                                       "train-labels-idx1-ubyte.gz"]
    written = gunzip_raw(raw)
    assert len(written) == 3 and gz_without_twin(raw) == [] and gunzip_raw(raw) == []
    assert torch.equal(read_idx(raw / "train-images-idx3-ubyte"), x)
    loaded = tvd.MNIST(str(tmp_path), train=True, download=False)
    assert torch.equal(loaded.data, x) and loaded.targets.tolist() == y.tolist()

    (raw / "broken-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 cut short")
    with pytest.raises(OSError, match="broken-idx1-ubyte.gz"):
        gunzip_raw(raw)
    assert not (raw / "broken-idx1-ubyte").exists() and not (raw / "broken-idx1-ubyte.part").exists()


def test_the_example_folder_loads(tmp_path):
    import importlib.util

    example = Path(__file__).parents[2] / "examples" / "make_image_folder.py"
    spec = importlib.util.spec_from_file_location("make_image_folder", example)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path / "fashion"), "--per-class", "3", "--test-per-class", "1"]) == 0
    data = load_own(tmp_path / "fashion")
    assert data.num_classes == 10 and "T-shirt-top" in data.classes
    assert data.train_images.shape == (30, 1, 28, 28) and len(data.test_labels) == 10 and not data.held_out


def test_mnist_as_distributed_in_gz_files_loads_without_a_download(tmp_path):
    from tui_trainer.engine.data import dataset_status, load_raw

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 10
    for stem, tensor in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                         ("t10k-images-idx3-ubyte", x[:2]), ("t10k-labels-idx1-ubyte", y[:2])):
        write_idx(raw / f"{stem}.gz", tensor)  # copied in as published, as the offline message says
    assert dataset_status("mnist", tmp_path) == "on disk"
    data = load_raw("mnist", tmp_path, download=False)
    assert torch.equal(data.train_images[:, 0], x) and data.test_labels.tolist() == [0, 1]
