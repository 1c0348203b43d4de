"""The meta-learner LSTM (Ravi & Larochelle 2017): its update rule, meta-gradient, invariants and learning."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state
from torch import nn

from metabench.config import EpisodeSpec
from metabench.data import evaluation_episodes, load_protocol
from metabench.data.episode import Episode
from metabench.methods.base import TrainingContext
from metabench.methods.other.cards import LSTM_OPTIMIZER
from metabench.methods.other.lstm_optimizer import LstmOptimizer, preprocess
from metabench.models.conv4 import Conv4, Conv4Classifier

SPEC = EpisodeSpec(ways=5, shots=1, queries=10)
# Overrides that make a training step cheap, for the tests of mechanics (not of learning).
TINY = {"train_queries": "2", "inner_steps": "3"}
# A derangement: no class keeps its label (as in test_method_invariants.py).
PERMUTATION = torch.tensor([3, 0, 4, 1, 2])


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def vinyals() -> Any:
    return load_protocol("vinyals")


@pytest.fixture(scope="module")
def tasks(vinyals: Any) -> Episode:
    """Four real test tasks."""
    return next(iter(evaluation_episodes(vinyals.test, SPEC, 4, batch_size=4)))


def build(data: Any, overrides: dict[str, str] | None = None, seed: int = 0, preset: str = "smoke"):
    config = LSTM_OPTIMIZER.make_config(preset, TINY if overrides is None else overrides, SPEC)
    torch.manual_seed(seed)  # as the runner does before constructing a method
    return LstmOptimizer(config, TrainingContext(SPEC, torch.device("cpu"), data.train, data.val))


def train(method: LstmOptimizer, data: Any, steps: int, generator: torch.Generator) -> list[float]:
    return [method.meta_train_step(data.train, generator).loss for _ in range(steps)]


def query_loss(method: LstmOptimizer, task: Episode) -> torch.Tensor:
    """Task 0's meta-training loss: adapt to its support set, score its queries (batch statistics)."""
    state, stats = method._adapt(task.support[0], task.support_labels[0])
    logits = method._logits(state.c, stats, task.query[0], training=True)
    return F.cross_entropy(logits, task.query_labels[0])


# --- the update rule ------------------------------------------------------------------------------


def test_preprocessing_matches_the_formula_on_both_sides_of_the_threshold() -> None:
    """(log|x| / 10, sign x) for |x| > e^-10 ~ 4.5e-5, (-1, e^10 x) below (lstm-helper.lua)."""
    x = torch.tensor([1.0, -math.exp(-5), 100.0, 1e-6, -2e-5, 0.0], dtype=torch.float64)
    e10 = math.exp(10)
    expected = torch.tensor(
        [
            [0.0, -0.5, math.log(100) / 10, -1.0, -1.0, -1.0],
            [1.0, -1.0, 1.0, 1e-6 * e10, -2e-5 * e10, 0.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(preprocess(x), expected)
    # The two branches meet at the threshold: no jump from just below to just above it.
    edge = torch.tensor([math.exp(-10) * (1 - 1e-9), math.exp(-10) * (1 + 1e-9)], dtype=torch.float64)
    below, above = preprocess(edge).T
    torch.testing.assert_close(below, above)
    assert preprocess(torch.tensor(-3.0)).shape == (2,)  # a scalar loss gives its two features


def test_fixed_gates_make_one_update_a_plain_gradient_step(vinyals: Any, tasks: Episode) -> None:
    """Forget gate held at 1 and input gate at alpha: the meta-learner's update is c0 - alpha * grad,
    with the gradient computed independently on an ordinary nn.Module copy of the learner."""
    method = build(vinyals, {"inner_steps": "1"})
    alpha = 0.05
    meta = method.meta
    with torch.no_grad():
        meta.forget_weight.zero_()
        meta.input_weight.zero_()
        meta.forget_bias.fill_(30.0)  # sigmoid(30) rounds to exactly 1 in float32
        meta.input_bias.fill_(math.log(alpha / (1 - alpha)))
        params = method._adapt(tasks.support[0], tasks.support_labels[0])[0].c

    learner = Conv4Classifier(5, Conv4(hidden=32))
    for module in learner.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
    nn.utils.vector_to_parameters(meta.c0.detach(), learner.parameters())
    loss = F.cross_entropy(learner(tasks.support[0]), tasks.support_labels[0])
    grad = nn.utils.parameters_to_vector(torch.autograd.grad(loss, list(learner.parameters())))
    # The authors' feval divides the gradient of the size-averaged loss by the batch size once more.
    expected = meta.c0.detach() - alpha * grad / tasks.support.shape[1]
    assert not torch.equal(params, meta.c0.detach())
    torch.testing.assert_close(params, expected, rtol=1e-5, atol=1e-7)


# --- the meta-gradient ----------------------------------------------------------------------------


def test_meta_gradient_reaches_both_layers_and_the_initial_cell_state(vinyals: Any) -> None:
    method = build(vinyals)
    train(method, vinyals, 1, torch.Generator().manual_seed(0))  # its gradients stay in .grad
    for name, parameter in method.meta.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert method.meta.c0.grad.count_nonzero() > 0.5 * method.meta.c0.numel()


@pytest.fixture
def float64() -> Iterator[None]:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def test_meta_gradient_matches_finite_differences(vinyals: Any, tasks: Episode, float64: None) -> None:
    """With one inner update the learner's gradient is taken at c0, which no meta-learner weight but c0
    changes, so the first-order meta-gradient of those weights is the exact derivative of the loss."""
    method = build(vinyals, {"inner_steps": "1"})
    small = EpisodeSpec(5, 1, 2)
    task = Episode(
        tasks.support[:1].double(), tasks.support_labels[:1], tasks.query[:1, :10].double(),
        tasks.query_labels[:1, :10], 5, 1, small.queries,
    )  # fmt: skip
    meta = method.meta
    query_loss(method, task).backward()
    for parameter, index in [
        (meta.input_bias, ()),
        (meta.input_weight, (0,)),
        (meta.forget_weight, (20,)),  # the weight on c_{t-1}
        (meta.lstm_weight, (70, 2)),  # layer 1: candidate row, preprocessed gradient input
        (meta.lstm_bias, (65,)),  # layer 1: candidate bias
    ]:
        step = 1e-4  # larger steps can cross a ReLU or max-pool switch, smaller ones meet rounding noise
        with torch.no_grad():
            original = parameter[index].item()
            parameter[index] = original + step
            up = query_loss(method, task).item()
            parameter[index] = original - step
            down = query_loss(method, task).item()
            parameter[index] = original
        numeric = (up - down) / (2 * step)
        assert parameter.grad[index].item() == pytest.approx(numeric, rel=1e-3)
        assert numeric != 0


# --- what predictions must satisfy ----------------------------------------------------------------


def relabelled(tasks: Episode) -> Episode:
    return Episode(
        tasks.support,
        PERMUTATION[tasks.support_labels],
        tasks.query,
        PERMUTATION[tasks.query_labels],
        tasks.ways,
        tasks.shots,
        tasks.queries,
    )


def test_relabelling_permutes_the_predictions_when_the_head_starts_symmetric(
    vinyals: Any, tasks: Episode
) -> None:
    """The meta-learner treats every parameter alike (coordinate-wise, shared weights), so when c0 starts
    all head rows equal, renaming the classes renames the rows' trajectories and the predictions."""
    method = build(vinyals)
    head = method.shapes["head.weight"].numel() + method.shapes["head.bias"].numel()
    with torch.no_grad():
        rows = method.meta.c0[-head:]  # head.weight [N, D] then head.bias [N], the last parameters
        weight, bias = rows[: -SPEC.ways].view(SPEC.ways, -1), rows[-SPEC.ways :]
        weight.copy_(weight[0].expand_as(weight).clone())
        bias.fill_(bias[0].item())
    assert torch.equal(method.predict(relabelled(tasks)), PERMUTATION[method.predict(tasks)])


def test_predict_leaves_the_method_untouched_and_is_deterministic(vinyals: Any, tasks: Episode) -> None:
    method = build(vinyals)
    train(method, vinyals, 1, torch.Generator().manual_seed(0))
    before = copy.deepcopy(method.state_dict())
    for learner_training in (True, False):
        method.learner.train(learner_training)
        modes = [m.training for m in (*method.meta.modules(), *method.learner.modules())]
        first = method.predict(tasks)
        assert torch.equal(first, method.predict(tasks))
        assert modes == [m.training for m in (*method.meta.modules(), *method.learner.modules())]
        assert_same_state(before, method.state_dict())


def test_configs_follow_the_authors() -> None:
    one = LSTM_OPTIMIZER.make_config("paper", {}, EpisodeSpec(5, 1, 15))
    assert (one.inner_steps, one.bn_momentum, one.meta_lr, one.max_grad_norm, one.hidden) == (
        12, 0.9, 1e-3, 0.25, 20,
    )  # fmt: skip
    assert (one.meta_batch, one.train_queries, one.filters, one.bn_eps) == (1, 15, 32, 1e-3)
    five = LSTM_OPTIMIZER.make_config("paper", {}, EpisodeSpec(5, 5, 15))
    assert (five.inner_steps, five.bn_momentum) == (8, 0.95)
    assert LSTM_OPTIMIZER.preset_for("paper", EpisodeSpec(5, 1, 15)).meta_steps == 75_000
    assert LSTM_OPTIMIZER.preset_for("paper", EpisodeSpec(5, 5, 15)).meta_steps == 50_000
    for preset in ("smoke", "quick", "paper"):
        assert LSTM_OPTIMIZER.preset_for(preset, EpisodeSpec(20, 1, 15)).eval_episodes > 0
    assert LSTM_OPTIMIZER.presets["quick"].eval_episodes == 1000
    with pytest.raises(ValueError, match="bn_momentum must be at most 1"):
        LSTM_OPTIMIZER.make_config("quick", {"bn_momentum": "1.5"}, SPEC)
    with pytest.raises(ValueError, match="inner_steps must be positive"):
        LSTM_OPTIMIZER.make_config("quick", {"inner_steps": "0"}, SPEC)
