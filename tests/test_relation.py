"""Relation Network: its scores, MSE loss and gradient, K-shot sums, batching, BatchNorm modes, resume."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, random_context
from test_reference_maths import FixedBatch, random_episode
from torch import nn

from metabench.config import EpisodeSpec
from metabench.data import evaluation_episodes, load_protocol
from metabench.data.episode import Episode
from metabench.methods.base import TrainingContext
from metabench.methods.compare import relation
from metabench.methods.compare.cards import RELATION
from metabench.methods.compare.relation import RelationNet, class_sums

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

SMALL = EpisodeSpec(ways=5, shots=1, queries=3)
# Few channels and queries: a step takes milliseconds (the mechanics, not the learning, are tested).
TINY = {"train_queries": "2", "hidden": "16"}
# The authors' intensity normalization (task_generator.py), of their black-ink-on-white images.
AUTHORS_MEAN, AUTHORS_STD = 0.92206, 0.08426


@pytest.fixture(scope="module")
def vinyals() -> Any:
    return load_protocol("vinyals")


def build(
    data: Any, episode: EpisodeSpec = SMALL, overrides: dict | None = None, seed: int = 0
) -> RelationNet:
    """Built as the runner builds a method: the global generator seeded just before."""
    torch.manual_seed(seed)
    config = RELATION.make_config("smoke", TINY if overrides is None else overrides, episode)
    return RelationNet(config, TrainingContext(episode, torch.device("cpu"), data.train, data.val))


def tasks_of(data: Any, spec: EpisodeSpec, tasks: int) -> Episode:
    return next(iter(evaluation_episodes(data.test, spec, tasks, batch_size=tasks)))


def part_of(episode: Episode, tasks: slice = slice(None), queries: slice = slice(None)) -> Episode:
    """Some of the tasks, with some of their queries (`queries` names how many per class remain)."""
    query, labels = episode.query[tasks, queries], episode.query_labels[tasks, queries]
    per_class = labels.shape[1] // episode.ways
    return Episode(
        episode.support[tasks],
        episode.support_labels[tasks],
        query,
        labels,
        episode.ways,
        episode.shots,
        per_class,
    )


def train(method: RelationNet, data: Any, steps: int, generator: torch.Generator) -> list[float]:
    return [method.meta_train_step(data.train, generator).loss for _ in range(steps)]


# --- the card -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ways", "shots", "queries"), [(5, 1, 19), (5, 5, 15), (20, 1, 10), (20, 5, 5), (10, 10, 5), (5, 10, 10)]
)
def test_training_queries_are_the_authors(ways: int, shots: int, queries: int) -> None:
    for preset in ("quick", "paper"):
        config = RELATION.make_config(preset, {}, EpisodeSpec(ways, shots, 15))
        assert config.train_queries == queries
    paper = RELATION.make_config("paper", {}, EpisodeSpec(ways, shots, 15))
    assert (paper.lr, paper.lr_halve_every, paper.clip_norm, paper.meta_batch) == (1e-3, 100_000, 0.5, 1)
    assert (paper.hidden, paper.relation_dim, paper.test_statistics) == (64, 8, "batch")


def test_twenty_way_quick_runs_compress_the_schedule() -> None:
    budgets = {ways: RELATION.preset_for("quick", EpisodeSpec(ways, 1, 15)) for ways in (5, 20)}
    assert (budgets[5].meta_steps, budgets[20].meta_steps) == (4000, 1500)
    assert all(b.eval_episodes == 1000 for b in budgets.values())
    assert RELATION.make_config("quick", {}, EpisodeSpec(5, 5, 15)).lr_halve_every == 1000
    assert RELATION.make_config("quick", {}, EpisodeSpec(20, 5, 15)).lr_halve_every == 500
    for ways in (5, 20):
        assert RELATION.preset_for("paper", EpisodeSpec(ways, 1, 15)).meta_steps == 1_000_000


def test_the_card_loads_no_torch() -> None:
    code = (
        "import json, sys; import metabench.methods.compare.cards; print(json.dumps('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


# --- scores, loss and gradient --------------------------------------------------------------------


def test_relation_scores_lie_in_the_unit_interval(vinyals: Any) -> None:
    method = build(vinyals)
    tasks = tasks_of(vinyals, SMALL, 4)
    for statistics in ("batch", "running"):
        scores = method.relation_scores(tasks, statistics)
        assert scores.shape == (4, SMALL.ways * SMALL.queries, SMALL.ways)
        assert ((scores >= 0) & (scores <= 1)).all()
        assert scores.std() > 0  # scores, not a constant


def test_the_loss_is_the_mse_of_the_scores_to_one_hot_labels(vinyals: Any) -> None:
    method = build(vinyals, overrides=TINY | {"clip_norm": "1e9", "meta_batch": "2"})
    batch = vinyals.train.sample(2, method.train_spec, torch.Generator().manual_seed(1))
    before = copy.deepcopy(method)
    stats = method.meta_train_step(FixedBatch(batch), torch.Generator())

    scores = before.relation_scores(batch, "batch")
    one_hot = torch.zeros_like(scores).scatter_(2, batch.query_labels.unsqueeze(2), 1.0)
    by_hand = ((scores - one_hot) ** 2).sum() / scores.numel()
    assert stats.loss == pytest.approx(F.mse_loss(scores, one_hot).item(), rel=1e-6)
    assert stats.loss == pytest.approx(by_hand.item(), rel=1e-6)
    # The gradient the step took (unclipped here) is that of the by-hand loss.
    networks = (before.encoder, before.relation)
    params = [p for net in networks for p in net.parameters()]
    expected = torch.autograd.grad(by_hand, params)
    taken = [p.grad for net in (method.encoder, method.relation) for p in net.parameters()]
    for got, want in zip(taken, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_the_gradient_matches_finite_differences() -> None:
    """In float64 on random images: the step's gradient along random directions against central
    differences of the loss, through both modules and the split first relation convolution."""
    spec = EpisodeSpec(3, 2, 2)
    torch.manual_seed(0)
    overrides = {"hidden": "6", "relation_dim": "4", "clip_norm": "1e9", "train_queries": "2"}
    config = RELATION.make_config("smoke", overrides, spec)
    method = RelationNet(config, random_context(spec))
    for net in (method.encoder, method.relation):
        net.double()
    episode = random_episode(batch=1, ways=3, shots=2, queries=2, side=28, seed=3)
    start = copy.deepcopy(method)
    method.meta_train_step(FixedBatch(episode), torch.Generator())
    names = [name for name, _ in start.encoder.named_parameters()] + [
        name for name, _ in start.relation.named_parameters()
    ]
    params = [p for net in (start.encoder, start.relation) for p in net.parameters()]
    grads = [p.grad for net in (method.encoder, method.relation) for p in net.parameters()]
    assert len(names) == len(grads)

    def loss() -> float:
        scores = start.relation_scores(episode, "batch")
        return F.mse_loss(scores, F.one_hot(episode.query_labels, 3).double()).item()

    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        epsilon = 1e-6
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(epsilon * d)
            plus = loss()
            for p, d in zip(params, direction, strict=True):
                p.sub_(2 * epsilon * d)
            minus = loss()
            for p, d in zip(params, direction, strict=True):
                p.add_(epsilon * d)
        analytic = sum((g * d).sum().item() for g, d in zip(grads, direction, strict=True))
        assert analytic == pytest.approx((plus - minus) / (2 * epsilon), rel=1e-5, abs=1e-10)


def test_each_module_is_clipped_apart_at_half_norm(vinyals: Any) -> None:
    """At the authors' initialization the relation module's gradient is far above 0.5 and the
    encoder's far below: clipped per module, only the relation module's is scaled."""
    method = build(vinyals, overrides=TINY | {"hidden": "64"})
    unclipped = build(vinyals, overrides=TINY | {"hidden": "64", "clip_norm": "1e9"})  # the same weights
    batch = vinyals.train.sample(1, method.train_spec, torch.Generator().manual_seed(0))
    stats = method.meta_train_step(FixedBatch(batch), torch.Generator())
    raw = unclipped.meta_train_step(FixedBatch(batch), torch.Generator())
    assert stats.metrics["relation_grad_norm"] > 0.5 > stats.metrics["encoder_grad_norm"]
    for key, net, reference in (
        ("encoder_grad_norm", method.encoder, unclipped.encoder),
        ("relation_grad_norm", method.relation, unclipped.relation),
    ):
        norm = stats.metrics[key]
        assert norm == pytest.approx(raw.metrics[key], rel=1e-5)
        grads = [p.grad for p in net.parameters()]
        assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 0.5 + 1e-5
        factor = min(1.0, 0.5 / norm)
        for got, want in zip(grads, [p.grad for p in reference.parameters()], strict=True):
            torch.testing.assert_close(got, want * factor, rtol=1e-4, atol=1e-8)


# --- K-shot class features and the batched pass ---------------------------------------------------


def test_a_class_feature_is_the_sum_of_its_support_features_in_any_order(vinyals: Any) -> None:
    spec = EpisodeSpec(5, 5, 2)
    method = build(vinyals, spec)
    tasks = tasks_of(vinyals, spec, 2)
    with torch.no_grad():
        features = method._embed(tasks.support, "batch", update=False)  # [2, 25, C, 5, 5]
    sums = class_sums(features, tasks.support_labels, 5)
    for t in range(2):
        for n in range(5):
            members = features[t][tasks.support_labels[t] == n]
            assert len(members) == 5
            torch.testing.assert_close(sums[t, n], members.sum(dim=0))
            assert not torch.allclose(sums[t, n], members.mean(dim=0))
    # Shuffling the support (images and labels together) changes neither the sums nor the scores.
    order = torch.randperm(25, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(class_sums(features[:, order], tasks.support_labels[:, order], 5), sums)
    shuffled = Episode(
        tasks.support[:, order], tasks.support_labels[:, order], tasks.query, tasks.query_labels, 5, 5, 2
    )
    torch.testing.assert_close(
        method.relation_logits(shuffled, "batch"),
        method.relation_logits(tasks, "batch"),
        rtol=1e-4,
        atol=1e-5,
    )


def authors_features(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The authors' CNNEncoder forward on their intensity scale (black ink on white, normalized)."""
    x = (1 - images - AUTHORS_MEAN) / AUTHORS_STD
    for layer in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4):
        x = layer(x)
    return x


def authors_relation(relation: nn.Module, pairs: torch.Tensor) -> torch.Tensor:
    """The authors' RelationNetwork forward before its sigmoid: pairs [P, 2C, 5, 5] -> logits [P]."""
    x = relation.layer2(relation.layer1(pairs)).flatten(start_dim=1)
    return relation.fc2(F.relu(relation.fc1(x))).squeeze(1)


def test_batched_scores_equal_a_per_task_per_query_per_class_loop(vinyals: Any) -> None:
    """Batch statistics: each task through the authors' modules alone (support and query in separate
    calls, BatchNorm in training mode), its class features summed and every (class, query) pair
    concatenated one by one; the batched pass scores the three tasks at once."""
    spec = EpisodeSpec(4, 3, 2)
    method = build(vinyals, spec, TINY | {"hidden": "32"})
    train(method, vinyals, 2, torch.Generator().manual_seed(0))
    tasks = tasks_of(vinyals, spec, 3)
    batched = method.relation_logits(tasks, "batch")
    encoder, relation = copy.deepcopy(method.encoder), copy.deepcopy(method.relation)
    assert encoder.training and relation.training  # BatchNorm normalizes by the batch, as the authors'
    for t in range(3):
        support = authors_features(encoder, tasks.support[t])
        query = authors_features(encoder, tasks.query[t])
        classes = [sum(support[k] for k in range(12) if tasks.support_labels[t, k] == n) for n in range(4)]
        pairs = torch.stack([torch.cat([classes[n], q]) for q in query for n in range(4)])
        expected = authors_relation(relation, pairs).view(len(query), 4)
        torch.testing.assert_close(batched[t], expected, rtol=1e-4, atol=1e-5)


def test_running_statistics_score_every_pair_on_its_own(vinyals: Any) -> None:
    """Running statistics: every (class, query) pair scored alone, one relation-module call each."""
    spec = EpisodeSpec(4, 2, 2)
    method = build(vinyals, spec, TINY | {"hidden": "32"})
    train(method, vinyals, 3, torch.Generator().manual_seed(0))
    tasks = tasks_of(vinyals, spec, 2)
    batched = method.relation_logits(tasks, "running")
    encoder, relation = copy.deepcopy(method.encoder).eval(), copy.deepcopy(method.relation).eval()
    for t in range(2):
        support = authors_features(encoder, tasks.support[t])
        query = authors_features(encoder, tasks.query[t])
        for i in range(len(query)):
            for n in range(4):
                members = support[tasks.support_labels[t] == n]
                pair = torch.cat([members.sum(dim=0), query[i]]).unsqueeze(0)
                torch.testing.assert_close(
                    batched[t, i, n], authors_relation(relation, pair)[0], rtol=1e-4, atol=1e-5
                )


def test_several_tasks_update_the_running_statistics_by_their_mean(vinyals: Any) -> None:
    """The batched update equals the mean of each task's own update from the same start."""
    method = build(vinyals)
    tasks = tasks_of(vinyals, SMALL, 2)
    alone = []
    for t in range(2):
        single = copy.deepcopy(method)
        with torch.no_grad():
            single.relation_logits(part_of(tasks, slice(t, t + 1)), "batch", update=True)
        alone.append(single)
    with torch.no_grad():
        method.relation_logits(tasks, "batch", update=True)
    for net in ("encoder", "relation"):
        for name, buffer in getattr(method, net).named_buffers():
            mean = sum(dict(getattr(m, net).named_buffers())[name] for m in alone) / 2
            torch.testing.assert_close(buffer, mean.to(buffer.dtype), rtol=1e-4, atol=1e-5)


# --- BatchNorm modes: transduction and label equivariance -----------------------------------------

SPEC = EpisodeSpec(ways=5, shots=1, queries=10)
PERMUTATION = torch.tensor([3, 0, 4, 1, 2])  # no class keeps its label


@pytest.fixture(scope="module")
def halves_episode(vinyals: Any) -> Episode:
    """Test tasks whose queries are ordered so that each half holds 5 queries of every class."""
    tasks = tasks_of(vinyals, SPEC, 4)
    by_class = tasks.query_labels.argsort(dim=1, stable=True).view(4, SPEC.ways, SPEC.queries)
    order = by_class.transpose(1, 2).flatten(1)
    query = tasks.query[torch.arange(4)[:, None], order]
    return Episode(tasks.support, tasks.support_labels, query, tasks.query_labels.gather(1, order), 5, 1, 10)


@pytest.mark.parametrize("statistics", ["batch", "running"])
def test_transduction_and_equivariance_in_both_modes(
    statistics: str, vinyals: Any, halves_episode: Episode
) -> None:
    method = build(vinyals, SPEC, TINY | {"test_statistics": statistics, "hidden": "32"})
    assert method.transductive == (statistics == "batch")
    train(method, vinyals, 5, torch.Generator().manual_seed(0))  # running statistics from training
    episode = halves_episode
    whole = method.predict(episode)
    assert whole.dtype == torch.long and whole.shape == episode.query_labels.shape
    split = torch.cat(
        [method.predict(part_of(episode, queries=half)) for half in (slice(25), slice(25, 50))], 1
    )
    if statistics == "batch":
        assert (whole != split).any(), "test-batch statistics should make some query depend on the others"
    else:
        assert torch.equal(whole, split)
    relabelled = Episode(
        episode.support,
        PERMUTATION[episode.support_labels],
        episode.query,
        PERMUTATION[episode.query_labels],
        5,
        1,
        10,
    )
    assert torch.equal(method.predict(relabelled), PERMUTATION[whole])


# --- determinism, resume, predict is read-only ----------------------------------------------------


def test_same_seed_same_run(vinyals: Any) -> None:
    runs = []
    for _ in range(2):
        method = build(vinyals, overrides=TINY | {"meta_batch": "2"})
        losses = train(method, vinyals, 3, torch.Generator().manual_seed(7))
        runs.append((method.state_dict(), losses, method.predict(tasks_of(vinyals, SMALL, 3))))
    assert_same_state(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and torch.equal(runs[0][2], runs[1][2])


def test_resume_from_state_dict_is_bit_identical_schedule_included(vinyals: Any) -> None:
    overrides = TINY | {"lr_halve_every": "2", "test_statistics": "running"}
    generator = torch.Generator().manual_seed(3)
    method = build(vinyals, overrides=overrides)
    train(method, vinyals, 3, generator)
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "generator": generator.get_state()}, buffer)
    continued = [method.meta_train_step(vinyals.train, generator) for _ in range(3)]
    # The rate halves every 2 steps: steps 3, 4, 5 (from 0) take 1/2, 1/4, 1/4 of it.
    assert [s.metrics["lr"] for s in continued] == [5e-4, 2.5e-4, 2.5e-4]

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = build(vinyals, overrides=overrides, seed=99)  # other weights: all must come from the checkpoint
    resumed.load_state_dict(checkpoint["method"])
    resumed_generator = torch.Generator()
    resumed_generator.set_state(checkpoint["generator"])
    again = [resumed.meta_train_step(vinyals.train, resumed_generator) for _ in range(3)]
    assert again == continued
    assert_same_state(resumed.state_dict(), method.state_dict())
    tasks = tasks_of(vinyals, SMALL, 3)
    assert torch.equal(resumed.predict(tasks), method.predict(tasks))


@pytest.mark.parametrize("statistics", ["batch", "running"])
def test_predict_leaves_the_method_untouched(statistics: str, vinyals: Any) -> None:
    method = build(vinyals, overrides=TINY | {"test_statistics": statistics})
    train(method, vinyals, 1, torch.Generator().manual_seed(0))
    before = copy.deepcopy(method.state_dict())
    modes = [m.training for net in (method.encoder, method.relation) for m in net.modules()]
    tasks = tasks_of(vinyals, SMALL, 30)
    first = method.predict(tasks)
    assert first.shape == (30, 15) and first.dtype == torch.long
    assert_same_state(before, method.state_dict())
    assert modes == [m.training for net in (method.encoder, method.relation) for m in net.modules()]
    assert torch.equal(first, method.predict(tasks))


@pytest.mark.parametrize("statistics", ["batch", "running"])
def test_predicting_a_few_tasks_at_a_time_changes_nothing(
    statistics: str, vinyals: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`predict` scores tasks in parts to bound its memory; a task's scores never depend on another's."""
    method = build(vinyals, overrides=TINY | {"test_statistics": statistics})
    train(method, vinyals, 3, torch.Generator().manual_seed(0))
    tasks = tasks_of(vinyals, SMALL, 7)
    whole = method.relation_logits(tasks, statistics)
    monkeypatch.setattr(relation, "PAIRS_PER_CALL", 2 * SMALL.ways * SMALL.ways * SMALL.queries)
    parts = method.predict(tasks)  # parts of 2, 2, 2 and 1 task
    assert torch.equal(parts, whole.argmax(dim=-1))
    for t in range(7):  # and each task's scores are those it gets alone
        torch.testing.assert_close(
            method.relation_logits(part_of(tasks, slice(t, t + 1)), statistics)[0], whole[t]
        )
