"""Sweeps: a spec (file, dict or setup text) expands into validated configs; results fold into a table."""

import csv
import io
import json
import math
import re
import statistics
from pathlib import Path

import pytest

from tui_trainer.engine.config import SETTINGS, TrainConfig
from tui_trainer.engine.events import RunState
from tui_trainer.runs.sweep import (MAX_RUNS, NOT_SWEPT, SWEEP_KEYS, Axis, RunResult, SweepError, SweepSpec,
                                    SweepTooLarge, expand, metric_by_field, parse_axis, range_axis, sweep_table)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sweeps"
BASE = TrainConfig(epochs=1, device="cpu")


def spec(text: str) -> SweepSpec:
    return SweepSpec.from_toml(text)


def error_of(text: str) -> str:
    with pytest.raises(SweepError) as info:
        spec(text).configs()
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------ expansion


def test_log_range_gives_decades_ends_included():
    values = range_axis("lr", "log", 1e-4, 1e-1, 4).grid()
    assert len(values) == 4
    for got, want in zip(values, (1e-4, 1e-3, 1e-2, 1e-1)):
        assert math.isclose(got, want, rel_tol=1e-12)
    assert values[1] == 0.001  # read back clean, so run names say lr=0.001
    assert range_axis("lr", "log", 1e-4, 1e-1, 7).grid() == (1e-4, 0.000316, 0.001, 0.00316, 0.01, 0.0316, 0.1)


def test_lin_range_and_whole_numbers_round_for_int_fields():
    assert range_axis("label_smoothing", "lin", 0.0, 0.2, 5).grid() == pytest.approx((0.0, 0.05, 0.1, 0.15, 0.2))
    assert range_axis("batch_size", "log", 32, 512, 5).grid() == (32, 64, 128, 256, 512)
    assert all(type(v) is int for v in range_axis("epochs", "lin", 1, 10, 4).grid())
    assert range_axis("epochs", "lin", 1, 10, 4).grid() == (1, 4, 7, 10)


def test_whole_number_range_that_repeats_values_is_refused_with_how_many_fit():
    with pytest.raises(SweepError, match=r"^sweep\.epochs: lin range \[1, 3\] with count 5 repeats whole numbers "
                                         r"\(1, 2, 2, 3, 3\); use count = 3 or less$"):
        range_axis("epochs", "lin", 1, 3, 5)
    with pytest.raises(SweepError, match=r"^sweep\.lr: log range \[0\.001, 0\.00101\] with count 4 repeats values "
                                         r"at 3 significant digits \(0\.001, 0\.001, 0\.00101, 0\.00101\); "
                                         r"use count = 2 or less$"):
        range_axis("lr", "log", 0.001, 0.00101, 4)


def test_grid_order_seeds_outermost_then_axes_as_written_last_fastest():
    configs = spec("""
epochs = 1
[sweep]
name = "s"
lr = [0.001, 0.01]
model = ["scratch-mlp", "cnn"]
seed = [0, 1]
""").configs()
    got = [(c.seed, c.lr, c.model) for c in configs]
    assert got == [(0, 0.001, "scratch-mlp"), (0, 0.001, "cnn"), (0, 0.01, "scratch-mlp"), (0, 0.01, "cnn"),
                   (1, 0.001, "scratch-mlp"), (1, 0.001, "cnn"), (1, 0.01, "scratch-mlp"), (1, 0.01, "cnn")]
    assert configs[0].name == "s lr=0.001 model=scratch-mlp seed=0"
    assert configs[-1].name == "s lr=0.01 model=cnn seed=1"
    assert all(c.epochs == 1 for c in configs)


def test_run_names_list_only_what_varies_and_fall_back_to_the_base_name():
    configs = spec('name = "base"\n[sweep]\nlr = [0.001, 0.002]\nweight_decay = [0.0]\nseed = [4]\n').configs()
    assert [c.name for c in configs] == ["base lr=0.001", "base lr=0.002"]
    assert all(c.seed == 4 and c.weight_decay == 0.0 for c in configs)


def test_int_values_of_float_fields_become_floats():
    configs = spec("[sweep]\nweight_decay = [0, 1]\n").configs()
    assert [type(c.weight_decay) for c in configs] == [float, float]


def test_hidden_sizes_sweep_as_lists_of_lists():
    configs = spec("[sweep]\nhidden = [[128, 64], [256]]\n").configs()
    assert [c.hidden for c in configs] == [(128, 64), (256,)]
    assert configs[0].name == "hidden=128,64"


def test_same_file_same_configs():
    text = '[sweep]\nmode = "random"\nsamples = 5\nlr = {log = [1e-4, 1e-1]}\nmodel = ["cnn", "scratch-mlp"]\n'
    assert spec(text).configs() == spec(text).configs()
    other = spec(text.replace("samples = 5", "samples = 5\nsample_seed = 7")).configs()
    assert other != spec(text).configs()


def test_random_mode_samples_ranges_within_bounds_and_log_uniformly():
    configs = spec('[sweep]\nmode = "random"\nsamples = 400\nsample_seed = 3\n'
                   'lr = {log = [1e-4, 1e-1]}\nlabel_smoothing = {lin = [0.0, 0.2]}\n').configs()
    assert len(configs) == 400
    lrs = [c.lr for c in configs]
    assert all(1e-4 <= v <= 1e-1 for v in lrs)
    # log-uniform: a third of the draws in each decade, give or take
    for lo in (1e-4, 1e-3, 1e-2):
        share = sum(lo <= v < lo * 10 for v in lrs) / len(lrs)
        assert 0.25 < share < 0.42
    smoothing = [c.label_smoothing for c in configs]
    assert all(0.0 <= v <= 0.2 for v in smoothing)
    assert 0.08 < statistics.fmean(smoothing) < 0.12
    assert len({(c.lr, c.label_smoothing) for c in configs}) == 400


def test_random_mode_seeds_repeat_each_sample():
    configs = spec('[sweep]\nmode = "random"\nsamples = 3\nlr = {log = [1e-4, 1e-1]}\nseed = [0, 1, 2]\n').configs()
    assert len(configs) == 9
    first, second = configs[:3], configs[3:6]
    assert [c.lr for c in first] == [c.lr for c in second]
    assert [c.seed for c in configs] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_random_mode_over_lists_never_draws_a_config_twice_and_refuses_more_than_there_are():
    configs = spec('[sweep]\nmode = "random"\nsamples = 4\nmodel = ["cnn", "scratch-mlp"]\nlr = [0.1, 0.2]\n').configs()
    assert len({(c.model, c.lr) for c in configs}) == 4
    assert error_of('[sweep]\nmode = "random"\nsamples = 5\nmodel = ["cnn", "scratch-mlp"]\nlr = [0.1, 0.2]\n') == \
        "sweep.samples: 5 samples but only 4 different configs; lower samples or use the grid"


def test_expand_and_parse_axis_build_the_same_sweep_as_a_file():
    axes = {"lr": parse_axis("lr", "log 1e-4 1e-1 4")}
    from_setup = expand(BASE, axes, seeds=(0, 1), name="s")
    from_file = spec('epochs = 1\ndevice = "cpu"\n[sweep]\nname = "s"\nlr = {log = [1e-4, 1e-1], count = 4}\n'
                     'seed = [0, 1]\n').configs()
    assert from_setup == from_file
    assert expand(BASE, [parse_axis("lr", "log 1e-4 1e-1 4"), parse_axis("seed", "0,1")], name="s") == from_file


@pytest.mark.parametrize("field, text, axis", [
    ("lr", "0.001,0.01", Axis("lr", values=(0.001, 0.01))),
    ("lr", " 0.001 ; 0.01 ", Axis("lr", values=(0.001, 0.01))),
    ("lr", "log 1e-4 1e-1 4", Axis("lr", scale="log", low=1e-4, high=1e-1, count=4)),
    ("label_smoothing", "lin 0.1 0.5 5", Axis("label_smoothing", scale="lin", low=0.1, high=0.5, count=5)),
    ("lr", "log 1e-4 1e-1", Axis("lr", scale="log", low=1e-4, high=1e-1)),
    ("model", "scratch-mlp, cnn", Axis("model", values=("scratch-mlp", "cnn"))),
    ("hidden", "128,64; 256", Axis("hidden", values=((128, 64), (256,)))),
    ("nesterov", "true,false", Axis("nesterov", values=(True, False))),
    ("seed", "0,1,2", Axis("seed", values=(0, 1, 2))),
])
def test_parse_axis_reads_setup_text_and_text_reads_back(field, text, axis):
    assert parse_axis(field, text) == axis
    assert parse_axis(field, axis.text()) == axis


@pytest.mark.parametrize("field, text, message", [
    ("lr", "abc", "sweep.lr: got 'abc'; must be a number"),
    ("lr", "0.1, -1", "sweep.lr: got -1.0; must be a number greater than 0 and at most 10 (e.g. 0.001)"),
    ("lr", "log 0.1 0.001 3", "sweep.lr: log range needs 0 < lo < hi, got [0.1, 0.001]"),
    ("lr", "log 0 0.1 3", "sweep.lr: log range needs 0 < lo < hi, got [0, 0.1]"),
    ("lr", "lin 0.1 0.1 3", "sweep.lr: lin range needs lo < hi, got [0.1, 0.1]"),
    ("lr", "log 1e-4 1e-1 0", "sweep.lr: count must be a whole number of 1 or more, got 0"),
    ("lr", "log 1e-4 1e-1 x", "sweep.lr: count must be a whole number of 1 or more, got 'x'"),
    ("lr", "log 1e-4", "sweep.lr: a range is 'log LO HI COUNT', got 'log 1e-4'"),
    ("lr", "", "sweep.lr: empty list; give at least one value"),
    ("lr", "0.1, 0.1", "sweep.lr: 0.1 is listed twice"),
    ("model", "cnn, resnet", "sweep.model: got 'resnet'; choose one of scratch-mlp, sequential-mlp, cnn, or give "
                             "FILE.py:NAME or package.module:NAME"),
    ("model", "lin 1 2 2", "sweep.model: a range needs a number setting; give a list of values instead"),
    ("epochs", "lin 0 5 6", "sweep.epochs: got 0; must be a whole number from 1 to 10000"),
    ("device", "cpu,cuda", f"sweep.device: cannot be swept; {NOT_SWEPT['device']}"),
    ("nesterov", "maybe", "sweep.nesterov: got 'maybe'; must be true or false (or yes/no, 1/0)"),
])
def test_parse_axis_refuses_in_one_line_naming_the_field(field, text, message):
    with pytest.raises(SweepError) as info:
        parse_axis(field, text)
    assert str(info.value) == message


def test_parse_axis_reads_switches_as_the_form_and_the_command_line_do():
    assert parse_axis("nesterov", "true, no").values == (True, False)
    assert parse_axis("nesterov", "1; 0").values == (True, False)


def test_axes_made_by_hand_are_checked_too():
    with pytest.raises(SweepError, match=r"^sweep\.lr: got -1\.0; must be a number greater than 0"):
        expand(BASE, [Axis("lr", values=(0.1, -1.0))])
    with pytest.raises(SweepError, match=r"^sweep\.lr: swept twice$"):
        expand(BASE, [Axis("lr", values=(0.1,)), Axis("lr", values=(0.2,))])
    with pytest.raises(SweepError, match=r"^sweep\.seed: given twice, as an axis and as seeds$"):
        expand(BASE, [Axis("lr", values=(0.1, 0.2)), Axis("seed", values=(0, 1))], seeds=(0, 1))
    with pytest.raises(SweepError, match=r"^sweep\.seed: 1 is listed twice$"):
        expand(BASE, [Axis("lr", values=(0.1, 0.2))], seeds=(1, 1))


def test_unknown_field_is_refused_naming_it():
    with pytest.raises(SweepError, match=r"^sweep\.learning_rate: unknown setting; settings that can be swept are "):
        parse_axis("learning_rate", "0.1")


# ------------------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize("text, message", [
    ("[sweep]\nlr = {log = [0.1, 0.001], count = 3}\n", "sweep.lr: log range needs 0 < lo < hi, got [0.1, 0.001]"),
    ("[sweep]\nlr = {lin = [0.1, 0.01], count = 3}\n", "sweep.lr: lin range needs lo < hi, got [0.1, 0.01]"),
    ("[sweep]\nlr = {log = [1e-4, 1e-1], count = 0}\n", "sweep.lr: count must be a whole number of 1 or more, got 0"),
    ("[sweep]\nlr = {log = [1e-4, 1e-1]}\n", 'sweep.lr: a range needs a count in a grid (or mode = "random")'),
    ("[sweep]\nlr = {log = [1e-4, 1e-1], cnt = 3}\n",
     "sweep.lr: a range is {log = [lo, hi], count = n} or {lin = [lo, hi], count = n}, got keys cnt, log"),
    ("[sweep]\nlr = {log = [1e-4], count = 3}\n", "sweep.lr: log needs [lo, hi], got [0.0001]"),
    ("[sweep]\nlr = []\n", "sweep.lr: empty list; give at least one value"),
    ("[sweep]\nlr = 0.01\n",
     "sweep.lr: give a list of values or a range; one value belongs in the config above [sweep]"),
    ("[sweep]\nlr = [0.01, 20]\n", "sweep.lr: got 20.0; must be a number greater than 0 and at most 10 (e.g. 0.001)"),
    ("[sweep]\nepochs = [1, 2.5]\n", "sweep.epochs: got 2.5; must be a whole number from 1 to 10000"),
    ("[sweep]\nbogus = [1, 2]\n", None),
    ("[sweep]\ndata_dir = ['a', 'b']\n", f"sweep.data_dir: cannot be swept; {NOT_SWEPT['data_dir']}"),
    ("[sweep]\nmode = \"random\"\nlr = [0.1, 0.2]\n",
     "sweep.samples: random mode needs samples = n of 1 or more, got 0"),
    ("[sweep]\nmode = \"random\"\nsamples = 2\nlr = {log = [1e-4, 1e-1], count = 3}\n",
     "sweep.lr: count has no meaning in random mode (a range is sampled continuously); remove it, or use a list"),
    ("[sweep]\nmode = \"bayes\"\nlr = [0.1, 0.2]\n", "sweep.mode: got 'bayes'; choose grid or random"),
    ("[sweep]\nsamples = 3\nlr = [0.1, 0.2]\n", 'sweep.samples: only with mode = "random"'),
    ("[sweep]\nsample_seed = 3\nlr = [0.1, 0.2]\n", 'sweep.sample_seed: only with mode = "random"'),
    ("[sweep]\nseed = [0]\n", "sweep: nothing to sweep; list values or a range of a setting under [sweep]"),
    ("lr = 0.1\n", "sweep: no [sweep] table; add one with the values to sweep (e.g. lr = [0.001, 0.003])"),
    ("lrr = 0.1\n[sweep]\nlr = [0.1, 0.2]\n", None),
    ("epochs = 0\n[sweep]\nlr = [0.1, 0.2]\n", "epochs: got 0; must be a whole number from 1 to 10000"),
    ("[sweep]\nmomentum = [0.8, 0.9]\n",
     "sweep.momentum: only matters with optimizer sgd, and no run of this sweep uses it"),
    ('optimizer = "sgd"\nmomentum = 0\n[sweep]\nnesterov = [true, false]\n',
     "sweep: nesterov=true: nesterov: needs momentum greater than 0; set --momentum 0.9 or turn nesterov off"),
])
def test_bad_sweep_files_get_one_line_naming_the_field(text, message):
    got = error_of(text)
    if message is None:  # unknown: the same message as train --config gives, or the sweep's own
        assert got.startswith(("sweep.bogus: unknown setting;", "lrr: unknown setting; known settings are "))
    else:
        assert got == message


def test_unknown_base_key_reads_as_train_config_says_it():
    from tui_trainer.engine.config import ConfigError

    with pytest.raises(ConfigError) as config_error:
        TrainConfig.from_toml("lrr = 0.1\n")
    assert error_of("lrr = 0.1\n[sweep]\nlr = [0.1, 0.2]\n") == str(config_error.value)


def test_malformed_toml_names_the_line():
    message = error_of("epochs = 1\n[sweep]\nlr = [0.1, 0.2\nseed = [0]\n")
    assert message.startswith("sweep file is not valid TOML: ")
    assert "line 4" in message


def test_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(SweepError, match=r"^cannot read sweep file .*missing\.toml: "):
        SweepSpec.load(tmp_path / "missing.toml")


def test_more_than_max_runs_needs_allow_large():
    text = "[sweep]\nlr = {log = [1e-5, 1], count = 101}\nseed = {lin = [0, 9], count = 10}\n"
    with pytest.raises(SweepTooLarge) as info:
        spec(text).configs()
    assert info.value.runs == 1010 > MAX_RUNS
    assert str(info.value) == "sweep: 1010 runs, more than 1000 at once"
    assert spec(text).size() == 1010
    assert len(spec(text).configs(allow_large=True)) == 1010
    exactly = "[sweep]\nlr = {log = [1e-5, 1], count = 100}\nseed = {lin = [0, 9], count = 10}\n"
    assert len(spec(exactly).configs()) == MAX_RUNS


def test_sweep_keys_and_unsweepable_fields_come_from_settings():
    assert set(NOT_SWEPT) <= set(SETTINGS)
    assert set(SWEEP_KEYS) & set(SETTINGS) <= set(NOT_SWEPT)  # [sweep]'s own keys never hide a swept setting


def test_bench_sweep_files_expand():
    recommended = SweepSpec.load(BENCH / "recommended-mlp.toml").configs()
    assert len(recommended) == 2 * 2 * 2 * 2 * 3
    assert {c.dataset for c in recommended} == {"fashion-mnist"}
    assert {(c.model, c.hidden, c.epochs) for c in recommended} == {("scratch-mlp", (128, 64), 15)}
    assert sorted({c.seed for c in recommended}) == [0, 1, 2]
    smoke = SweepSpec.load(BENCH / "smoke.toml").configs()
    assert [(c.lr, c.seed) for c in smoke] == [(0.001, 0), (0.003, 0), (0.001, 1), (0.003, 1)]
    assert {(c.dataset, c.max_train_samples, c.epochs) for c in smoke} == {("fashion-mnist-mini", 256, 1)}


# ------------------------------------------------------------------------------------------ the table


def result(lr, seed, val, test, seconds, state="finished", model="scratch-mlp", **extra):
    config = BASE.replace(lr=lr, seed=seed, model=model, name=f"lr={lr} seed={seed}", **extra)
    return RunResult(config=config, best_val_acc=val, test_acc=test, seconds=seconds, state=state,
                     run_id=f"r{lr}-{seed}")


RESULTS = [
    result(0.001, 0, 85.0, 84.5, 30.0),
    result(0.001, 1, 86.0, 85.1, 32.0),
    result(0.001, 2, None, None, 5.0, state="running"),
    result(0.01, 0, 88.0, 87.2, 29.0),
    result(0.01, 1, 88.4, 87.9, 31.0, device="cuda:1"),  # placed elsewhere by the queue: same config
    result(0.01, 2, 88.1, 87.0, 30.0),
    result(0.1, 0, 70.0, 69.0, 28.0),
    result(0.1, 1, 40.0, None, 3.0, state="failed"),
]


def test_table_groups_by_config_without_seed_and_sorts_best_first():
    table = sweep_table(RESULTS)
    assert table.fields == ("lr",)
    assert [r.values["lr"] for r in table.rows] == [0.01, 0.001, 0.1]
    best, middle, worst = table.rows
    assert (best.done, best.total, best.seeds) == (3, 3, (0, 1, 2))
    assert best.test_acc.mean == pytest.approx(statistics.fmean([87.2, 87.9, 87.0]))
    assert best.test_acc.std == pytest.approx(statistics.stdev([87.2, 87.9, 87.0]))
    assert best.best_val_acc.std == pytest.approx(statistics.stdev([88.0, 88.4, 88.1]))
    assert best.seconds.mean == pytest.approx(30.0)
    assert best.best_run_id == "r0.01-1"
    assert (middle.done, middle.total) == (2, 3)  # the running one shows in the count, not the means
    assert middle.test_acc.mean == pytest.approx(statistics.fmean([84.5, 85.1]))
    assert (worst.done, worst.total) == (1, 2)
    assert worst.test_acc.mean == 69.0 and worst.test_acc.std is None and worst.test_acc.n == 1


def test_table_falls_back_to_best_val_without_test_accuracy():
    runs = [result(0.001, 0, 80.0, None, 1.0), result(0.01, 0, 90.0, None, 1.0), result(0.1, 0, None, None, 1.0),
            result(0.3, 0, 10.0, 11.0, 1.0)]
    table = sweep_table(runs)
    assert [r.values["lr"] for r in table.rows] == [0.3, 0.01, 0.001, 0.1]
    assert sweep_table(runs[:3]).sort_metric == "best_val_acc"


def test_table_columns_are_the_fields_that_differ():
    runs = [result(0.01, 0, 80.0, 80.0, 1.0, model="cnn"), result(0.01, 0, 81.0, 81.0, 1.0),
            result(0.02, 0, 82.0, 82.0, 1.0, model="cnn")]
    assert sweep_table(runs).fields == ("model", "lr")  # in SETTINGS order


def test_recommended_sweep_table_fits_80_columns_whole():
    configs = SweepSpec.load(BENCH / "recommended-mlp.toml").configs()
    table = sweep_table([RunResult(c, 90.0 + c.lr, 89.5 + c.seed / 10, 95.0 + c.seed, "finished") for c in configs])
    lines = table.render(80)
    assert table.fields == ("batch_size", "lr", "weight_decay", "label_smoothing")
    assert len(lines) == 1 + 16 and all(len(line) <= 80 for line in lines)
    # four varied fields: their headers are cut so every number still fits
    assert lines[0].split()[:4] == ["batch_…", "lr", "weight…", "label_…"]
    assert lines[1].split()[4:] == ["3/3", "89.60%", "±", "0.10", "90.00%", "±", "0.00", "1m36s", "±", "1s"]


def test_csv_round_trips_through_the_csv_module():
    table = sweep_table(RESULTS)
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert list(rows[0]) == ["lr", "done", "total", "test_acc_mean", "test_acc_std", "best_val_acc_mean",
                             "best_val_acc_std", "seconds_mean", "seconds_std", "best_run_id"]
    assert [float(r["lr"]) for r in rows] == [0.01, 0.001, 0.1]
    assert float(rows[0]["test_acc_mean"]) == table.rows[0].test_acc.mean
    assert float(rows[0]["test_acc_std"]) == table.rows[0].test_acc.std
    assert rows[2]["test_acc_std"] == ""
    assert (rows[1]["done"], rows[1]["total"]) == ("2", "3")


def test_csv_keeps_hidden_sizes_in_one_cell():
    runs = [result(0.01, 0, 80.0, 80.0, 1.0, hidden=(128, 64)), result(0.01, 0, 81.0, 81.0, 1.0, hidden=(256,))]
    rows = list(csv.reader(io.StringIO(sweep_table(runs).to_csv())))
    assert [r[0] for r in rows] == ["hidden", "256", "128,64"]


def test_json_export():
    data = json.loads(sweep_table(RESULTS).to_json())
    assert data["fields"] == ["lr"] and data["sort_metric"] == "test_acc"
    assert data["rows"][0]["lr"] == 0.01 and data["rows"][2]["test_acc_std"] is None
    assert data["rows"][0]["test_acc_mean"] == pytest.approx(statistics.fmean([87.2, 87.9, 87.0]))


def test_render_fits_80_columns_and_shows_mean_and_std():
    lines = sweep_table(RESULTS).render(80)
    assert lines[0].split() == ["lr", "done", "test", "acc", "best", "val", "time"]
    assert lines[1].split()[:5] == ["0.01", "3/3", f"{statistics.fmean([87.2, 87.9, 87.0]):.2f}%", "±",
                                    f"{statistics.stdev([87.2, 87.9, 87.0]):.2f}"]
    assert lines[3].split()[:3] == ["0.1", "1/2", "69.00%"]  # one seed: no ±
    assert all(len(line) <= 80 for line in lines)
    assert "+-" in sweep_table(RESULTS).render(80, ascii_only=True)[1]


def test_render_narrows_long_values_then_drops_time_and_best_val():
    long = [result(0.01, 0, 80.0, 80.0, 1.0, hidden=(4096, 2048, 1024, 512, 256, 128, 64, 32)),
            result(0.01, 0, 81.0, 81.0, 61.0, hidden=(64,), batch_size=7, epochs=3, label_smoothing=0.125)]
    table = sweep_table(long)
    narrow = table.render(60)
    assert all(len(line) <= 60 for line in narrow)
    assert narrow[0].split()[-5:] == ["done", "test", "acc", "best", "val"]  # time went first
    assert narrow[2].split()[0] == "4096,2\u2026"  # cut with an ellipsis, the widest first
    narrower = table.render(50)
    assert all(len(line) <= 50 for line in narrower)
    assert narrower[0].split()[-3:] == ["done", "test", "acc"]
    assert "time" in table.render(None)[0] and "4096,2048,1024,512,256,128,64,32" in table.render(None)[1] + \
        table.render(None)[2]


def test_metric_by_field_averages_configs_per_value():
    runs = [result(0.01, 0, 80.0, 80.0, 1.0, model="cnn"), result(0.01, 0, 70.0, 70.0, 1.0),
            result(0.001, 0, 60.0, 60.0, 1.0, model="cnn"), result(0.001, 0, 50.0, None, 1.0)]
    table = sweep_table(runs)
    assert metric_by_field(table, "lr") == [(0.001, 60.0), (0.01, 75.0)]
    assert metric_by_field(table, "lr", "best_val_acc") == [(0.001, 55.0), (0.01, 75.0)]
    with pytest.raises(SweepError, match=r"^sweep\.seed: not varied in this sweep; choose one of model, lr$"):
        metric_by_field(table, "seed")


def test_result_from_a_store_record():
    class Record:  # the RunRecord attributes it reads
        id, best_val_acc, test_acc, duration_s, state = "abc", 80.0, 79.0, 12.5, RunState.FINISHED
        config = BASE.to_dict()

        def train_config(self):
            return TrainConfig.from_dict(self.config)

    assert RunResult.from_record(Record()) == RunResult(BASE, 80.0, 79.0, 12.5, "finished", "abc")


def test_a_model_argument_is_swept_one_at_a_time_and_tabled_as_a_field_of_its_own():
    spec = SweepSpec.from_toml('model = "net.py:Net"\nmodel_source = "x = 1"\n[model_args]\ndepth = 2\n'
                               '[sweep]\nmodel_args.width = [16, 32]\nmodel_args.sizes = [[8, 4], [4]]\n')
    configs = spec.configs()
    assert [c.model_args for c in configs] == [{"depth": 2, "width": w, "sizes": s}
                                               for w in (16, 32) for s in ((8, 4), (4,))]
    assert configs[0].name == "model_args.width=16 model_args.sizes=8,4"
    assert {c.model_source for c in configs} == {"x = 1"}
    table = sweep_table([RunResult(c, 50.0, 50.0 + i, 1.0, "finished", str(i)) for i, c in enumerate(configs)])
    assert table.fields == ("model_args.sizes", "model_args.width")  # by name: a config is its arguments, in any order
    assert parse_axis("model_args.act", "relu; 'gelu'; (1, 2)").values == ("relu", "gelu", (1, 2))
    for text, said in [('[sweep]\nmodel_args = [1, 2]\n', "sweep.model_args: sweep its items one at a time"),
                       ('[sweep]\nmodel_args.width = [1, 2]\n', "sweep.model_args.width: only matters with model "
                                                                   "FILE.py:NAME or package.module:NAME"),
                       ('model = "n.py:N"\n[sweep]\nmodel_args.width = {lin = [1, 4], count = 4}\n',
                        "sweep.model_args.width: a range needs a number setting; give a list of values instead")]:
        with pytest.raises(SweepError, match=re.escape(said)):
            SweepSpec.from_toml(text)
