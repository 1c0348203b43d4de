"""The runner on the real Omniglot: determinism, resume, failure, bad input and the records it leaves."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from metabench.config import EpisodeSpec, RunSpec
from metabench.db import open_database
from metabench.errors import MetabenchError
from metabench.leaderboard import get_run, list_runs, read_record_file
from metabench.methods.registry import all_cards, get_card
from metabench.runner import CollectingSink, event_to_dict, run
from metabench.runner.checkpoint import checkpoint_path, load_checkpoint
from metabench.spec_rules import resolve_spec

# Small enough for seconds on a busy 2-core CPU; validates every step, so there are checkpoints to resume.
SPEC = RunSpec("protonet", preset="smoke", meta_steps=4, eval_episodes=12, seed=3, device="cpu")


class StopAtValidation:
    """A sink that raises KeyboardInterrupt at the validation of `step`, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)
        if event.kind == "validation" and event.step == self.step:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runner")
    return {"db": root / "runs.db", "results": root / "results"}


@pytest.fixture(scope="module")
def reference(store: dict[str, Path]):
    """One uninterrupted run that several tests compare against."""
    sink = CollectingSink()
    record = run(SPEC, sink, db_path=store["db"], results_dir=store["results"])
    return record, sink


def test_a_run_finishes_with_a_complete_record_and_event_stream(reference, store) -> None:
    record, sink = reference
    assert record.status == "finished" and record.error is None
    assert record.steps_done == 4 and record.meta_steps == 4 and record.eval_episodes == 12
    assert len(record.episode_accuracies) == 12
    assert all(0.0 <= a <= 1.0 for a in record.episode_accuracies)
    assert record.accuracy == pytest.approx(sum(record.episode_accuracies) / 12)
    assert record.ci95 is not None and record.ci95 > 0
    assert record.transductive is False and record.family == "B"
    assert record.versions["torch"] == torch.__version__
    assert record.data_digest and record.device_type == "cpu" and record.peak_rss_mb > 0
    assert record.train_time_s > 0 and record.wall_time_s >= record.train_time_s
    assert [p.step for p in record.curve] == [1, 2, 3, 4]
    assert all(p.val_accuracy is not None and p.loss is not None for p in record.curve)
    # The method's own scalars (ProtoNet reports its learning rate) reach the curve and the progress events.
    lr = float(get_card("protonet").make_config(SPEC.preset, dict(SPEC.overrides), SPEC.episode).lr)
    assert [p.metrics for p in record.curve] == [{"lr": lr}] * 4
    assert all(event.metrics == {"lr": lr} for event in sink.events if event.kind == "progress")
    # Events: started first, finished last, steps never beyond the total; every one is valid JSON.
    kinds = sink.kinds()
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("validation") == 4 and "testing" in kinds and "progress" in kinds
    for event in sink.events:
        line = json.loads(json.dumps(event_to_dict(event)))
        assert line["run_id"] == record.run_id and line["event"] == event.kind
        assert line["step"] is None or 0 <= line["step"] <= 4
    finished = event_to_dict(sink.events[-1])
    assert finished["accuracy"] == record.accuracy and finished["episodes"] == 12
    # Stored twice: in SQLite (with the per-episode results) and as a portable JSON record.
    db = open_database(store["db"])
    assert get_run(db, record.run_id) == record
    assert read_record_file(store["results"] / "runs" / f"{record.run_id}.json") == record
    assert load_checkpoint(checkpoint_path(record.run_id))["training"]["step"] == 4


@pytest.mark.slow
def test_same_spec_and_seed_give_identical_metrics(reference, store) -> None:
    first, _ = reference
    second = run(SPEC, CollectingSink(), db_path=store["db"], results_dir=store["results"])
    assert second.run_id != first.run_id and second.spec_hash == first.spec_hash
    assert second.episode_accuracies == first.episode_accuracies
    assert (second.accuracy, second.ci95) == (first.accuracy, first.ci95)
    assert [(p.loss, p.train_accuracy, p.val_accuracy) for p in second.curve] == [
        (p.loss, p.train_accuracy, p.val_accuracy) for p in first.curve
    ]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_final_metrics(reference, store) -> None:
    uninterrupted, _ = reference
    stopper = StopAtValidation(step=2)
    stopped = run(SPEC, stopper, db_path=store["db"], results_dir=store["results"])
    assert stopped.status == "interrupted" and stopped.resumable and stopped.steps_done == 2
    assert stopper.events[-1].kind == "interrupted" and stopper.events[-1].checkpoint_step == 2
    assert not (store["results"] / "runs" / f"{stopped.run_id}.json").exists()
    sink = CollectingSink()
    resumed = run(None, sink, db_path=store["db"], results_dir=store["results"], resume=stopped.run_id)
    assert resumed.run_id == stopped.run_id and resumed.status == "finished"
    assert sink.events[0].resumed and sink.events[0].step == 2
    assert min(e.step for e in sink.events if e.kind == "progress") == 3
    assert resumed.episode_accuracies == uninterrupted.episode_accuracies
    assert resumed.accuracy == uninterrupted.accuracy
    assert [(p.loss, p.val_accuracy) for p in resumed.curve] == [
        (p.loss, p.val_accuracy) for p in uninterrupted.curve
    ]
    with pytest.raises(MetabenchError, match="already finished"):
        run(None, CollectingSink(), db_path=store["db"], resume=stopped.run_id)


@pytest.mark.slow
def test_nan_loss_fails_with_the_step_and_keeps_the_last_checkpoint(store) -> None:
    spec = replace(SPEC, overrides=(("lr", "1e30"),))
    sink = CollectingSink()
    record = run(spec, sink, db_path=store["db"], results_dir=store["results"])
    assert record.status == "failed" and not record.resumable
    assert "at step" in record.error and ("nan" in record.error or "inf" in record.error)
    assert sink.events[-1].kind == "failed" and sink.events[-1].error == record.error
    kept = load_checkpoint(checkpoint_path(record.run_id))
    assert kept is not None and kept["training"]["step"] == record.steps_done
    with pytest.raises(MetabenchError, match="failed runs do not resume"):
        run(None, CollectingSink(), db_path=store["db"], resume=record.run_id)


def test_a_method_without_training_goes_straight_to_the_test(store) -> None:
    sink = CollectingSink()
    spec = RunSpec("pixels-nn", preset="smoke", eval_episodes=8, device="cpu", episode=EpisodeSpec(5, 1, 5))
    record = run(spec, sink, db_path=store["db"], results_dir=store["results"])
    assert record.status == "finished" and record.meta_steps == 0 and record.curve == ()
    assert "progress" not in sink.kinds() and "validation" not in sink.kinds()
    assert len(record.episode_accuracies) == 8


BAD_SPECS = [
    (RunSpec("no-such-method"), "unknown method"),
    (RunSpec("protonet", preset="huge"), "unknown preset"),
    (RunSpec("protonet", protocol="imagenet"), "unknown protocol"),
    (RunSpec("protonet", overrides=(("no_such_key", "1"),)), "unknown key"),
    (RunSpec("protonet", overrides=(("lr", "fast"),)), "expected a value of type float"),
    (RunSpec("protonet", episode=EpisodeSpec(5, 10, 15)), "shots \\+ queries"),
    (RunSpec("protonet", episode=EpisodeSpec(5000, 1, 5), device="cpu"), "--ways 5000 exceeds"),
    (RunSpec("protonet", meta_steps=-1), "--meta-steps"),
    (RunSpec("protonet", eval_episodes=0), "--eval-episodes"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_input_is_refused_before_any_run_row(spec: RunSpec, message: str, tmp_path: Path) -> None:
    sink = CollectingSink()
    with pytest.raises(MetabenchError, match=message):
        run(spec, sink, db_path=tmp_path / "bad.db", results_dir=tmp_path / "results")
    assert sink.kinds() == ["failed"] and sink.events[0].run_id is None
    assert "\n" not in sink.events[0].error
    assert list_runs(open_database(tmp_path / "bad.db")) == []


def test_the_budget_comes_from_the_preset_for_the_episode_shape() -> None:
    # MAML's 20-way quick budget differs from its 5-way one (a 20-way task costs 4x an inner step).
    maml = get_card("maml")
    for ways in (5, 20):
        expected = maml.preset_for("quick", EpisodeSpec(ways, 1, 15))
        resolved = resolve_spec(RunSpec("maml", episode=EpisodeSpec(ways, 1, 15)))
        assert resolved.spec.meta_steps == expected.meta_steps
        assert resolved.spec.eval_episodes == expected.eval_episodes
        assert resolved.validate_every == expected.validate_every
        assert resolved.preset_overrides == {}
    assert maml.preset_for("quick", EpisodeSpec(20, 1, 15)) != maml.preset_for("quick", EpisodeSpec(5, 1, 15))
    # A budget set by hand keeps about ten validations, whatever the preset's interval.
    by_hand = resolve_spec(RunSpec("maml", preset="quick", meta_steps=40, overrides=(("meta_lr", "0.01"),)))
    assert by_hand.validate_every == 4
    assert by_hand.preset_overrides == {"meta_steps": 40, "meta_lr": "0.01"}
    assert resolve_spec(RunSpec("maml", preset="quick", meta_steps=3)).validate_every == 1


def test_missing_data_and_absent_cuda_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    with pytest.raises(MetabenchError, match="no Omniglot data in"):
        run(replace(SPEC), CollectingSink(), db_path=db, data_dir=str(tmp_path / "nowhere"))
    if not torch.cuda.is_available():
        with pytest.raises(MetabenchError, match="--device cuda"):
            run(replace(SPEC, device="cuda"), CollectingSink(), db_path=db)
    with pytest.raises(MetabenchError, match="'nope' is not a run id"):
        run(None, CollectingSink(), db_path=db, resume="nope")
    with pytest.raises(MetabenchError, match="no run 'protonet-vinyals-5w1s-20260101T000000-abcd'"):
        run(None, CollectingSink(), db_path=db, resume="protonet-vinyals-5w1s-20260101T000000-abcd")
    assert list_runs(open_database(db)) == []


@pytest.mark.slow
@pytest.mark.parametrize("method", [m.name for m in all_cards()])
def test_every_registered_method_runs_its_smoke_preset_end_to_end(method: str, store) -> None:
    # The smoke preset's config for 4 steps (each validated and checkpointed) and 16 test episodes: the
    # whole pipeline for every method in seconds. The learning at each smoke budget is checked by
    # tests/test_methods.py; SNAIL's 200 smoke steps alone took 18 s here.
    spec = RunSpec(method=method, preset="smoke", meta_steps=4, eval_episodes=16, device="cpu")
    sink = CollectingSink()
    record = run(spec, sink, db_path=store["db"], results_dir=store["results"])
    assert record.status == "finished", record.error
    assert record.method == method and record.preset == "smoke"
    assert record.steps_done == (4 if get_card(method).needs_training else 0)
    assert len(record.episode_accuracies) == 16 and 0.0 <= record.accuracy <= 1.0
    assert sink.kinds()[0] == "started" and sink.kinds()[-1] == "finished"
    assert read_record_file(store["results"] / "runs" / f"{record.run_id}.json").run_id == record.run_id
    assert get_run(open_database(store["db"]), record.run_id).status == "finished"
