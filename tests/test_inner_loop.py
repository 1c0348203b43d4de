"""The public inner-loop library: step sizes per step and per parameter, learned rates, frozen parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metabench.methods.init.inner_loop import InnerLoop, adapt, adapt_task_autograd, support_loss

WAYS, SHOTS, TASKS = 3, 2, 4


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, WAYS)).double()


def tasks(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(TASKS, WAYS * SHOTS, 1, 2, 2, generator=generator, dtype=torch.float64)
    y = torch.arange(WAYS).repeat_interleave(SHOTS).expand(TASKS, -1)
    return x, y


def by_hand(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor, sizes: list[dict]) -> dict:
    """Plain gradient steps written out, one task: the independent reference."""
    for size in sizes:
        loss = support_loss(model, params, x, y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {name: p - size[name] * g for (name, p), g in zip(params.items(), grads, strict=True)}
    return params


def test_per_step_and_per_parameter_sizes_equal_the_written_out_steps() -> None:
    model = tiny_model()
    params = dict(model.named_parameters())
    shapes = {name: p.shape for name, p in params.items()}
    generator = torch.Generator().manual_seed(2)
    # Step 1: one size per parameter tensor (Meta-SGD's elementwise rates); step 2: a number per layer.
    elementwise = {
        name: 0.1 * torch.rand(shape, generator=generator, dtype=torch.float64)
        for name, shape in shapes.items()
    }
    per_layer = {name: 0.3 if name.startswith("1.") else 0.05 for name in params}
    inner = InnerLoop(2, [elementwise, per_layer])
    x, y = tasks()
    batch = adapt(model, params, x, y, inner)
    for t in range(TASKS):
        expected = by_hand(model, params, x[t], y[t], [elementwise, per_layer])
        looped = adapt_task_autograd(model, params, x[t], y[t], inner, train=True)
        for name in params:
            torch.testing.assert_close(batch[name][t], expected[name], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(looped[name], expected[name], rtol=1e-12, atol=1e-12)


def test_learned_step_sizes_receive_the_meta_gradient_of_finite_differences() -> None:
    model = tiny_model()
    params = {name: p.detach() for name, p in model.named_parameters()}
    rates = {name: torch.full_like(p, 0.2).requires_grad_() for name, p in params.items()}
    x, y = tasks()
    qx, qy = tasks(seed=3)

    def outer(rates: dict) -> torch.Tensor:
        adapted = adapt(model, params, x, y, InnerLoop(2, rates))
        return sum(
            support_loss(model, {name: value[t] for name, value in adapted.items()}, qx[t], qy[t])
            for t in range(TASKS)
        )

    outer(rates).backward()
    eps = 1e-6
    for name, index in [("1.weight", (2, 1)), ("3.bias", (0,))]:
        plus = {n: r.detach().clone() for n, r in rates.items()}
        minus = {n: r.detach().clone() for n, r in rates.items()}
        plus[name][index] += eps
        minus[name][index] -= eps
        numeric = (outer(plus) - outer(minus)) / (2 * eps)
        assert rates[name].grad[index].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-9)


def test_parameters_outside_adapted_are_left_as_given() -> None:
    """ANIL's inner loop: the head moves, the body is exactly the given tensors."""
    model = tiny_model()
    params = dict(model.named_parameters())
    x, y = tasks()
    head = frozenset({"3.weight", "3.bias"})
    batch = adapt(model, params, x, y, InnerLoop(3, 0.5, adapted=head))
    for name, value in batch.items():
        moved = not torch.equal(value, params[name].expand_as(value))
        assert moved == (name in head), name
    looped = adapt_task_autograd(model, params, x[0], y[0], InnerLoop(3, 0.5, adapted=head), train=False)
    for name in params:
        torch.testing.assert_close(looped[name], batch[name][0], rtol=1e-12, atol=1e-12)


def test_a_step_size_list_must_match_the_steps() -> None:
    with pytest.raises(ValueError, match="3 step sizes given for 2 inner steps"):
        InnerLoop(2, [0.1, 0.2, 0.3])
