"""Model selection: a run can test its best-validation state instead of its last, and its record says so."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_runner import StopAtValidation

from metabench.config import EpisodeSpec, RunSpec
from metabench.data.episodes import EVAL_SEED, evaluation_episodes
from metabench.db import open_database
from metabench.errors import MetabenchError
from metabench.leaderboard import get_run
from metabench.methods.registry import get_card
from metabench.runner import CollectingSink, run
from metabench.runner.setup import prepare

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


def mamlpp_spec(selection: str, steps: int = 6) -> RunSpec:
    tiny = (("hidden", "4"), ("inner_steps", "2"), ("meta_batch", "2"), ("model_selection", selection))
    return RunSpec("maml++", preset="smoke", meta_steps=steps, eval_episodes=25, device="cpu", overrides=tiny)


def test_top_5_ensemble_tests_the_mean_scores_of_the_five_best_validated_states(tmp_path: Path) -> None:
    db, results = tmp_path / "runs.db", tmp_path / "results"
    ensemble = run(mamlpp_spec("top-5-ensemble"), CollectingSink(), db_path=db, results_dir=results)
    validations = [(p.val_accuracy, p.step) for p in ensemble.curve if p.val_accuracy is not None]
    assert len(validations) == 6  # validated after every step: 5 of the 6 states are kept
    ranked = sorted(validations, key=lambda v: -v[0])  # stable: of equal accuracies the earlier first
    top_steps = [step for _, step in ranked[:5]]
    assert ensemble.model_selection == "top-5-ensemble" and ensemble.tested_step == top_steps[0]
    assert f"ensemble of the 5 best validated states (best at step {top_steps[0]})" in ensemble.budget

    # The reference: the same training by hand, each state kept, and the argmax of their summed scores.
    prepared = prepare(mamlpp_spec("top-5-ensemble"))
    generator = torch.Generator().manual_seed(prepared.spec.seed)
    states = {}
    for step in range(1, 7):
        prepared.method.meta_train_step(prepared.data.train, generator)
        states[step] = copy.deepcopy(prepared.method.state_dict())
    expected = []
    for batch in evaluation_episodes(prepared.data.test, prepared.spec.episode, 25, 25, seed=EVAL_SEED):
        total = 0
        for step in top_steps:
            prepared.method.load_state_dict(states[step])
            total = total + prepared.method.scores(batch)
        expected += (total.argmax(-1) == batch.query_labels).float().mean(-1).tolist()
    assert list(ensemble.episode_accuracies) == [round(a, 6) for a in expected]
    best_only = run(mamlpp_spec("best-validation"), CollectingSink(), db_path=db, results_dir=results)
    assert best_only.tested_step == ensemble.tested_step
    assert best_only.episode_accuracies != ensemble.episode_accuracies  # five states are not one


def test_an_interrupted_ensemble_run_resumes_with_the_states_it_had_kept(tmp_path: Path) -> None:
    # The kept states live in the checkpoint: a run stopped after 4 validations and resumed must test
    # the same five states as an uninterrupted one (it would otherwise ensemble only steps 5 and 6).
    db, results = tmp_path / "runs.db", tmp_path / "results"
    uninterrupted = run(mamlpp_spec("top-5-ensemble"), CollectingSink(), db_path=db, results_dir=results)
    stopped = run(mamlpp_spec("top-5-ensemble"), StopAtValidation(4), db_path=db, results_dir=results)
    assert stopped.status == "interrupted" and stopped.steps_done == 4
    resumed = run(None, CollectingSink(), db_path=db, results_dir=results, resume=stopped.run_id)
    assert resumed.tested_step == uninterrupted.tested_step
    assert resumed.episode_accuracies == uninterrupted.episode_accuracies


def test_an_ensemble_needs_five_validations() -> None:
    with pytest.raises(MetabenchError, match="needs 5 validated states but this run validates 4 times"):
        prepare(mamlpp_spec("top-5-ensemble", steps=4))


def test_only_methods_that_give_scores_offer_the_ensemble() -> None:
    with pytest.raises(ValueError, match="model_selection"):
        get_card("protonet").make_config(
            "smoke", {"model_selection": "top-5-ensemble"}, EpisodeSpec(5, 1, 15)
        )
