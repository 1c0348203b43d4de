"""Reptile: the outer rule, its two implementations, ε's annealing, transduction, resume, learning."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, random_context
from torch.func import functional_call

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.base import TrainingContext
from metabench.methods.init.cards import REPTILE
from metabench.methods.init.reptile import Reptile, mini_batch_indices

SMALL = EpisodeSpec(ways=5, shots=1, queries=3)
# Small enough that a step takes milliseconds; 2 shots of 5 ways make 10 images, so batches of 4 straddle
# two shuffles (as the authors' _mini_batches lets them).
TINY = {"hidden": "8", "meta_batch": "3", "inner_iters": "3", "inner_batch": "4", "train_shots": "2"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture
def float64() -> Iterator[None]:
    """Build in float64, where two implementations of the same maths agree to rounding."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def build(
    overrides: dict[str, str] | None = None, meta_steps: int = 0, seed: int = 0, **changes: str
) -> Reptile:
    torch.manual_seed(seed)  # as the runner does before constructing a method
    context = random_context(SMALL)
    context = TrainingContext(SMALL, context.device, context.train, meta_steps=meta_steps)
    config = REPTILE.make_config("smoke", {**(TINY if overrides is None else overrides), **changes}, SMALL)
    return Reptile(config, context)


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Equal to float64 rounding, but for the conv biases, which BatchNorm cancels: their gradients are
    rounding noise that Adam divides by its epsilon (updates up to lr x g / 1e-8, 1e-7 measured), so any
    two implementations move them differently, and it changes no output. Only their smallness is checked."""
    for name, value in actual.items():
        if name.endswith("conv.bias"):
            assert value.abs().max() < 1e-5 and expected[name].abs().max() < 1e-5
        else:
            torch.testing.assert_close(value, expected[name], rtol=1e-9, atol=1e-12)


def reference_step(method: Reptile, generator: torch.Generator, epsilon: float) -> tuple[dict, dict]:
    """θ and the carried second moments after one meta-step, computed task by task with textbook Adam
    (beta1 = 0, bias-corrected v̂ under the root) and the outer rule θ + ε (mean φ − θ)."""
    config, ways = method.config, SMALL.ways
    batch = method.context.train.sample(config.meta_batch, method.train_spec, generator)
    images = torch.cat([batch.support, batch.query], dim=1)[:, : ways * config.train_shots].double()
    labels = torch.cat([batch.support_labels, batch.query_labels], dim=1)[:, : ways * config.train_shots]
    order = mini_batch_indices(
        batch.batch_size, images.shape[1], config.inner_iters, config.inner_batch, generator
    )
    theta = {name: p.detach().clone() for name, p in method.model.named_parameters()}
    adapted, moments = [], []
    for t in range(batch.batch_size):
        weights, v = dict(theta), {name: m.clone() for name, m in method.exp_avg_sq.items()}
        for i in range(config.inner_iters):
            step = method.adam_step + i + 1
            leaves = {name: w.detach().requires_grad_() for name, w in weights.items()}
            logits = functional_call(method.model, leaves, (images[t, order[t, i]],))
            loss = F.cross_entropy(logits, labels[t, order[t, i]], reduction="sum")
            grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
            for name, w in leaves.items():
                v[name] = 0.999 * v[name] + 0.001 * grads[name] ** 2
                v_hat = v[name] / (1 - 0.999**step)
                weights[name] = (w - config.inner_lr * grads[name] / (v_hat.sqrt() + 1e-8)).detach()
        adapted.append(weights)
        moments.append(v)
    mean = {name: torch.stack([a[name] for a in adapted]).mean(0) for name in theta}
    new_theta = {name: theta[name] + epsilon * (mean[name] - theta[name]) for name in theta}
    return new_theta, {name: torch.stack([m[name] for m in moments]).mean(0) for name in theta}


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
@pytest.mark.parametrize(("meta_step", "meta_step_final", "epsilon"), [("1", "0", 1.0), ("0.6", "0.2", 0.4)])
def test_a_step_moves_theta_toward_the_mean_adapted_weights(
    strategy: str, meta_step: str, meta_step_final: str, epsilon: float, float64: None
) -> None:
    """The third step of a 4-step run (fraction 0.5: ε halfway from meta_step to meta_step_final) against
    a per-task reference; the first case is fraction 0 of a run of unknown length, where ε = 1 makes θ
    the mean of the adapted weights. The two steps before make the carried Adam state non-trivial."""
    known_length = epsilon != 1.0
    method = build(
        meta_steps=4 if known_length else 0,
        strategy=strategy,
        meta_step=meta_step,
        meta_step_final=meta_step_final,
    )
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        method.meta_train_step(method.context.train, generator)
    assert method.adam_step == 2 * method.config.inner_iters
    expected, moments = reference_step(method, copy.deepcopy(generator), epsilon)
    stats = method.meta_train_step(method.context.train, generator)
    assert stats.metrics["meta_step_size"] == pytest.approx(epsilon)
    assert_same_weights({name: p.detach() for name, p in method.model.named_parameters()}, expected)
    for name, v in method.exp_avg_sq.items():
        torch.testing.assert_close(v, moments[name], rtol=1e-9, atol=1e-15)
    assert method.adam_step == 3 * method.config.inner_iters


def test_vectorized_and_loop_strategies_agree(float64: None) -> None:
    methods = [build(strategy=strategy) for strategy in ("vectorized", "loop")]
    stats = []
    for method in methods:
        generator = torch.Generator().manual_seed(1)
        stats.append([method.meta_train_step(method.context.train, generator) for _ in range(2)])
    vectorized, loop = methods
    for a, b in zip(*stats, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-9) and a.accuracy == b.accuracy
    assert_same_weights(vectorized.model.state_dict(), loop.model.state_dict())
    for name, v in vectorized.exp_avg_sq.items():
        torch.testing.assert_close(v, loop.exp_avg_sq[name], rtol=1e-9, atol=1e-15)
    assert vectorized.adam_step == loop.adam_step
    episode = vectorized.context.train.sample(4, SMALL, torch.Generator().manual_seed(2))
    assert torch.equal(vectorized.predict(episode), loop.predict(episode))


def test_step_size_anneals_linearly_over_the_run() -> None:
    method = build(meta_steps=4, meta_step="1", meta_step_final="0.2", inner_iters="1", meta_batch="1")
    generator = torch.Generator().manual_seed(0)
    sizes = [
        method.meta_train_step(method.context.train, generator).metrics["meta_step_size"] for _ in range(5)
    ]
    # train.py: frac_done = i / meta_iters, so the last of 4 steps is 3/4 of the way; past the end, the final.
    assert sizes == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    unknown_length = build(meta_step="0.7", inner_iters="1", meta_batch="1")
    assert unknown_length.meta_train_step(unknown_length.context.train, generator).metrics == {
        "meta_step_size": pytest.approx(0.7)
    }


def queries_replaced(episode: Episode, generator: torch.Generator) -> Episode:
    """The same tasks with every query but the first replaced by random binary images."""
    query = episode.query.clone()
    query[:, 1:] = torch.randint(0, 2, query[:, 1:].shape, generator=generator).to(query.dtype)
    return Episode(
        episode.support,
        episode.support_labels,
        query,
        episode.query_labels,
        episode.ways,
        episode.shots,
        episode.queries,
    )


@pytest.mark.parametrize("transductive", [False, True])
def test_a_query_depends_on_the_others_only_when_transductive(transductive: bool) -> None:
    method = build(transductive=str(transductive).lower())
    assert method.transductive is transductive
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):  # trained a little, so BatchNorm's statistics matter for the answer
        method.meta_train_step(method.context.train, generator)
    episode = method.context.train.sample(16, SMALL, generator)
    first = method.predict(episode)[:, 0]
    changed = method.predict(queries_replaced(episode, generator))[:, 0]
    if transductive:
        assert (first != changed).any(), "the transductive mode never lets the other queries matter"
    else:
        assert torch.equal(first, changed)


def test_predict_is_deterministic_and_leaves_the_method_untouched() -> None:
    method = build()
    generator = torch.Generator().manual_seed(4)
    method.meta_train_step(method.context.train, generator)
    before = copy.deepcopy(method.state_dict())
    episode = method.context.train.sample(3, SMALL, generator)
    first = method.predict(episode)
    assert first.dtype == torch.long and first.shape == episode.query_labels.shape
    assert torch.equal(method.predict(episode), first)
    assert_same_state(method.state_dict(), before)
    assert method.adam_step == before["adam"]["step"] and method.steps_taken == before["steps_taken"]
    # A task's answers do not depend on the batch it is predicted in.
    alone = Episode(
        episode.support[1:2],
        episode.support_labels[1:2],
        episode.query[1:2],
        episode.query_labels[1:2],
        SMALL.ways,
        SMALL.shots,
        SMALL.queries,
    )
    assert torch.equal(method.predict(alone), first[1:2])


def test_resume_continues_exactly() -> None:
    """Model, Adam's moments and step count, and the step counter that places ε on its schedule."""
    uninterrupted = build(meta_steps=5)
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):
        uninterrupted.meta_train_step(uninterrupted.context.train, generator)
    buffer = io.BytesIO()
    torch.save(uninterrupted.state_dict(), buffer)
    resumed_generator = copy.deepcopy(generator)
    expected = uninterrupted.meta_train_step(uninterrupted.context.train, generator)

    resumed = build(meta_steps=5, seed=1)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    stats = resumed.meta_train_step(resumed.context.train, resumed_generator)
    assert stats == expected
    assert_same_state(resumed.state_dict(), uninterrupted.state_dict())
    assert (resumed.adam_step, resumed.steps_taken) == (uninterrupted.adam_step, uninterrupted.steps_taken)


def test_config_follows_the_authors_commands_and_checks_train_shots() -> None:
    five = REPTILE.make_config("paper", {}, EpisodeSpec(5, 1, 15))
    assert (five.train_shots, five.inner_batch, five.inner_iters, five.inner_lr) == (10, 10, 5, 1e-3)
    assert (five.meta_step, five.meta_step_final, five.meta_batch, five.eval_batch, five.eval_iters) == (
        1.0,
        0.0,
        5,
        5,
        50,
    )
    twenty = REPTILE.make_config("paper", {}, EpisodeSpec(20, 1, 15))
    assert (twenty.inner_batch, twenty.inner_iters, twenty.inner_lr, twenty.eval_batch) == (20, 10, 5e-4, 10)
    assert REPTILE.preset_for("paper", EpisodeSpec(20, 1, 15)).meta_steps == 200_000
    assert REPTILE.preset_for("paper", EpisodeSpec(5, 5, 15)).meta_steps == 100_000
    with pytest.raises(ValueError, match="--set train_shots=N"):
        build(train_shots="21")
    build(train_shots="20")  # every drawing of a class
