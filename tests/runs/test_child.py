"""The app's training process: `scratch-tui train --jsonl --control-stdin`, read back as events."""

from tui_trainer.runs.child import ChildRun
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (BatchProgress, EpochEnded, EvaluationEnded, LearningRateChanged, RunFailed,
                                       RunFinished, RunPaused, RunResumed, RunStarted)


def test_a_child_run_is_steered_and_its_events_come_back_whole(tmp_path):
    config = TrainConfig(epochs=3, max_train_samples=6000, device="cpu", seed=3)
    run = ChildRun.start(config, runs_dir=tmp_path)
    events = []
    for event in run:
        events.append(event)
        if isinstance(event, RunStarted):
            run.pause()
        elif isinstance(event, RunPaused):
            assert run.paused
            run.set_lr(0.01)
            run.resume()
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert RunPaused in kinds and RunResumed in kinds and not run.paused
    assert any(isinstance(e, LearningRateChanged) and e.lr == 0.01 for e in events)
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
    assert all(e.memory_mib is None for e in events if isinstance(e, BatchProgress))  # CUDA only
    evaluation = next(e for e in events if isinstance(e, EvaluationEnded))
    assert len(evaluation.samples[0].image[0]) == 28  # the app draws them: pixels come along


def test_a_child_that_cannot_start_reports_the_cli_message(tmp_path):
    events = list(ChildRun.start_resumed("nosuchrun", runs_dir=tmp_path))
    assert len(events) == 1 and isinstance(events[0], RunFailed)
    assert "nosuchrun" in events[0].message and "Traceback" not in events[0].message
