"""Issue 19: models and datasets as registries that carry their own traits, and a model from the user's file."""

import math
import textwrap
from pathlib import Path

import pytest
import torch

from tui_trainer.engine.config import ConfigError, TrainConfig, applies
from tui_trainer.engine.data import DeviceData, RawDataset, load_raw, prepare
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.engine.model_file import ModelFileError, checked, ready, source_sha256
from tui_trainer.engine.models import build_model, count_parameters
from tui_trainer.engine.registry import DATASETS, MODELS, DatasetEntry, ModelEntry
from tui_trainer.engine.step import choose_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MLP = '''
import math
from torch import nn


class Net(nn.Module):
    """One hidden layer of `width` units."""

    def __init__(self, image_shape, num_classes, width=32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), width), nn.ReLU(),
                                  nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)


def make(image_shape, num_classes, width=32):
    return Net(image_shape, num_classes, width)
'''


def write(folder, text, name="net.py"):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def mine(path, name="Net", **changes):
    return TrainConfig(model=f"{path}:{name}", device="cpu", **changes)


def test_a_model_file_is_built_from_its_kept_source_however_the_file_changes(tmp_path):
    path = write(tmp_path, MLP)
    config = ready(mine(path, model_args={"width": 8}))
    assert config.model_source == path.read_text() and applies("model_args", config)
    assert not applies("hidden", config) and not applies("init", config)
    model = build_model(config, (1, 28, 28), 10)
    assert count_parameters(model) == 784 * 8 + 8 + 8 * 10 + 10
    assert build_model(ready(mine(path, "make", model_args={"width": 4})), (1, 28, 28), 10).body[1].out_features == 4

    path.write_text("this is no longer Python")  # the run keeps what it was made with
    again = build_model(config, (3, 32, 32), 5)
    assert count_parameters(again) == 3072 * 8 + 8 + 8 * 5 + 5
    with pytest.raises(ModelFileError, match="syntax error"):
        ready(mine(path))  # a new run reads the file as it is now


def test_a_run_of_a_model_file_learns_and_says_its_sources_hash(tmp_path, small_data):
    path = write(tmp_path, MLP)
    config = mine(path, model_args={"width": 64}, epochs=1, batch_size=64, lr=0.01, val_split=0.1)
    events = list(TrainingRun(config, data=small_data).events())  # never made ready: setup reads the file
    started, finished = events[0], events[-2]
    assert started.config.model_source == path.read_text()
    assert started.model_sha256 == source_sha256(path.read_text()) and len(started.model_sha256) == 64
    assert started.step_path == "eager"
    assert finished.test_acc > 60  # chance is 10%


def test_the_examples_pass_the_check_and_their_linear_is_x_at_w_transposed_plus_b():
    mlp = ready(TrainConfig(model=f"{EXAMPLES / 'custom_linear_mlp.py'}:custom_mlp", model_args={"hidden": (32,)}))
    model = build_model(mlp, (1, 28, 28), 10)
    first = model.layers[0]
    x = torch.randn(3, 784)
    torch.testing.assert_close(first(x), x @ first.weight.T + first.bias)
    assert [type(p) for p in first.parameters()] == [torch.nn.Parameter] * 2
    assert count_parameters(model) == 784 * 32 + 32 + 32 * 10 + 10
    lenet = ready(TrainConfig(model=f"{EXAMPLES / 'lenet.py'}:LeNet", dataset="cifar10"))
    assert build_model(lenet, (3, 32, 32), 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


BROKEN = {
    "syntax": ("from torch import nn\n\nclass Net(nn.Module)\n    pass\n", "Net", ":3: syntax error"),
    "missing": (MLP, "Nett", ": has no Nett; it defines Net, make: name one of them after the colon"),
    "not a module": ("class Net:\n    pass\n", "Net", ":1: Net is a class but not an nn.Module"),
    "not callable": ("Net = 3\n", "Net", ":1: Net is an int, not an nn.Module class or a function"),
    "returns no module": ("def Net(image_shape, num_classes):\n    return [1]\n", "Net",
                          ":1: Net(image_shape=(1, 28, 28), num_classes=10) returned a list, not an nn.Module"),
    "raises in init": ("from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, image_shape, "
                       "num_classes):\n        super().__init__()\n        raise ValueError('no')\n", "Net",
                       ":6: Net(image_shape=(1, 28, 28), num_classes=10) raised ValueError: no; fix Net"),
    "raises in forward": ("from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, image_shape, "
                          "num_classes):\n        super().__init__()\n        self.fc = nn.Linear(10, num_classes)\n"
                          "\n    def forward(self, x):\n        return self.fc(x)\n", "Net",
                          ":9: forward on a batch of shape (2, 1, 28, 28) raised RuntimeError: mat1 and mat2"),
    "wrong shape": ("from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, image_shape, "
                    "num_classes):\n        super().__init__()\n        self.fc = nn.Linear(784, 5)\n\n"
                    "    def forward(self, x):\n        return self.fc(x.flatten(1))\n", "Net",
                    ":8: forward returned shape (2, 5) for a batch of shape (2, 1, 28, 28); it must return logits "
                    "of shape (2, 10)"),
    "no parameters": ("import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, "
                      "image_shape, num_classes):\n        super().__init__()\n\n    def forward(self, x):\n"
                      "        return torch.zeros(len(x), 10)\n", "Net", ":4: Net has no trainable parameters"),
    "raises on import": ("import torch\nx = 1 / 0\n", "Net",
                         ":2: running the file raised ZeroDivisionError: division by zero; fix the file"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_model_file_is_one_line_naming_the_file_and_what_to_fix(tmp_path, case):
    source, name, said = BROKEN[case]
    path = write(tmp_path, source)
    with pytest.raises(ModelFileError) as caught:
        checked(mine(path, name))
    message = str(caught.value)
    assert message.startswith(f"model: {path}") and said in message and "\n" not in message, message


def test_a_missing_file_or_module_says_where_it_looked(tmp_path):
    with pytest.raises(ModelFileError, match=r"nowhere\.py: no such file \(looked from "):
        ready(mine(tmp_path / "nowhere.py"))
    with pytest.raises(ModelFileError, match="no_such_package_here: no module of that name on the Python path"):
        ready(TrainConfig(model="no_such_package_here:Net"))


def test_the_module_form_keeps_the_modules_source(tmp_path, monkeypatch):
    package = tmp_path / "mymodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("WIDTH = 16\n")
    write(package, MLP.replace("width=32", "width=None").replace(
        "super().__init__()", "super().__init__()\n        width = width or WIDTH") + "\nfrom .helpers import WIDTH\n",
        "nets.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = ready(TrainConfig(model="mymodels.nets:Net"))
    assert config.model_source == (package / "nets.py").read_text()
    assert build_model(config, (1, 28, 28), 10).body[1].out_features == 16  # its relative import found


def test_a_model_that_does_not_keep_a_source_drops_one_and_another_model_reads_its_own(tmp_path):
    config = ready(mine(write(tmp_path, MLP)))
    assert config.replace(model="cnn").model_source == ""
    assert TrainConfig(model="cnn", model_source="x = 1").model_source == ""
    assert config.replace(lr=0.1).model_source == config.model_source


# -- the registries -----------------------------------------------------------------------------------------------
def test_the_step_path_comes_from_the_models_entry_not_its_name(tmp_path, monkeypatch):
    cuda = torch.device("cuda")  # choose_path only reads the device's type
    assert (choose_path(TrainConfig(model="cnn"), cuda).bf16, choose_path(TrainConfig(model="cnn"), cuda).channels_last) \
        == (True, True)
    assert not choose_path(TrainConfig(), cuda).bf16
    mine_path = choose_path(TrainConfig(model=f"{write(tmp_path, MLP)}:Net"), cuda)
    assert (mine_path.bf16, mine_path.channels_last, mine_path.graph) == (False, False, True)
    assert choose_path(TrainConfig(model=f"{tmp_path}/net.py:Net", precision="bf16"), cuda).bf16

    wide = ModelEntry("wide-conv", "a convolution that likes bf16", factory=lambda **kw: None, bf16=True)
    monkeypatch.setitem(MODELS._entries, "wide-conv", wide)
    assert choose_path(TrainConfig(model="wide-conv"), cuda).bf16
    assert not choose_path(TrainConfig(model="wide-conv"), torch.device("cpu")).bf16


def test_a_registered_model_is_a_config_choice_built_from_the_settings_it_declares(monkeypatch, small_data):
    def tiny(image_shape, num_classes, hidden):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(image_shape), hidden[0]),
                                   torch.nn.ReLU(), torch.nn.Linear(hidden[0], num_classes))

    entry = ModelEntry("tiny", "one hidden layer, its width the first of --hidden", factory=tiny,
                       settings=("hidden",), recommended={"lr": 0.01})
    monkeypatch.setitem(MODELS._entries, "tiny", entry)
    config = TrainConfig(model="tiny", hidden=(16,), epochs=1, device="cpu")
    assert "tiny" in MODELS and applies("hidden", config) and not applies("init", config)
    assert count_parameters(build_model(config, (1, 28, 28), 10)) == 784 * 16 + 16 + 16 * 10 + 10
    from tui_trainer.engine.config import preset

    assert preset("recommended", config).lr == 0.01
    assert list(TrainingRun(config, data=small_data).events())[-1].event_name == "run_finished"
    with pytest.raises(ConfigError, match="model: got 'huge'; choose one of scratch-mlp, sequential-mlp, cnn, tiny, "
                                          "or give FILE.py:NAME or package.module:NAME"):
        TrainConfig(model="huge")
    with pytest.raises(ValueError, match="registered already"):
        MODELS.register(entry)


def test_a_models_input_needs_are_checked_against_the_images():
    with pytest.raises(ConfigError, match="model: cnn needs images of at least 4x4 pixels, and these are 2x2"):
        build_model("cnn", (1, 2, 2), 10)


def test_a_registered_dataset_loads_normalises_and_fingerprints_by_its_entry(monkeypatch):
    def load(entry, data_dir, progress, download):
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (40, 2, 4, 4), dtype=torch.uint8, generator=g)
        labels = torch.arange(40) % 3
        return RawDataset(entry, images[:30], labels[:30], images[30:], labels[30:], "made up")

    entry = DatasetEntry("dots", "Dots", ("a", "b", "c"), (2, 4, 4), load=load, status=lambda entry, d: "made up",
                         normalise=lambda u8: (torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)),
                         fingerprint=lambda images, labels: f"n={len(labels)}")
    monkeypatch.setitem(DATASETS._entries, "dots", entry)
    from tui_trainer.engine.data import dataset_status

    assert dataset_status("dots") == "made up" and TrainConfig(dataset="dots").dataset == "dots"
    data = prepare(load_raw("dots"), torch.device("cpu"), val_split=0.1, seed=0)
    assert isinstance(data, DeviceData) and data.classes == ["a", "b", "c"] and data.fingerprint == "n=27"
    assert data.mean == (0.0, 0.0) and data.train_x.max() <= 1.0  # its own normalisation: only /255
    assert data.spec.title == "Dots"


def test_the_built_in_datasets_say_their_traits():
    assert DATASETS.names() == ("fashion-mnist-mini", "fashion-mnist", "mnist", "kmnist", "cifar10")
    assert DATASETS["cifar10"].image_shape == (3, 32, 32) and DATASETS["cifar10"].trait("layout") == "batches"
    assert DATASETS["fashion-mnist"].trait("idx_folders") == ("/usr/share/datasets/fashion-mnist",)
    assert len(DATASETS["kmnist"].classes) == 10 and DATASETS["fashion-mnist-mini"].download_mb == 0


def test_nothing_outside_the_registries_tests_a_model_or_dataset_by_name():
    """`config.model == "cnn"`, `spec.name in ("cifar10", ...)`: a trait belongs in the entry instead."""
    import ast

    package = Path(__file__).resolve().parents[2] / "tui_trainer"
    names = set(MODELS.names()) | set(DATASETS.names())
    found = []
    for path in package.rglob("*.py"):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for part in [node.left, *node.comparators]:
                    values = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
                    found += [f"{path.relative_to(package)}:{node.lineno}" for v in values
                              if isinstance(v, ast.Constant) and v.value in names]
    assert found == []


@pytest.mark.cuda
def test_on_a_gpu_a_model_file_takes_the_graph_path_or_trains_eagerly_saying_why(tmp_path, mini_raw):
    """A model file runs as the built-ins do: one CUDA graph per step; one whose forward syncs with the host (a
    .item()) cannot be captured, and trains eagerly with the reason in its step path."""
    path = write(tmp_path, MLP)
    config = mine(path, device="cuda", epochs=1, max_train_samples=1024, batch_size=64)
    events = list(TrainingRun(config).events())
    assert events[0].step_path == "cuda-graph" and events[-1].event_name == "run_finished"

    syncing = write(tmp_path, MLP.replace("        return self.body(x)",
                                          "        if x.abs().sum().item() < 0:\n            x = -x\n"
                                          "        return self.body(x)"), "syncing.py")
    events = list(TrainingRun(mine(syncing, device="cuda", epochs=1, max_train_samples=1024,
                                   batch_size=64)).events())
    assert events[0].step_path.startswith("eager (cuda-graph capture failed: "), events[0].step_path
    assert events[-1].event_name == "run_finished"
