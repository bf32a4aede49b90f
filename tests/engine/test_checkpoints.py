"""Checkpoints: what they hold, atomic writes, and refusing files that would run code."""

import dataclasses
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from tui_trainer.engine import checkpoints
from tui_trainer.engine.checkpoints import (CheckpointDamaged, CheckpointError, CheckpointForeign, CheckpointNotWritten,
                                            keep_as_best,
                                            load_checkpoint, save_checkpoint)
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import EpochEnded
from tui_trainer.engine.loop import TrainingRun


@pytest.fixture
def trained(small_data):
    """A run stopped at its first epoch end (two steps of 128 images), the loop waiting at the yield."""
    tiny = dataclasses.replace(small_data, train_x=small_data.train_x[:256], train_y=small_data.train_y[:256],
                               val_x=small_data.val_x[:64], val_y=small_data.val_y[:64])
    run = TrainingRun(TrainConfig(epochs=3, device="cpu"), data=tiny)
    run.run_id = "abcd1234"
    events = run.events()
    next(e for e in events if isinstance(e, EpochEnded))
    yield run
    events.close()


def test_a_checkpoint_holds_weights_optimizer_schedule_rngs_and_config(trained, tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", trained, "epoch")
    loaded = load_checkpoint(path)
    assert (loaded.config, loaded.run_id, loaded.epoch, loaded.step, loaded.mid_epoch) == (
        trained.config, "abcd1234", 1, 2, False)
    assert loaded.meta["reason"] == "epoch" and loaded.meta["torch"] == torch.__version__
    state = loaded.state
    assert state["progress"]["base_lr"] == trained.base_lr
    assert all(torch.equal(state["model"][k], v) for k, v in trained.model.state_dict().items())
    assert state["optimizer"]["state"][0]["exp_avg"].shape == next(trained.model.parameters()).shape
    assert torch.equal(state["rng"]["torch"], torch.get_rng_state())
    assert torch.equal(state["rng"]["generator"], trained.generator.get_state())
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_write_that_dies_halfway_leaves_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", trained)
    before = path.read_bytes()

    def dies_halfway(obj, fh):
        fh.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", dies_halfway)
    with pytest.raises(CheckpointNotWritten) as info:
        save_checkpoint(path, trained)
    assert str(info.value) == f"no space left on the disk holding {tmp_path}" and info.value.remedy == "free some space"
    assert path.read_bytes() == before and load_checkpoint(path).epoch == 1
    assert list(tmp_path.iterdir()) == [path]


def test_a_full_disk_inside_torch_is_named_not_torchs_enforce_fail(trained, tmp_path, monkeypatch):
    """torch.save raises "[enforce fail at inline_container.cc]" with the OSError only in its chain."""
    real_save = torch.save

    class FullDisk:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def flush(self):
            self.fh.flush()

    monkeypatch.setattr(checkpoints.torch, "save", lambda obj, fh: real_save(obj, FullDisk(fh)))
    with pytest.raises(CheckpointNotWritten, match=f"^no space left on the disk holding {tmp_path}$"):
        save_checkpoint(tmp_path / "last.pt", trained)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


def test_best_left_unwritten_by_a_full_disk_leaves_no_partial_copy(trained, tmp_path, monkeypatch):
    last = save_checkpoint(tmp_path / "last.pt", trained)

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.os, "link", no_room)  # a filesystem without hard links: it copies
    monkeypatch.setattr(checkpoints.shutil, "copyfile", no_room)
    with pytest.raises(CheckpointNotWritten, match="no space left"):
        keep_as_best(last, tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == [last]


def _flip_weights(path, model):
    """Flip bytes in the middle of the first weight tensor's data, where torch.load notices nothing."""
    data = bytearray(path.read_bytes())
    weight = next(iter(model.state_dict().values())).detach().cpu().contiguous()
    needle = weight.reshape(-1).view(torch.uint8).numpy().tobytes()[:64]
    at = data.find(needle)
    assert at > 0
    data[at + 20:at + 24] = bytes(b ^ 0xFF for b in data[at + 20:at + 24])
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_refused_by_the_checksum(trained, tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", trained)
    assert load_checkpoint(path).meta["run_id"] == "abcd1234"
    _flip_weights(path, trained.model)
    assert isinstance(torch.load(path, weights_only=True), dict)  # torch itself reads it without a word
    with pytest.raises(CheckpointDamaged, match=r"is damaged: its contents no longer match the checksum") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_checkpoint_names_its_run_model_and_shapes_and_is_refused_by_another_run(trained, tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", trained)
    loaded = load_checkpoint(path, run_id="abcd1234", config=trained.config)  # its own run: loads
    assert loaded.meta["shapes"] == {k: list(v.shape) for k, v in trained.model.state_dict().items()}
    with pytest.raises(CheckpointForeign, match=r"is run abcd1234's checkpoint \(scratch-mlp 128,64\), not run "
                                                r"ffff0000's: refused"):
        load_checkpoint(path, run_id="ffff0000", config=trained.config)
    cnn = dataclasses.replace(trained.config, model="cnn")
    with pytest.raises(CheckpointForeign, match="holds a scratch-mlp 128,64 model, but run abcd1234 trains a cnn "
                                                r"\(model differ\)"):
        load_checkpoint(path, run_id="abcd1234", config=cnn)


def test_a_checkpoint_whose_checksum_or_shapes_were_tampered_with_is_refused(trained, tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", trained)
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]  # the key deleted, so that flipped bytes would pass unseen
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="carries no checksum, so it cannot be told from a tampered file"):
        load_checkpoint(path)
    meta = json.loads(payload["meta"])  # shapes that are not the weights', with a checksum made to fit
    meta["shapes"]["layers.0.weight"] = [1, 1]
    payload["meta"] = json.dumps(meta)
    payload["checksum"] = checkpoints._checksum(payload["meta"], payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointDamaged, match="its weights are not of the shapes it names"):
        load_checkpoint(path)


KILLED_MID_WRITE = textwrap.dedent("""
    import os, sys, time
    import torch
    from tui_trainer.engine import checkpoints

    def slow_save(obj, fh):
        fh.write(b"PK\\x03\\x04 the first bytes")
        fh.flush()
        print("writing", flush=True)
        time.sleep(600)

    checkpoints.torch.save = slow_save
    checkpoints.write_atomically(checkpoints.Path(sys.argv[1]), lambda fh: checkpoints.torch.save({}, fh))
""")


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint(trained, tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", trained)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    assert load_checkpoint(path).epoch == 1
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert leftovers and all(p.name.startswith(".last.pt.") for p in leftovers)
    save_checkpoint(path, trained)  # the next write clears what the dead one left
    assert list(tmp_path.iterdir()) == [path]


def test_only_temporaries_whose_writer_is_gone_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has ended: its pid names no writer
    names = {"dead": f".last.pt.{dead_pid}.abc123.tmp", "live": f".last.pt.{os.getppid()}.def456.tmp",
             "mine": f".best.pt.{os.getpid()}.0a1b.tmp", "old": ".last.pt.x7y8z9.tmp", "new": ".last.pt.q1w2e3.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"PK half a checkpoint")
    os.utime(tmp_path / names["old"], (1, 1))  # an older release's untagged file, hours old
    assert sorted(p.name for p in checkpoints.remove_stale_temporaries(tmp_path)) == sorted(
        [names["dead"], names["old"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["mine"], names["new"]])


def test_best_is_a_separate_name_for_the_same_state(trained, tmp_path):
    last = save_checkpoint(tmp_path / "last.pt", trained)
    keep_as_best(last, tmp_path / "best.pt")
    best_bytes = (tmp_path / "best.pt").read_bytes()
    trained.step += 1  # any change makes the next write differ
    save_checkpoint(last, trained)
    assert (tmp_path / "best.pt").read_bytes() == best_bytes and load_checkpoint(tmp_path / "best.pt").step == 2
    assert load_checkpoint(last).step == 3


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_crafted_pickle_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    payload = {"format": 1, "meta": "{}", "model": RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    with pytest.raises(CheckpointError, match="refused to load it because that could run code") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_damaged_foreign_and_missing_files_are_one_line_errors(trained, tmp_path):
    good = save_checkpoint(tmp_path / "last.pt", trained).read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    cases = {"cut.pt": "is damaged or not a checkpoint", "foreign.pt": "is not a scratch-tui checkpoint",
             "missing.pt": "no checkpoint at"}
    for name, words in cases.items():
        with pytest.raises(CheckpointError, match=words) as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value)
