"""The core maths against independent references: ProtoNet's logits, MAML's meta-gradients.

Each reference is written from the papers' definitions with plain autograd, sharing no helper with
the implementation, and every comparison is in float64 so the tolerances can be tight.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from conftest import random_context
from torch import nn
from torch.func import functional_call

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.compare.protonet import prototype_logits
from metabench.methods.loader import build_method

Params = dict[str, torch.Tensor]


def random_episode(batch: int, ways: int, shots: int, queries: int, side: int, seed: int) -> Episode:
    """Random float64 images; each task's labels in a random order (the support is NOT class-major)."""
    generator = torch.Generator().manual_seed(seed)

    def labels(per_class: int) -> torch.Tensor:
        ordered = torch.arange(ways).repeat_interleave(per_class)
        return torch.stack([ordered[torch.randperm(len(ordered), generator=generator)] for _ in range(batch)])

    def images(count: int) -> torch.Tensor:
        return torch.rand(batch, count, 1, side, side, generator=generator, dtype=torch.float64)

    return Episode(
        images(ways * shots), labels(shots), images(ways * queries), labels(queries), ways, shots, queries
    )


def reference_prototype_logits(
    support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, ways: int
) -> torch.Tensor:
    """Snell et al., eq. 1-2: logits = -||f(x) - c_k||^2, c_k the mean embedding of class k's support."""
    logits = []
    for features, labels, queries in zip(support, support_labels, query, strict=True):
        means = torch.stack([features[labels == k].mean(dim=0) for k in range(ways)])
        logits.append(-(torch.cdist(queries, means) ** 2))
    return torch.stack(logits)


# --- ProtoNet -------------------------------------------------------------------------------------


def test_prototype_logits_are_negative_squared_distances_to_class_means() -> None:
    # Catches: a missing minus sign (nearest class scored lowest), plain instead of squared distances
    # (same argmax, different softmax and training loss), means taken over slots in class-major
    # order instead of by label (the labels here are shuffled), and prototypes mixed across tasks.
    generator = torch.Generator().manual_seed(0)
    ways, shots, queries, dim = 4, 3, 5, 16
    support = torch.randn(3, ways * shots, dim, generator=generator, dtype=torch.float64)
    query = torch.randn(3, ways * queries, dim, generator=generator, dtype=torch.float64)
    labels = torch.stack([torch.randperm(ways * shots, generator=generator) % ways for _ in range(3)])
    expected = reference_prototype_logits(support, labels, query, ways)
    actual = prototype_logits(support, labels, query, ways)
    assert actual.shape == (3, ways * queries, ways)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_protonet_logits_and_accuracy_through_the_method_match_the_reference() -> None:
    # The method's own path: one backbone pass over every task's support and query, split back into
    # tasks. Catches a wrong split of that joint pass (a query embedded as support, tasks mixed) and
    # evaluate() scoring anything but the argmax of those logits.
    spec = EpisodeSpec(5, 2, 3)
    torch.manual_seed(0)
    method = build_method("protonet", random_context(spec), "smoke", {"hidden": "8"})
    method.model.double().eval()  # running statistics: every image is embedded on its own
    episode = random_episode(batch=3, ways=5, shots=2, queries=3, side=28, seed=1)
    with torch.no_grad():
        support = torch.stack([method.model(images) for images in episode.support])
        query = torch.stack([method.model(images) for images in episode.query])
        expected = reference_prototype_logits(support, episode.support_labels, query, episode.ways)
        actual = method._logits(episode)
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)
    correct = (expected.argmax(-1) == episode.query_labels).double().mean(-1)
    torch.testing.assert_close(method.evaluate(episode).double(), correct)


# --- MAML -----------------------------------------------------------------------------------------

INNER_STEPS, INNER_LR = 2, 0.4
EPSILON = 1e-6  # central differences in float64: truncation ~EPSILON^2, rounding ~1e-16 / EPSILON


def adapted_parameters(
    model: nn.Module,
    params: Params,
    episode: Episode,
    t: int,
    head_only: bool = False,
    rates: Params | None = None,
    steps: int = INNER_STEPS,
) -> Params:
    """Task t's parameters after `steps` plain gradient steps on its support loss, scaled as in
    Finn et al.'s code: the sum of the cross-entropies over the support set, divided by the shots.
    With `head_only` (ANIL) only the final linear layer steps; with `rates` (Meta-SGD) each element
    steps by its own rate instead of INNER_LR. Values only (a new leaf per step): the references
    differentiate by other means."""
    adapted = {name: p.detach().requires_grad_() for name, p in params.items()}
    for _ in range(steps):
        logits = functional_call(model, adapted, (episode.support[t],))
        loss = F.cross_entropy(logits, episode.support_labels[t], reduction="sum") / episode.shots
        grads = torch.autograd.grad(loss, list(adapted.values()))
        adapted = {
            name: (
                p - (INNER_LR if rates is None else rates[name]) * g
                if name.startswith("head.") or not head_only
                else p
            )
            .detach()
            .requires_grad_()
            for (name, p), g in zip(adapted.items(), grads, strict=True)
        }
    return adapted


def query_loss(model: nn.Module, adapted: Params, episode: Episode, t: int) -> torch.Tensor:
    return F.cross_entropy(functional_call(model, adapted, (episode.query[t],)), episode.query_labels[t])


def true_maml_objective(
    model: nn.Module,
    params: Params,
    episode: Episode,
    head_only: bool = False,
    rates: Params | None = None,
    steps: int = INNER_STEPS,
) -> torch.Tensor:
    """Finn et al.'s meta-objective as a plain function of the initial parameters (and of Meta-SGD's
    rates): the mean over tasks of the query loss after adaptation (of the head alone for ANIL). Its
    derivative is what second-order MAML (and ANIL, and Meta-SGD) must step along."""
    losses = [
        query_loss(
            model, adapted_parameters(model, params, episode, t, head_only, rates, steps), episode, t
        ).detach()
        for t in range(episode.batch_size)
    ]
    return torch.stack(losses).mean()


def first_order_meta_gradient(model: nn.Module, params: Params, episode: Episode) -> Params:
    """First-order MAML's update direction: the query-loss gradient at each task's adapted parameters,
    averaged over tasks (Finn et al., section 5.2)."""
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for t in range(episode.batch_size):
        adapted = adapted_parameters(model, params, episode, t)
        grads = torch.autograd.grad(query_loss(model, adapted, episode, t), list(adapted.values()))
        for name, g in zip(adapted, grads, strict=True):
            total[name] += g / episode.batch_size
    return total


@dataclass
class FixedBatch:
    """A sampler that hands the method one prepared batch, so its real meta_train_step runs on it."""

    episode: Episode

    def sample(self, batch_size: int, spec: EpisodeSpec, generator: torch.Generator) -> Episode:
        assert (batch_size, spec.ways, spec.shots, spec.queries) == (
            self.episode.batch_size,
            self.episode.ways,
            self.episode.shots,
            self.episode.queries,
        )
        return self.episode


@dataclass
class MetaStep:
    """One real meta_train_step in float64: the parameters it started from, the gradient it stepped
    with, the loss it reported, and the model (to evaluate the references with)."""

    model: nn.Module
    start: Params
    grads: Params
    loss: float


def meta_step(name: str, strategy: str, episode: Episode) -> MetaStep:
    spec = EpisodeSpec(episode.ways, episode.shots, episode.queries)
    overrides = {
        "inner_steps": str(INNER_STEPS),
        "inner_lr": str(INNER_LR),
        "meta_batch": str(episode.batch_size),
        "train_queries": str(episode.queries),
        "hidden": "8",
        "strategy": strategy,
    }
    torch.manual_seed(0)
    method = build_method(name, random_context(spec), "smoke", overrides)
    method.model.double()  # in place: the optimizer keeps the same parameter objects
    start = {key: p.detach().clone() for key, p in method.model.named_parameters()}
    stats = method.meta_train_step(FixedBatch(episode), torch.Generator())
    grads = {key: p.grad.detach().clone() for key, p in method.model.named_parameters()}
    return MetaStep(method.model, start, grads, stats.loss)


def directions(params: Params, count: int) -> list[Params]:
    generator = torch.Generator().manual_seed(2)
    found = []
    for _ in range(count):
        d = {name: torch.randn(p.shape, generator=generator, dtype=p.dtype) for name, p in params.items()}
        norm = torch.sqrt(sum((v**2).sum() for v in d.values()))
        found.append({name: v / norm for name, v in d.items()})
    return found


def along(grads: Params, direction: Params) -> float:
    return float(sum((grads[name] * direction[name]).sum() for name in grads))


def finite_difference(
    model: nn.Module, start: Params, direction: Params, episode: Episode, head_only: bool = False
) -> float:
    plus = {name: p + EPSILON * direction[name] for name, p in start.items()}
    minus = {name: p - EPSILON * direction[name] for name, p in start.items()}
    objective = partial(true_maml_objective, model, episode=episode, head_only=head_only)
    return float((objective(plus) - objective(minus)) / (2 * EPSILON))


@pytest.fixture(scope="module")
def episode() -> Episode:
    return random_episode(batch=2, ways=3, shots=2, queries=2, side=12, seed=3)


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
def test_second_order_maml_gradient_matches_finite_differences(strategy: str, episode: Episode) -> None:
    # Catches anything that makes the update direction other than the derivative of the objective
    # MAML defines: a missing second-order term (a silently first-order MAML), inner gradients
    # detached, the query loss taken at the unadapted parameters, a wrong scaling of the support loss
    # or of the task average; for both strategies, so neither can drift from the maths.
    step = meta_step("maml", strategy, episode)
    # The loss it reports is the reference objective (an inner step of the wrong sign or size, or a
    # query scored before adaptation, would show here first), so the derivative is of that function.
    objective = true_maml_objective(step.model, step.start, episode).item()
    assert step.loss == pytest.approx(objective, rel=1e-12), f"reported {step.loss}, true {objective}"
    for direction in directions(step.start, 3):
        derivative = finite_difference(step.model, step.start, direction, episode)
        meta = along(step.grads, direction)
        assert meta == pytest.approx(derivative, rel=1e-6, abs=1e-9), (
            f"meta-gradient {meta}, true {derivative}"
        )


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
def test_first_order_maml_is_the_first_order_gradient_and_differs_from_the_true_one(
    strategy: str, episode: Episode
) -> None:
    # fomaml must follow the query gradient at the adapted parameters: catches a "first-order" MAML
    # that still differentiates through the inner steps, or through none of them. The second check
    # shows the finite-difference test above tells the two apart on this model: there second order
    # agrees with the true derivative to 1e-8 (relative), first order misses it by about 100%.
    step = meta_step("fomaml", strategy, episode)
    reference = first_order_meta_gradient(step.model, step.start, episode)
    for name in step.grads:
        torch.testing.assert_close(step.grads[name], reference[name], rtol=1e-8, atol=1e-12, msg=name)
    for direction in directions(step.start, 3):
        derivative = finite_difference(step.model, step.start, direction, episode)
        first_order = along(step.grads, direction)
        assert abs(first_order - derivative) > 0.1 * abs(derivative), (
            f"first order {first_order}, true {derivative}"
        )


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
def test_anil_meta_gradient_is_that_of_the_head_only_objective(strategy: str, episode: Episode) -> None:
    # ANIL adapts the head alone: its reported loss and second-order meta-gradient (which still reaches
    # the body, through the head's inner steps) are those of the head-only objective, not MAML's.
    step = meta_step("anil", strategy, episode)
    objective = true_maml_objective(step.model, step.start, episode, head_only=True).item()
    assert step.loss == pytest.approx(objective, rel=1e-12)
    assert abs(objective - true_maml_objective(step.model, step.start, episode).item()) > 1e-3
    assert all(step.grads[name].abs().sum() > 0 for name in step.grads if name.startswith("features."))
    for direction in directions(step.start, 3):
        derivative = finite_difference(step.model, step.start, direction, episode, head_only=True)
        assert along(step.grads, direction) == pytest.approx(derivative, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("strategy", ["vectorized", "loop"])
def test_meta_sgd_meta_gradient_of_the_initialization_and_the_rates_matches_finite_differences(
    strategy: str, episode: Episode
) -> None:
    # Meta-SGD's learned per-element rates must receive the true second-order meta-gradient, as the
    # initialization does: catches rates that are detached (no gradient), shared per tensor instead
    # of per element, or applied as a scalar. Random rates, so a rate mixed up with another shows.
    spec = EpisodeSpec(episode.ways, episode.shots, episode.queries)
    overrides = {"meta_batch": str(episode.batch_size), "train_queries": str(episode.queries), "hidden": "8"}
    torch.manual_seed(0)
    method = build_method("meta-sgd", random_context(spec), "smoke", overrides | {"strategy": strategy})
    method.model.double()
    method.step_sizes.double()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for rate in method.step_sizes:
            rate.copy_(0.2 + 0.4 * torch.rand(rate.shape, generator=generator, dtype=torch.float64))
    names = [name for name, _ in method.model.named_parameters()]
    start = {key: p.detach().clone() for key, p in method.model.named_parameters()}
    rates = {name: r.detach().clone() for name, r in zip(names, method.step_sizes, strict=True)}
    stats = method.meta_train_step(FixedBatch(episode), torch.Generator())
    steps = method.config.inner_steps
    assert steps == 1  # Meta-SGD's one step
    assert stats.loss == pytest.approx(
        true_maml_objective(method.model, start, episode, rates=rates, steps=steps).item(), rel=1e-12
    )
    grads = {f"θ {key}": p.grad.clone() for key, p in method.model.named_parameters()}
    grads |= {f"α {name}": r.grad.clone() for name, r in zip(names, method.step_sizes, strict=True)}
    assert all(grads[f"α {name}"].abs().sum() > 0 for name in names)
    joint = {f"θ {key}": p for key, p in start.items()} | {f"α {key}": r for key, r in rates.items()}

    def objective(point: Params) -> float:
        params = {key: point[f"θ {key}"] for key in start}
        step_sizes = {key: point[f"α {key}"] for key in rates}
        return true_maml_objective(method.model, params, episode, rates=step_sizes, steps=steps).item()

    for direction in directions(joint, 3):
        plus = {key: value + EPSILON * direction[key] for key, value in joint.items()}
        minus = {key: value - EPSILON * direction[key] for key, value in joint.items()}
        derivative = (objective(plus) - objective(minus)) / (2 * EPSILON)
        assert along(grads, direction) == pytest.approx(derivative, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "meta-sgd"])
def test_both_strategies_take_the_same_step(name: str, episode: Episode) -> None:
    # The per-task loop is the readable reference for the vmap code: same loss, same gradient.
    vectorized, loop = meta_step(name, "vectorized", episode), meta_step(name, "loop", episode)
    assert vectorized.loss == pytest.approx(loop.loss, rel=1e-12)
    for key in vectorized.grads:
        torch.testing.assert_close(vectorized.grads[key], loop.grads[key], rtol=1e-10, atol=1e-13, msg=key)
