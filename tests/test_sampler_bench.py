"""`metabench bench sampler`'s core measures what it says (numbers are printed, never asserted on time)."""

from __future__ import annotations

import torch

from metabench.bench.sampler import Setting, bench_sampler, conv4
from metabench.config import EpisodeSpec
from metabench.data.episodes import EpisodeSampler


def test_conv4_is_the_standard_backbone() -> None:
    model = conv4()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 64)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4
    assert sum(p.numel() for p in model.parameters()) == 111_936  # 640 + 3 x 36,928 (convs) + 4 x 128 (BN)


def test_bench_reports_every_setting() -> None:
    sampler = EpisodeSampler(
        torch.zeros(12, 20, 28, 28, dtype=torch.uint8), torch.tensor([(c, 0) for c in range(12)])
    )
    settings = (Setting("5w1s1q", EpisodeSpec(5, 1, 1), 2), Setting("10w2s3q", EpisodeSpec(10, 2, 3), 1))
    results = bench_sampler(sampler, settings, min_seconds=0.0)
    assert [r.setting for r in results] == ["5w1s1q", "10w2s3q"]
    assert [r.images_per_batch for r in results] == [20, 50]
    for r in results:
        assert r.device == "cpu" and r.episodes_per_s > 0 and r.sample_ms > 0 and r.conv4_step_ms > 0
        assert r.sampling_cost_pct == 100 * r.sample_ms / r.conv4_step_ms
        assert set(r.to_dict()) >= {"episodes_per_s", "sampling_cost_pct"}
