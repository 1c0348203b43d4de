"""Model selection: a run can test its best-validation state instead of its last, and its record says so."""

from __future__ import annotations

from pathlib import Path

from metabench.config import RunSpec
from metabench.db import open_database
from metabench.leaderboard import get_run
from metabench.runner import CollectingSink, run

# Eight steps validated after each one: at this large learning rate ProtoNet's validation accuracy peaks
# before the last step (the test asserts it, so the selection cannot pass by testing the last state).
SETTINGS = (("hidden", "16"), ("lr", "0.05"), ("train_ways", "5"))


def spec(steps: int, *extra: tuple[str, str]) -> RunSpec:
    overrides = tuple(sorted(SETTINGS + extra))
    return RunSpec(
        "protonet", preset="smoke", meta_steps=steps, eval_episodes=25, device="cpu", overrides=overrides
    )


def test_best_validation_tests_the_state_of_the_best_step(tmp_path: Path) -> None:
    db, results = tmp_path / "runs.db", tmp_path / "results"
    best = run(
        spec(8, ("model_selection", "best-validation")), CollectingSink(), db_path=db, results_dir=results
    )
    validations = [(p.val_accuracy, p.step) for p in best.curve if p.val_accuracy is not None]
    assert len(validations) == 8
    top = max(accuracy for accuracy, _ in validations)
    expected_step = min(step for accuracy, step in validations if accuracy == top)  # ties keep the earlier
    assert best.model_selection == "best-validation" and best.tested_step == expected_step < 8
    assert best.steps_done == 8
    assert f"tested at step {expected_step} (best validation)" in best.budget

    # The tested state is the one training had at that step: a run stopped there scores the same.
    stopped = run(spec(expected_step), CollectingSink(), db_path=db, results_dir=results)
    assert stopped.model_selection == "last" and stopped.tested_step == expected_step
    assert stopped.episode_accuracies == best.episode_accuracies

    # The database and the JSON copy keep both fields.
    stored = get_run(open_database(db), best.run_id)
    assert (stored.model_selection, stored.tested_step) == ("best-validation", expected_step)
    assert f'"tested_step": {expected_step}' in (results / "runs" / f"{best.run_id}.json").read_text()
