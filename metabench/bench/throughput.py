"""Meta-training throughput (tasks/s) of the vectorized methods next to their per-task loop references."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from metabench.config import BENCH_METHODS, EpisodeSpec
from metabench.methods.base import Method, TrainingContext
from metabench.methods.loader import build_method, get_method

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

# The config value that selects each implementation; both exist in every benchmarked method.
VECTORIZED, LOOP, AUTO = "vectorized", "loop", "auto"


@dataclass(frozen=True)
class ThroughputRow:
    """One method on one device: tasks per second of meta-training, vectorized and as a per-task loop."""

    method: str
    device: str  # e.g. "cpu" or "cuda (NVIDIA H100 80GB HBM3)"
    setting: str  # e.g. "5w1s"
    tasks_per_step: int  # tasks in one meta_train_step (the method's meta-batch)
    vectorized_tasks_per_s: float
    loop_tasks_per_s: float
    speedup: float  # vectorized / loop: how many times faster the vectorized implementation is
    auto: str | None = None  # the implementation `strategy=auto` takes here; None where there is no auto


def available_devices() -> list[str]:
    """The CPU, plus the first GPU when CUDA is available."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def measure_throughput(
    methods: Sequence[str] = BENCH_METHODS,
    devices: Sequence[str] | None = None,
    episode: EpisodeSpec | None = None,
    *,
    meta_batch: int | None = None,
    train_queries: int | None = None,
    rounds: int = 3,
    steps_per_round: int = 2,
    protocol: str = "vinyals",
    data_dir: str | None = None,
    seed: int = 0,
) -> list[ThroughputRow]:
    """Time `meta_train_step` of each method with its paper config for `episode` (default 5-way 1-shot).

    The vectorized and loop versions take turns, `rounds` times `steps_per_round` steps each after
    one warm-up step apiece, so a machine that gets busier halfway through slows both alike; the
    median round counts. `meta_batch` replaces every method's tasks per step (None: the paper's,
    e.g. 32 for 5-way MAML and 1 for ProtoNets), `train_queries` the queries per class of the
    training tasks (None: the paper's). Both versions draw the same training tasks from
    the real training split of `protocol` and start from the same weights.

    Raises ValueError for an unknown method or a device that is not there.
    """
    # Imported here so that `import metabench.bench.throughput` stays cheap for the CLI.
    from metabench.data import load_protocol

    episode = episode or EpisodeSpec(ways=5, shots=1, queries=15)
    if rounds < 1 or steps_per_round < 1:
        raise ValueError(f"rounds and steps_per_round must be positive; got {rounds} and {steps_per_round}")
    classes = [get_method(name) for name in methods]
    overrides = {}
    if meta_batch is not None:
        overrides["meta_batch"] = str(meta_batch)
    if train_queries is not None:  # the training task's queries per class: what decides MAML's "auto"
        overrides["train_queries"] = str(train_queries)
    rows = []
    for device_name in devices or available_devices():
        device = _device(device_name)
        sampler = load_protocol(protocol, device, data_dir=data_dir).train
        for method_class in classes:
            rows.append(
                _measure(method_class, sampler, device, episode, overrides, rounds, steps_per_round, seed)
            )
    return rows


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but torch sees no GPU; measure on --device cpu")
    return device


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def _build(
    method_class: type[Method],
    episode: EpisodeSpec,
    strategy: str,
    overrides: dict[str, str],
    device: torch.device,
    sampler: EpisodeSampler,
    seed: int,
) -> Method:
    torch.manual_seed(seed)  # the same initial weights for both versions
    context = TrainingContext(episode, device, sampler)
    return build_method(method_class.card.name, context, "paper", {**overrides, "strategy": strategy})


def _measure(
    method_class: type[Method],
    sampler: EpisodeSampler,
    device: torch.device,
    episode: EpisodeSpec,
    overrides: dict[str, str],
    rounds: int,
    steps: int,
    seed: int,
) -> ThroughputRow:
    versions = {
        strategy: _build(method_class, episode, strategy, overrides, device, sampler, seed)
        for strategy in (VECTORIZED, LOOP)
    }
    generators = {strategy: torch.Generator().manual_seed(seed) for strategy in versions}
    seconds: dict[str, list[float]] = {strategy: [] for strategy in versions}
    for strategy, method in versions.items():
        method.meta_train_step(sampler, generators[strategy])  # warm-up: allocator, kernels, autotuning
    for _ in range(rounds):
        for strategy, method in versions.items():
            _synchronize(device)
            began = time.perf_counter()
            for _ in range(steps):
                method.meta_train_step(sampler, generators[strategy])
            _synchronize(device)
            seconds[strategy].append((time.perf_counter() - began) / steps)
    tasks = versions[VECTORIZED].config.meta_batch
    try:
        auto = _build(method_class, episode, AUTO, overrides, device, sampler, seed)
    except ValueError:  # this method has no "auto"
        auto = None
    vectorized = tasks / statistics.median(seconds[VECTORIZED])
    loop = tasks / statistics.median(seconds[LOOP])
    return ThroughputRow(
        method=method_class.card.name,
        device=_describe(device),
        setting=episode.label,
        tasks_per_step=tasks,
        vectorized_tasks_per_s=vectorized,
        loop_tasks_per_s=loop,
        speedup=vectorized / loop,
        auto=getattr(auto, "train_strategy", None),
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
