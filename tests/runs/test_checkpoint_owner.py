"""A run's checkpoint is checked against the run before `eval`, `--resume` or `--fork` use it: a CNN's last.pt
copied over an MLP run's is refused in one line (exit 2), never evaluated, resumed or forked in its name."""

import os
from pathlib import Path

from tui_trainer.engine.checkpoints import save_checkpoint
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.store import RunStore

from ..cli.test_runs_cli import run_cli

QUICK = ["--epochs", "1", "--max-train-samples", "200", "--device", "cpu"]



def test_a_cnn_checkpoint_copied_over_an_mlp_run_is_refused_by_eval_resume_and_fork(tmp_path, capsys, small_data):
    where = ["--runs-dir", str(tmp_path)]
    code, _, err = run_cli(["train", *QUICK, "--hidden", "16", "--name", "mlp", *where], capsys)
    assert code == 0, err
    cnn = TrainingRun(TrainConfig(model="cnn", epochs=1, max_train_samples=200, device="cpu"), data=small_data)
    cnn.run_id = "c0ffee00"  # another run's, set up but untrained: its checkpoint is all this needs
    cnn.setup()
    with RunStore(tmp_path) as store:
        ids = {r.name: r.id for r in store.list_runs()}
        mlp = store.get_run(ids["mlp"])
    folder = Path(mlp.last_checkpoint).parent  # a save killed midway left its temporary file: prune removes it
    stale, live = folder / ".last.pt.999999999.abcd.tmp", folder / f".last.pt.{os.getppid()}.efgh.tmp"
    for path in (stale, live):
        path.write_bytes(b"PK half a checkpoint")
    code, out, err = run_cli(["runs", "prune", ids["mlp"], *where], capsys)
    assert code == 0, err
    assert not stale.exists() and live.exists()  # a live process's write in progress is left alone
    live.unlink()
    for kept in (mlp.last_checkpoint, mlp.best_checkpoint):
        save_checkpoint(kept, cnn)
    why = f"is run c0ffee00's checkpoint (cnn), not run {ids['mlp']}'s: refused"
    for args in (["eval", ids["mlp"]], ["train", "--resume", ids["mlp"], "--epochs", "2"],
                 ["train", "--fork", ids["mlp"], "--epochs", "2"]):
        code, out, err = run_cli([*args, *where], capsys)
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Test Accuracy" not in out and "Epoch" not in out
    with RunStore(tmp_path) as store:
        assert len(store.list_runs()) == 1  # the refused fork left no run behind
        assert store.get_run(ids["mlp"]).epochs_done == 1  # nor did the refused resume train it
