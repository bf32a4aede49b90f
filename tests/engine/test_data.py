"""Dataset loading through the real code paths, on small files written in the real formats."""

import hashlib
import pickle
import urllib.error

import pytest
import torch
import torchvision.datasets as tvd

from tui_trainer.engine import data as data_mod
from tui_trainer.engine.data import DatasetUnavailable, dataset_status, load_raw, prepare
from tui_trainer.engine.registry import DATASETS
from tui_trainer.engine.idx import IdxFormatError, read_idx, write_idx


def fake_split(n, shape=(28, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def write_mnist_family(folder, n_train=30, n_test=10, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    train_x, train_y = fake_split(n_train)
    test_x, test_y = fake_split(n_test, seed=1)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", train_x)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", train_y)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", test_x)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", test_y)
    return train_x, train_y, test_x, test_y


def test_idx_round_trip_and_bad_files(tmp_path):
    x, _ = fake_split(5)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        write_idx(tmp_path / name, x)
        assert torch.equal(read_idx(tmp_path / name), x)
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(IdxFormatError, match="bad magic"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-10])
    with pytest.raises(IdxFormatError, match="holds"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(b"\x00\x00\x08\x03\x00\x00")  # three sizes promised, none given
    with pytest.raises(IdxFormatError, match="ends inside its header"):
        read_idx(tmp_path / "header")
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes((tmp_path / "b-idx3-ubyte.gz").read_bytes()[:40])
    with pytest.raises(IdxFormatError, match="not a complete gzip file"):
        read_idx(tmp_path / "cut-idx3-ubyte.gz")


def test_files_that_disagree_are_one_line_naming_the_split(tmp_path, monkeypatch):
    """Fewer labels than images, or labels past the set's classes (files from two sets): refused at loading,
    never a traceback in the middle of training."""
    debian = tmp_path / "idx"
    monkeypatch.setitem(DATASETS["fashion-mnist"].traits, "idx_folders", (str(debian),))
    train_x, train_y, _, _ = write_mnist_family(debian)
    write_idx(debian / "train-labels-idx1-ubyte", train_y[:20])
    with pytest.raises(DatasetUnavailable, match="the training split has 30 images but 20 labels"):
        load_raw("fashion-mnist", tmp_path / "cache", download=False)
    write_idx(debian / "train-labels-idx1-ubyte", train_y + 5)
    with pytest.raises(DatasetUnavailable, match="the training labels run from 5 to 14, but fashion-mnist has "
                                                 "classes 0 to 9"):
        load_raw("fashion-mnist", tmp_path / "cache", download=False)


def test_bundled_set_is_balanced_and_small(mini_raw):
    assert mini_raw.train_images.shape == (12000, 1, 28, 28)
    assert mini_raw.test_images.shape == (2000, 1, 28, 28)
    assert mini_raw.train_images.dtype == torch.uint8
    assert torch.bincount(mini_raw.train_labels).tolist() == [1200] * 10
    assert torch.bincount(mini_raw.test_labels).tolist() == [200] * 10
    size = sum(p.stat().st_size for p in data_mod.bundled_dir().iterdir())
    assert size < 8 * 2**20
    assert "Zalando" in (data_mod.bundled_dir() / "LICENSE").read_text()
    assert dataset_status("fashion-mnist-mini") == "bundled"


@pytest.mark.parametrize("name, cls", [("mnist", tvd.MNIST), ("fashion-mnist", tvd.FashionMNIST),
                                       ("kmnist", tvd.KMNIST)])
def test_mnist_family_loads_through_torchvision(tmp_path, monkeypatch, name, cls):
    monkeypatch.setitem(DATASETS["fashion-mnist"].traits, "idx_folders", (str(tmp_path / "no-debian"),))
    assert dataset_status(name, tmp_path).startswith("needs download (")
    train_x, train_y, test_x, test_y = write_mnist_family(tmp_path / cls.__name__ / "raw")
    assert dataset_status(name, tmp_path) == "on disk"
    raw = load_raw(name, tmp_path, download=False)
    assert torch.equal(raw.train_images[:, 0], train_x)
    assert torch.equal(raw.train_labels, train_y)
    assert torch.equal(raw.test_images[:, 0], test_x)
    assert raw.spec.name == name


def test_debian_fashion_mnist_is_used_without_download(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share"
    train_x, *_ = write_mnist_family(debian, gz=True)
    monkeypatch.setitem(DATASETS["fashion-mnist"].traits, "idx_folders", (str(debian),))
    assert dataset_status("fashion-mnist", tmp_path / "cache") == "on disk"

    def no_network(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)
    raw = load_raw("fashion-mnist", tmp_path / "cache")
    assert torch.equal(raw.train_images[:, 0], train_x)
    assert raw.source == str(debian)


def write_cifar(folder, per_batch=8):
    folder.mkdir(parents=True)
    md5 = {}
    images = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x = torch.randint(0, 256, (per_batch, 3 * 32 * 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        images.append(x)
        batch = {"data": x.numpy(), "labels": [j % 10 for j in range(per_batch)], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": list(data_mod.CIFAR10_CLASSES)}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    for path in folder.iterdir():
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return images, md5


def test_cifar10_loads_pickle_batches_through_torchvision(tmp_path, monkeypatch):
    images, md5 = write_cifar(tmp_path / "cifar-10-batches-py")
    # torchvision checks each batch against the real files' MD5; point it at ours.
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5["batches.meta"]})
    assert dataset_status("cifar10", tmp_path) == "on disk"
    raw = load_raw("cifar10", tmp_path, download=False)
    assert raw.train_images.shape == (40, 3, 32, 32)
    assert raw.test_images.shape == (8, 3, 32, 32)
    assert torch.equal(raw.test_images[0], images[-1][0].reshape(3, 32, 32))
    data = prepare(raw, torch.device("cpu"), val_split=0.25, seed=0)
    assert data.train_x.shape == (30, 3, 32, 32) and data.val_x.shape == (10, 3, 32, 32)
    assert data.image_shape == (3, 32, 32)


def test_offline_and_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS["fashion-mnist"].traits, "idx_folders", (str(tmp_path / "no-debian"),))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetUnavailable) as info:
        load_raw("fashion-mnist", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("fashion-mnist is not on this machine")
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "no-debian" in message
    assert "network unreachable" in message and "dataset-fashion-mnist" in message


def test_download_fetches_checks_and_extracts(tmp_path, monkeypatch):
    served = tmp_path / "mirror"
    served.mkdir()
    write_mnist_family(served, gz=True)
    resources = [(f.name, hashlib.md5(f.read_bytes()).hexdigest()) for f in sorted(served.iterdir())]
    monkeypatch.setattr(tvd.KMNIST, "mirrors", ["file:///nonexistent/", served.as_uri() + "/"])
    monkeypatch.setattr(tvd.KMNIST, "resources", resources)
    seen = []
    raw = load_raw("kmnist", tmp_path / "root", progress=lambda done, total, label: seen.append((done, total, label)))
    assert raw.train_images.shape == (30, 1, 28, 28)
    assert seen and seen[-1][0] == seen[-1][1]
    assert any("train-images" in label for _, _, label in seen)
    assert dataset_status("kmnist", tmp_path / "root") == "on disk"


def test_download_with_a_bad_checksum_is_refused(tmp_path, monkeypatch):
    served = tmp_path / "mirror"
    served.mkdir()
    write_mnist_family(served, gz=True)
    monkeypatch.setattr(tvd.MNIST, "mirrors", [served.as_uri() + "/"])
    monkeypatch.setattr(tvd.MNIST, "resources", [(f.name, "0" * 32) for f in sorted(served.iterdir())])
    with pytest.raises(DatasetUnavailable, match="MD5"):
        load_raw("mnist", tmp_path / "root")


def test_split_is_seeded_normalized_and_capped(mini_raw):
    a = prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=3)
    b = prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=3)
    c = prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=4)
    assert len(a.train_y) == 10800 and len(a.val_y) == 1200
    assert torch.equal(a.val_y, b.val_y) and not torch.equal(a.val_x, c.val_x)
    assert abs(a.train_x.mean().item()) < 1e-3 and abs(a.train_x.std().item() - 1) < 1e-2
    capped = prepare(mini_raw, torch.device("cpu"), val_split=0.0, seed=0, max_train_samples=100)
    assert len(capped.train_y) == 100 and len(capped.val_y) == 0
    assert len(capped.test_y) == 2000


def test_data_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCH_TUI_DATA", str(tmp_path))
    assert data_mod.default_data_dir() == tmp_path
    monkeypatch.delenv("SCRATCH_TUI_DATA")
    assert "scratch-tui" in str(data_mod.default_data_dir())
