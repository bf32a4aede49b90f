"""The registries: every model and dataset a run can name, each an entry that carries its own traits.

    register_model(ModelEntry("lenet", "LeNet-5", factory="my_models:LeNet", min_side=5))
    MODELS.entry("cnn").channels_last                  # True: it takes channels_last on a GPU
    DATASETS.entry("cifar10").classes                  # its class names, without loading it

An entry says what the rest of the code would otherwise know by a name. A model's entry: its one-line summary,
its settings (the config fields it is built from: `hidden` and `init` for the MLPs, `model_args` for a model
from a file), the input it needs, whether it takes channels_last and bf16 autocast by default on a GPU, the
recommended preset's changes for it, and its factory, called as every model is called:

    factory(image_shape=(C, H, W), num_classes=K, **settings)  ->  an nn.Module giving logits (N, K)

A dataset's entry: its title, class names and image shape, how it is loaded and whether it is here, how it is
normalised and how its fingerprint is taken, and the traits its loader reads.

The built-ins at the bottom register exactly as any other entry does. A name the registry has no entry for may
still be one of its patterns: `path/to/file.py:Name` and `package.module:Name` are models from the user's own
file, whose entry is made from the name (engine/model_file.py builds them from the source kept with the run).

Nothing here imports torch: factories and loaders are named "module:attribute" and imported when first used, so
`--help`, `--version` and `runs` list the names without waiting for torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from .errors import ConfigError

# A function or class, or "module:attribute" naming one (imported on first use).
Ref = Any


def resolve(ref: Ref) -> Any:
    """What `ref` names: itself when it is callable, else the attribute of "module:attribute"."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Unknown(KeyError):
    """A name neither registered nor matching a pattern; the message lists what is."""

    def __str__(self) -> str:
        return str(self.args[0])


# -- models --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    name: str
    summary: str  # one line: what it is
    # called as factory(image_shape=(C, H, W), num_classes=K, **settings); with keeps_source, called first as
    # factory(model, model_source) for that factory
    factory: Ref
    # the config fields it is built from, passed by name; "model_args" passes each of its items instead
    settings: tuple[str, ...] = ()
    min_side: int = 1  # its input needs: the smallest image height and width it takes
    channels_last: bool = False  # on a GPU: channels_last memory format (pays off for convolutions)
    bf16: bool = False  # on a GPU with precision auto: bf16 autocast
    recommended: Mapping[str, Any] = field(default_factory=dict)  # the recommended preset's changes for it
    keeps_source: bool = False  # built from its source, kept with the run (a model from a file)
    # (model) -> its layers in forward order, the form a pack stacks (engine/pack.py): several runs of its shape
    # then train as one. None: each of its runs trains alone
    layers: Ref = None

    def input_problem(self, image_shape: tuple[int, ...]) -> str:
        """Why it cannot take images of this shape, or ''."""
        _, height, width = image_shape
        if min(height, width) < self.min_side:
            return (f"{self.name} needs images of at least {self.min_side}x{self.min_side} pixels, and these are "
                    f"{height}x{width}")
        return ""

    def arguments(self, config: Any) -> dict[str, Any]:
        """The keywords its factory takes from `config`, besides the image shape and the classes."""
        kwargs: dict[str, Any] = {}
        for name in self.settings:
            if name == "model_args":
                kwargs.update(config.model_args)
            else:
                kwargs[name] = getattr(config, name)
        return kwargs

    def build(self, config: Any, image_shape: tuple[int, int, int], num_classes: int) -> Any:
        """The model for `config`'s settings, images of `image_shape` and `num_classes` classes."""
        image_shape = tuple(int(n) for n in image_shape)
        problem = self.input_problem(image_shape)
        if problem:
            raise ConfigError({"model": f"model: {problem}; choose another model or dataset"})
        if self.keeps_source:  # its factory makes the factory, from the name and the source kept with the run
            factory = resolve(self.factory)(config.model, config.model_source)
        else:
            factory = resolve(self.factory)
        return factory(image_shape=image_shape, num_classes=num_classes, **self.arguments(config))


# -- datasets ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetEntry:
    name: str
    title: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    load: Ref  # (entry, data_dir, progress, download) -> data.RawDataset: uint8 images, int64 labels
    status: Ref  # (entry, data_dir) -> "bundled", "on disk" or "needs download (N MB)"; reads no image data
    download_mb: float = 0.0  # compressed size fetched on first use; 0 for one that ships with the package
    # (training, test) images, before validation is split off: what its data takes on a device, known before
    # loading it (engine/fits.py sizes packs by it); (0, 0) where not known
    images: tuple[int, int] = (0, 0)
    # (uint8 training images [N, C, H, W]) -> (mean, std), one float64 tensor of C values each
    normalise: Ref = "tui_trainer.engine.data:channel_statistics"
    # (training images, labels) -> a short hex digest naming exactly those bytes
    fingerprint: Ref = "tui_trainer.engine.data:fingerprint"
    traits: Mapping[str, Any] = field(default_factory=dict)  # what its loader reads (where and how it is stored)
    settings: tuple[str, ...] = ()  # config fields its loader is called with, by name (image_shape, resize)

    def trait(self, name: str, default: Any = None) -> Any:
        return self.traits.get(name, default)


# -- the registry --------------------------------------------------------------------------------------------------
E = TypeVar("E", ModelEntry, DatasetEntry)


@dataclass(frozen=True)
class Pattern(Generic[E]):
    """Names a registry takes besides its entries: those `matches` accepts, each made into an entry by `make`."""

    said: str  # how help and messages name them: "FILE.py:NAME or package.module:NAME"
    example: str  # one such name, to learn what its entries are like
    matches: Callable[[str], bool]
    make: Callable[[str], E]


class Registry(Generic[E]):
    """Entries by name, in the order registered; iterating gives the registered names.

    `name in registry` is true for a registered name and for a name a pattern takes: what a config may name."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, E] = {}
        self._patterns: list[Pattern[E]] = []

    def register(self, entry: E) -> E:
        name = entry.name
        if not isinstance(name, str) or not name or name != name.strip() or ":" in name:
            raise ValueError(f"{self.what} name {name!r}: must be non-empty text without ':' or surrounding spaces")
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def register_pattern(self, pattern: Pattern[E]) -> Pattern[E]:
        self._patterns.append(pattern)
        return pattern

    def entry(self, name: str) -> E:
        """The entry for `name`: registered, or made by the pattern that takes it; Unknown else."""
        if isinstance(name, str):
            if name in self._entries:
                return self._entries[name]
            for pattern in self._patterns:
                if pattern.matches(name):
                    return pattern.make(name)
        raise Unknown(f"unknown {self.what} {name!r}; {self.choose()}")

    __getitem__ = entry

    def choose(self) -> str:
        """'choose one of a, b, c' (', or FILE.py:NAME ...' where patterns take more)."""
        said = f"choose one of {', '.join(self._entries)}"
        return said + (f", or give {self.also()}" if self._patterns else "")

    def also(self) -> str:
        """What the patterns take, said: '' without any."""
        return " or ".join(p.said for p in self._patterns)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self._entries or any(p.matches(name) for p in self._patterns)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._entries)})"

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def values(self) -> tuple[E, ...]:
        return tuple(self._entries.values())

    def items(self) -> tuple[tuple[str, E], ...]:
        return tuple(self._entries.items())

    def where(self, test: Callable[[E], bool]) -> "Subset[E]":
        """The names whose entry passes `test`, asked each time (a later entry counts too)."""
        return Subset(self, test)

    def reading(self, setting: str) -> "Subset[E]":
        """The names whose entry is built from `setting` (a config field)."""
        return self.where(lambda entry: setting in entry.settings)


class Subset(Generic[E]):
    """Some of a registry's names, by a test of their entries: `in` asks the entry; iterating gives the
    registered names that pass and, said in words, the patterns whose entries pass."""

    def __init__(self, registry: Registry[E], test: Callable[[E], bool]):
        self.registry, self.test = registry, test

    def __contains__(self, name: object) -> bool:
        if name not in self.registry:
            return False
        return bool(self.test(self.registry.entry(name)))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        names = [n for n in self.registry if self.test(self.registry.entry(n))]
        names += [p.said for p in self.registry._patterns if self.test(p.make(p.example))]
        return iter(names)

    def __repr__(self) -> str:
        return f"Subset({', '.join(self)})"


MODELS: Registry[ModelEntry] = Registry("model")
DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_model(entry: ModelEntry) -> ModelEntry:
    return MODELS.register(entry)


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    return DATASETS.register(entry)


# -- a model from the user's file ----------------------------------------------------------------------------------
def is_model_reference(name: str) -> bool:
    """`path/to/file.py:Name` or `package.module:Name`: a module or a file, a colon, an identifier."""
    if not isinstance(name, str):
        return False
    where, colon, attribute = name.rpartition(":")
    return bool(colon and where.strip() and attribute.isidentifier())


DATA_SUFFIXES = (".npz", ".csv")


def is_data_path(name: str) -> bool:
    """A dataset of the user's: a `.npz` or `.csv` file, or a folder of images (a path with a separator, or a
    folder that is there). Read from the name and one look at the disk, never the data."""
    if not isinstance(name, str) or not name.strip():
        return False
    import os

    return name.lower().endswith(DATA_SUFFIXES) or os.sep in name or "/" in name or os.path.isdir(name)


def data_from_path(name: str) -> DatasetEntry:
    """The entry of a dataset at `name`: converted once, and cached, by engine/user_data.py; its classes and image
    shape are known once it is read."""
    return DatasetEntry(name, f"your data {name}", (), (0, 0, 0), load="tui_trainer.engine.user_data:load_path",
                        status="tui_trainer.engine.user_data:path_status", settings=("image_shape", "resize"),
                        traits={"path": name})


def model_from_file(name: str) -> ModelEntry:
    """The entry of `path/to/file.py:Name` or `package.module:Name`: its factory is the user's class or
    function, built from the source kept with the run (config.model_source), called with `model_args`."""
    return ModelEntry(name, f"your model {name}, built from the source kept with the run",
                      factory="tui_trainer.engine.model_file:factory_of", settings=("model_args",), keeps_source=True)


# -- the built-ins -------------------------------------------------------------------------------------------------
# the recommended preset's changes, each chosen by a sweep over 3 seeds on full Fashion-MNIST (README "Accuracy, and
# the recommended preset chosen by a sweep"). The MLPs: the defaults, trained on all 60,000 training images (no
# validation split), 89.80% against 89.56% with the split (bench/sweeps/recommended-mlp-data.toml)
MLP_RECOMMENDED = {"val_split": 0.0}
register_model(ModelEntry(
    "scratch-mlp", "MLP of hand-written Linear layers: weights are bare nn.Parameters, x @ W.T + b",
    factory="tui_trainer.engine.models:scratch_mlp", settings=("hidden", "init"), recommended=MLP_RECOMMENDED,
    layers="tui_trainer.engine.models:mlp_layers"))
register_model(ModelEntry(
    "sequential-mlp", "The same MLP built from nn.Sequential(nn.Linear, nn.ReLU, ...)",
    factory="tui_trainer.engine.models:sequential_mlp_of", settings=("hidden", "init"), recommended=MLP_RECOMMENDED,
    layers="tui_trainer.engine.models:sequence_layers"))
register_model(ModelEntry(
    "cnn", "Small CNN: two conv-batchnorm-relu-pool blocks and a classifier",
    factory="tui_trainer.engine.models:small_cnn", min_side=4, channels_last=True, bf16=True,
    recommended={"batch_size": 64, "lr": 0.002, "augment": "flip"}, layers="tui_trainer.engine.models:cnn_layers"))
MODELS.register_pattern(Pattern(said="FILE.py:NAME or package.module:NAME", example="FILE.py:NAME",
                                matches=is_model_reference, make=model_from_file))

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_BUNDLED = {"load": "tui_trainer.engine.data:load_bundled", "status": "tui_trainer.engine.data:bundled_status"}
_TORCHVISION = {"load": "tui_trainer.engine.data:load_torchvision",
                "status": "tui_trainer.engine.data:torchvision_status"}

register_dataset(DatasetEntry(
    "fashion-mnist-mini", "Fashion-MNIST mini (bundled, 12k/2k)", FASHION_CLASSES, (1, 28, 28), **_BUNDLED,
    images=(12000, 2000), traits={"folder": "fashion_mnist_mini"}))
register_dataset(DatasetEntry(
    "fashion-mnist", "Fashion-MNIST", FASHION_CLASSES, (1, 28, 28), **_TORCHVISION, download_mb=30,
    images=(60000, 10000),
    # where Debian's `dataset-fashion-mnist` package puts the original IDX files
    traits={"torchvision_class": "FashionMNIST", "layout": "raw",
            "idx_folders": ("/usr/share/datasets/fashion-mnist",),
            "install_hint": "install Debian's dataset-fashion-mnist package"}))
register_dataset(DatasetEntry(
    "mnist", "MNIST", MNIST_CLASSES, (1, 28, 28), **_TORCHVISION, download_mb=11, images=(60000, 10000),
    traits={"torchvision_class": "MNIST", "layout": "raw"}))
register_dataset(DatasetEntry(
    "kmnist", "Kuzushiji-MNIST", KMNIST_CLASSES, (1, 28, 28), **_TORCHVISION, download_mb=20, images=(60000, 10000),
    traits={"torchvision_class": "KMNIST", "layout": "raw"}))
register_dataset(DatasetEntry(
    "cifar10", "CIFAR-10", CIFAR10_CLASSES, (3, 32, 32), **_TORCHVISION, download_mb=163, images=(50000, 10000),
    # torchvision keeps CIFAR's python batches (HWC numpy arrays) in its base folder, not raw/
    traits={"torchvision_class": "CIFAR10", "layout": "batches"}))
DATASETS.register_pattern(Pattern(said="a folder of images, a .npz or a .csv", example="./my-images",
                                  matches=is_data_path, make=data_from_path))
