"""MAML++: its schedules, its meta-gradient against finite differences, per-step BatchNorm, strategies."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import random_context
from test_reference_maths import EPSILON, FixedBatch, directions, random_episode
from torch.func import functional_call

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.init.mamlpp import MamlPlusPlus, cosine_meta_lr, step_loss_weights
from metabench.methods.loader import build_method

STEPS = 2
SIDE = 16  # 16 -> 8 -> 4 -> 2 -> 1 through the four max-pools


def method(strategy: str = "vectorized", **overrides: str) -> MamlPlusPlus:
    """A float64 MAML++ of 4 channels for 3-way 1-shot tasks with 2 queries, 2 inner steps."""
    spec = EpisodeSpec(3, 1, 2)
    values = {"inner_steps": str(STEPS), "meta_batch": "2", "train_queries": "2", "hidden": "4"}
    torch.manual_seed(0)
    built = build_method("maml++", random_context(spec), "smoke", values | {"strategy": strategy} | overrides)
    built.model.double()
    built.step_sizes.data = built.step_sizes.data.double()
    return built  # type: ignore[return-value]


@pytest.fixture(scope="module")
def episode() -> Episode:
    return random_episode(batch=2, ways=3, shots=1, queries=2, side=SIDE, seed=3)


@dataclass
class Step:
    start: dict[str, torch.Tensor]
    rates: torch.Tensor
    grads: dict[str, torch.Tensor]
    rate_grads: torch.Tensor
    stats: Any


def meta_step(built: MamlPlusPlus, episode: Episode) -> Step:
    with torch.no_grad():  # distinct rates per layer and step, so a rate used in the wrong place shows
        generator = torch.Generator().manual_seed(4)
        built.step_sizes.copy_(
            0.05 + 0.1 * torch.rand(built.step_sizes.shape, generator=generator, dtype=torch.float64)
        )
    start = {name: p.detach().clone() for name, p in built.model.named_parameters()}
    rates = built.step_sizes.detach().clone()
    stats = built.meta_train_step(FixedBatch(episode), torch.Generator())
    grads = {name: p.grad.clone() for name, p in built.model.named_parameters()}
    return Step(start, rates, grads, built.step_sizes.grad.clone(), stats)


def reference_objective(
    built: MamlPlusPlus, params: dict[str, torch.Tensor], rates: torch.Tensor, episode: Episode
) -> float:
    """The MAML++ meta-objective written out with plain autograd, values only: for each task, inner SGD
    steps on the mean support cross-entropy (step k with BatchNorm row k and rate rates[layer, k]),
    the query losses after each step weighted by the multi-step loss of epoch 0 (1/steps each), summed;
    then the mean over tasks."""
    total = 0.0
    for t in range(episode.batch_size):
        adapted = {name: p.clone().requires_grad_() for name, p in params.items()}
        task = 0.0
        for k in range(STEPS):
            out, _ = functional_call(built.model, adapted, (episode.support[t], k))
            inner = [name for name in adapted if not name.startswith("norms.")]
            grads = torch.autograd.grad(
                F.cross_entropy(out, episode.support_labels[t]), [adapted[n] for n in inner]
            )
            for i, (name, g) in enumerate(zip(inner, grads, strict=True)):
                adapted[name] = (adapted[name] - rates[i, k] * g).detach().requires_grad_()
            logits, _ = functional_call(built.model, adapted, (episode.query[t], k))
            task += F.cross_entropy(logits, episode.query_labels[t]).item() / STEPS
        total += task / episode.batch_size
    return total


def test_multi_step_loss_weights_follow_the_authors_schedule() -> None:
    # HYPERPARAMETERS.md, computed from get_per_step_loss_importance_vector for 5 steps, 10 MSL epochs.
    assert step_loss_weights(5, 0, 10, True) == pytest.approx([0.2] * 5)
    assert step_loss_weights(5, 5, 10, True) == pytest.approx([0.1] * 4 + [0.6])
    assert step_loss_weights(5, 9, 10, True) == pytest.approx([0.02] * 4 + [0.92])
    assert step_loss_weights(5, 10, 10, True) == [0.0] * 4 + [1.0]
    assert step_loss_weights(5, 0, 10, False) == [0.0] * 4 + [1.0]
    for epoch in range(12):
        assert sum(step_loss_weights(5, epoch, 10, True)) == pytest.approx(1.0)


def test_cosine_meta_learning_rate_is_torchs_cosine_annealing_stepped_per_epoch() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100, eta_min=1e-5)
    for epoch in range(101):
        assert cosine_meta_lr(1e-3, 1e-5, epoch, 100) == pytest.approx(
            optimizer.param_groups[0]["lr"], rel=1e-9
        )
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
def test_meta_gradient_of_weights_and_step_sizes_matches_finite_differences(
    strategy: str, episode: Episode
) -> None:
    # Second order through 2 inner steps, with the multi-step loss, per-step BatchNorm weights and the
    # learned per-layer per-step rates: all receive the derivative of the objective MAML++ defines.
    built = method(strategy)
    step = meta_step(built, episode)
    assert step.stats.metrics["second_order"] == 1.0 and step.stats.metrics["final_step_weight"] == 0.5
    assert (step.rate_grads != 0).all(), "every layer's rate at every step must receive a gradient"
    assert all((step.grads[f"norms.{i}.weight"] != 0).any(dim=1).all() for i in range(4)), (
        "every step's BatchNorm weights must receive a gradient"
    )
    objective_at_start = reference_objective(built, step.start, step.rates, episode)
    for direction in directions({**step.start, "rates": step.rates}, 2):
        rates_direction = direction.pop("rates")

        def at(sign: float, rates_direction: torch.Tensor = rates_direction, d: dict = direction) -> float:
            params = {name: p + sign * EPSILON * d[name] for name, p in step.start.items()}
            return reference_objective(built, params, step.rates + sign * EPSILON * rates_direction, episode)

        numeric = (at(1.0) - at(-1.0)) / (2 * EPSILON)
        analytic = (
            sum((step.grads[n] * direction[n]).sum() for n in direction)
            + (step.rate_grads * rates_direction).sum()
        )
        assert analytic.item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    assert objective_at_start > 0


def test_both_strategies_take_the_same_step_and_collect_the_same_statistics(episode: Episode) -> None:
    vectorized, loop = method("vectorized"), method("loop")
    a, b = meta_step(vectorized, episode), meta_step(loop, episode)
    assert a.stats.loss == pytest.approx(b.stats.loss, rel=1e-12)
    for name in a.grads:
        torch.testing.assert_close(a.grads[name], b.grads[name], rtol=1e-9, atol=1e-12, msg=name)
    torch.testing.assert_close(a.rate_grads, b.rate_grads, rtol=1e-9, atol=1e-12)
    for name, buffer in vectorized.model.named_buffers():  # the per-step running statistics
        torch.testing.assert_close(buffer, dict(loop.model.named_buffers())[name], rtol=1e-9, atol=1e-12)


def test_per_step_batchnorm_keeps_one_set_of_statistics_per_step(episode: Episode) -> None:
    built = method()
    first_conv = [built.model.convs[0](episode.support[t]).detach() for t in range(episode.batch_size)]
    meta_step(built, episode)
    norm = built.model.norms[0]
    assert norm.running_mean.shape == (STEPS, 4) and norm.weight.shape == (STEPS, 4)
    # Step 0 sees the initial weights: its row is 0.1 x the tasks' mean batch mean of the first conv.
    expected = 0.1 * torch.stack([x.mean(dim=(0, 2, 3)) for x in first_conv]).mean(dim=0)
    torch.testing.assert_close(norm.running_mean[0], expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(norm.running_mean[0], norm.running_mean[1])  # step 1: adapted weights
    shared = method(per_step_bn_statistics="false", per_step_bn_weights="false")
    meta_step(shared, episode)
    assert shared.model.norms[0].running_mean.shape == (1, 4) and shared.model.norms[0].weight.shape == (1, 4)


def test_derivative_order_annealing_is_first_order_for_its_epochs(episode: Episode) -> None:
    annealed = meta_step(method(first_order_epochs="1"), episode)
    second = meta_step(method(), episode)
    assert annealed.stats.metrics["second_order"] == 0.0
    difference = sum((annealed.grads[n] - second.grads[n]).abs().sum() for n in second.grads)
    assert difference > 1e-3 * sum(g.abs().sum() for g in second.grads.values())


def test_running_statistics_make_queries_independent(episode: Episode) -> None:
    built = method(test_statistics="running")
    assert not built.transductive and method().transductive
    meta_step(built, episode)
    predictions = built.predict(episode)
    changed = episode.query.clone()
    changed[:, 1:] = torch.rand_like(changed[:, 1:])  # every query but the first replaced
    other = replace(episode, query=changed)
    assert torch.equal(built.predict(other)[:, 0], predictions[:, 0])
