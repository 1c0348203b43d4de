"""Benchmark the episode sampler: episodes per second, and its cost beside one Conv-4 training step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from metabench.config import EpisodeSpec
from metabench.data.episodes import EpisodeSampler


@dataclass(frozen=True)
class Setting:
    """An episode shape and the number of tasks a training step draws at once (its meta-batch)."""

    label: str
    spec: EpisodeSpec
    tasks_per_batch: int


# MAML's 5-way meta-batch (32) and 20-way meta-batch (16); ProtoNets' 60-way training episode (one per step).
SETTINGS = (
    Setting("5w1s15q", EpisodeSpec(5, 1, 15), 32),
    Setting("20w5s15q", EpisodeSpec(20, 5, 15), 16),
    Setting("60w5s5q", EpisodeSpec(60, 5, 5), 1),
)


@dataclass(frozen=True)
class SamplerResult:
    """One setting on one device."""

    device: str
    setting: str
    tasks_per_batch: int
    images_per_batch: int
    episodes_per_s: float
    sample_ms: float  # one batch of tasks
    conv4_step_ms: float  # forward and backward of a Conv-4 on that same batch
    sampling_cost_pct: float  # sample_ms / conv4_step_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv4() -> nn.Module:
    """The standard few-shot backbone: 4 x [3x3 conv 64, BatchNorm, ReLU, 2x2 max-pool] on 28x28 -> 64."""
    layers: list[nn.Module] = []
    for channels_in in (1, 64, 64, 64):
        layers += [nn.Conv2d(channels_in, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten())


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _timed(action: Callable[[], object], device: torch.device, min_seconds: float, min_repeats: int) -> float:
    """Seconds per call. The first call warms up; when it alone outlasts `min_seconds` (a Conv-4 step on a
    CPU can take seconds) it is the measurement, else repeats follow until the time and count are reached."""
    started = time.perf_counter()
    action()
    _sync(device)
    first = time.perf_counter() - started
    if first >= min_seconds:
        return first
    repeats, started = 0, time.perf_counter()
    while repeats < min_repeats or time.perf_counter() - started < min_seconds:
        action()
        repeats += 1
    _sync(device)
    return (time.perf_counter() - started) / repeats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training_step(
    backbone: nn.Module, head: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> Callable[[], None]:
    """One forward and backward pass of a Conv-4 with a linear head over every image of the batch."""

    def step() -> None:
        backbone.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(head(backbone(images)), labels).backward()

    return step


def bench_sampler(
    sampler: EpisodeSampler,
    settings: tuple[Setting, ...] = SETTINGS,
    min_seconds: float = 1.0,
    seed: int = 0,
) -> list[SamplerResult]:
    """Time `sampler` on each setting and, for scale, one Conv-4 forward/backward on the batch it drew."""
    device = sampler.device
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    results = []
    for setting in settings:
        sample_s = _timed(
            lambda s=setting: sampler.sample(s.tasks_per_batch, s.spec, generator), device, min_seconds, 5
        )
        episode = sampler.sample(setting.tasks_per_batch, setting.spec, generator)
        images = torch.cat([episode.support, episode.query], dim=1).flatten(0, 1)
        labels = torch.cat([episode.support_labels, episode.query_labels], dim=1).flatten()
        step = _training_step(conv4().to(device), nn.Linear(64, setting.spec.ways).to(device), images, labels)
        step_s = _timed(step, device, min_seconds, 2)
        results.append(
            SamplerResult(
                device=str(device),
                setting=setting.label,
                tasks_per_batch=setting.tasks_per_batch,
                images_per_batch=images.shape[0],
                episodes_per_s=setting.tasks_per_batch / sample_s,
                sample_ms=sample_s * 1e3,
                conv4_step_ms=step_s * 1e3,
                sampling_cost_pct=100 * sample_s / step_s,
            )
        )
    return results
