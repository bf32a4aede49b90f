"""`scratch-tui inspect`, `runs show --layers` and the export of the probe's statistics (issue 20)."""

import json
import re

from tui_trainer.runs.store import RunStore

from .test_runs_cli import run_cli

MINI = ["--dataset", "fashion-mnist-mini", "--device", "cpu"]


def test_inspect_names_the_tutorials_unscaled_init_on_its_first_layer_and_records_nothing(capsys, runs_home):
    code, out, err = run_cli(["inspect", "--preset", "tutorial", *MINI], capsys)
    assert code == 0, err
    assert re.search(r"^layers\.0\s+\w*Linear\s", out, re.M)  # the table has a row per layer
    verdict = out.strip().splitlines()[-1]
    assert re.search(r"initial loss [\d.e+]+ vs 2\.30 expected for 10 classes; layers\.0 output std \d+", verdict)
    assert "~28× too large for 784 inputs" in verdict and "--init kaiming" in verdict
    with RunStore(runs_home) as store:
        assert store.list_runs() == []

    code, out, err = run_cli(["inspect", "--preset", "recommended", *MINI], capsys)
    assert code == 0, err
    assert "init looks healthy" in out and "too large" not in out


def test_a_recorded_runs_layers_are_shown_at_an_epoch_and_exported(capsys, tmp_path):
    code, out, err = run_cli(["train", "--preset", "tutorial", *MINI, "--epochs", "2", "--max-train-samples", "600",
                              "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert "too large for 784 inputs" in out  # the headless output says it as the run starts
    run_id = re.search(r"; run ([0-9a-f]{8})", out.splitlines()[0]).group(1)

    code, out, err = run_cli(["runs", "show", run_id, "--layers", "--epoch", "1", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert re.search(r"step \d+ \(epoch 1\): probe loss", out) and re.search(r"^layers\.2\s+\w*Linear", out, re.M)
    assert "too large for 784 inputs" in out

    code, out, err = run_cli(["runs", "export", run_id, "--format", "json", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    exported = json.loads(out)
    record = exported[0] if isinstance(exported, list) else exported
    stats = record["layer_stats"]
    assert stats[0]["step"] == 0 and [layer["name"] for layer in stats[0]["layers"]][:1] == ["layers.0"]
    assert any("too large" in d["text"] for d in record["diagnoses"])
