import pytest

from tui_trainer.engine.config import ConfigError, TrainConfig, parse_hidden, preset


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
