import pytest

from tui_trainer.engine.config import (SETTINGS, ConfigError, TrainConfig, applies, from_text, parse_hidden, preset,
                                      to_text)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("lr", -0.1, "greater than 0"),
        ("lr", float("nan"), "greater than 0"),
        ("epochs", 0, "1 to 10000"),
        ("batch_size", 2.5, "whole number"),
        ("optimizer", "rmsprop", "sgd, adam, adamw"),
        ("model", "resnet", "scratch-mlp"),
        ("dataset", "imagenet", "fashion-mnist-mini"),
        ("val_split", 0.9, "0 to 0.5"),
        ("momentum", 1.0, "up to"),
        ("device", "gpu", "cuda:N"),
        ("hidden", (128, 0), "layer sizes"),
        ("schedule", "step", "constant, cosine, onecycle"),
        ("label_smoothing", 1.5, "from 0"),
        ("seed", -1, "0 or more"),
    ],
)
def test_each_bad_field_is_named_with_its_value_and_what_is_allowed(field, value, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert list(info.value.errors) == [field]
    message = info.value.errors[field]
    assert message.startswith(f"{field}: got {value!r}")
    assert words in message


def test_several_bad_fields_are_all_reported():
    with pytest.raises(ConfigError) as info:
        TrainConfig(lr=0, epochs=-1)
    assert set(info.value.errors) == {"lr", "epochs"}


def test_config_is_frozen():
    with pytest.raises(Exception):
        TrainConfig().lr = 1  # type: ignore[misc]


def test_toml_round_trip(tmp_path):
    config = TrainConfig(model="cnn", hidden=(32, 16), lr=0.01, nesterov=True, optimizer="sgd",
                         data_dir="/tmp/x y", name='quote " test')
    path = tmp_path / "run.toml"
    config.save(path)
    assert TrainConfig.load(path) == config
    # what a paste can put in a text field still makes a file that loads back
    odd = config.replace(name="two\nlines\tand \\ back\x7f é [x]", data_dir="C:\\data\\mnist")
    odd.save(path)
    assert TrainConfig.load(path) == odd


def test_toml_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="learning_rate: unknown setting"):
        TrainConfig.from_toml("learning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="epochs: got 'ten'"):
        TrainConfig.from_toml('epochs = "ten"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml("epochs = = 3\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        TrainConfig.load(tmp_path / "missing.toml")


def test_tutorial_preset_is_the_classic_recipe():
    config = preset("tutorial")
    assert (config.model, config.init, config.optimizer, config.lr, config.batch_size, config.epochs) == (
        "scratch-mlp", "randn", "sgd", 0.01, 64, 15)
    assert config.momentum == 0 and config.schedule == "constant"


def test_recommended_preset_restores_defaults_but_keeps_dataset_and_device():
    tweaked = TrainConfig(dataset="mnist", device="cpu", lr=0.5, init="randn")
    back = preset("recommended", tweaked)
    assert (back.dataset, back.device) == ("mnist", "cpu")
    assert (back.lr, back.init) == (TrainConfig().lr, "kaiming")


def test_parse_hidden():
    assert parse_hidden("128, 64") == (128, 64)
    with pytest.raises(ConfigError, match="hidden: got '12a'"):
        parse_hidden("12a")


@pytest.mark.parametrize(
    "field, good, bad",
    [("lr", 10, 0), ("momentum", 0.0, 1.0), ("label_smoothing", 0.0, 1.0), ("val_split", 0.5, 0.51),
     ("epochs", 10_000, 10_001), ("batch_size", 1, 0), ("weight_decay", 1.0, 1.01), ("max_train_samples", 0, -1),
     ("seed", 2**63 - 1, 2**63), ("epochs", 3, 3.0), ("nesterov", True, 1), ("hidden", (1,) * 8, (1,) * 9),
     ("name", "x" * 200, "x" * 201), ("data_dir", None, 3), ("device", "cuda:1", "cuda:")],
)
def test_each_range_holds_at_its_ends(field, good, bad):
    assert getattr(TrainConfig(**{field: good}), field) == good
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: bad})
    assert list(info.value.errors) == [field]


def test_typed_text_reads_as_the_fields_type_or_names_the_field():
    assert [from_text(name, text) for name, text in
            [("epochs", "12"), ("lr", "1e-3"), ("hidden", "64,32"), ("data_dir", ""), ("name", "x")]] == [
        12, 0.001, (64, 32), None, "x"]
    with pytest.raises(ConfigError, match="epochs: got 'abc'; must be a whole number$"):
        from_text("epochs", "abc")
    with pytest.raises(ConfigError, match="lr: got 'fast'; must be a number$"):
        from_text("lr", "fast")
    assert [to_text(v) for v in ((128, 64), 0.003, 15, "adamw", None)] == ["128,64", "0.003", "15", "adamw", ""]


def test_momentum_and_nesterov_apply_only_to_sgd_and_hidden_and_init_only_to_mlps():
    def applying(**changes):
        config = TrainConfig(**changes)
        return {name for name in ("hidden", "init", "momentum", "nesterov") if applies(name, config)}

    assert applying() == {"hidden", "init"}
    assert applying(optimizer="sgd", model="sequential-mlp") == {"hidden", "init", "momentum", "nesterov"}
    assert applying(optimizer="sgd", model="cnn") == {"momentum", "nesterov"}
    assert applies("lr", {"model": "cnn", "optimizer": "adam"})
    # nesterov without momentum is refused only where nesterov is used
    assert TrainConfig(optimizer="adam", momentum=0.0, nesterov=True).nesterov
    with pytest.raises(ConfigError, match="nesterov: needs momentum"):
        TrainConfig(optimizer="sgd", momentum=0.0, nesterov=True)


def test_the_configs_model_and_dataset_names_are_the_registries():
    from tui_trainer.engine.registry import DATASETS, MODELS

    assert tuple(SETTINGS["dataset"].choices) == DATASETS.names()
    assert tuple(SETTINGS["model"].choices) == MODELS.names()
    mlps = {name for name in MODELS if applies("hidden", {"model": name})}
    assert mlps == {name for name, entry in MODELS.items() if "hidden" in entry.settings}
    # a model from a file is none of the registered names, yet one the config takes
    assert "models/net.py:Net" in SETTINGS["model"].choices and "pkg.models:Net" in SETTINGS["model"].choices
    assert applies("model_args", {"model": "models/net.py:Net"}) and not applies("hidden", {"model": "pkg.m:Net"})


def test_each_setting_says_what_it_is_and_how_the_form_offers_it():
    for name, s in SETTINGS.items():
        assert s.help and s.label, name
        assert s.control in ("input", "select", "radio", "switch", "none"), name
        assert s.choices or s.control != "select", name
    assert [SETTINGS[n].control for n in ("lr", "optimizer", "nesterov", "model")] == [
        "input", "select", "switch", "radio"]


def test_toml_holds_every_setting_but_an_unset_data_dir_and_no_model_arguments_or_source():
    import tomllib

    empty = ("data_dir", "model_args", "model_source")
    assert list(tomllib.loads(TrainConfig().to_toml())) == [name for name in SETTINGS if name not in empty]
    assert "data_dir" in tomllib.loads(TrainConfig(data_dir="/d").to_toml())
    mine = TrainConfig(model="net.py:Net", model_args={"width": 32, "sizes": [64, 32], "act": "relu"},
                       model_source='x = """\n"""\n')
    assert tomllib.loads(mine.to_toml())["model_args"] == {"width": 32, "sizes": [64, 32], "act": "relu"}
    assert TrainConfig.from_toml(mine.to_toml()) == mine
    assert TrainConfig.from_toml('model = "net.py:Net"\n[model_args]\nwidth = 8\n').model_args == {"width": 8}


def test_recommended_preset_takes_each_models_sweep_winner():
    from tui_trainer.engine.registry import MODELS

    cnn = preset("recommended", TrainConfig(model="cnn", batch_size=512))
    assert (cnn.batch_size, cnn.lr, cnn.augment) == (64, 0.002, "flip") == tuple(
        MODELS["cnn"].recommended[k] for k in ("batch_size", "lr", "augment"))
    # the MLPs: the defaults, trained on every training image (bench/sweeps/recommended-mlp-data.toml)
    for model in ("scratch-mlp", "sequential-mlp"):
        mlp = TrainConfig(model=model)
        assert preset("recommended", mlp.replace(batch_size=512)) == mlp.replace(val_split=0.0)
