"""The throughput benchmark: rows for every method and device, both implementations really run."""

from __future__ import annotations

import dataclasses

import pytest

from metabench.bench.throughput import ThroughputRow, available_devices, measure_throughput
from metabench.config import EpisodeSpec


def test_measures_vectorized_and_loop_side_by_side() -> None:
    rows = measure_throughput(
        ("maml", "fomaml", "protonet"),
        devices=["cpu"],
        episode=EpisodeSpec(5, 1, 1),
        meta_batch=2,
        rounds=1,
        steps_per_round=1,
    )
    assert [row.method for row in rows] == ["maml", "fomaml", "protonet"]
    for row in rows:
        assert isinstance(row, ThroughputRow)
        assert row.device.startswith("cpu") and row.setting == "5w1s" and row.tasks_per_step == 2
        assert row.vectorized_tasks_per_s > 0 and row.loop_tasks_per_s > 0
        assert row.speedup == pytest.approx(row.vectorized_tasks_per_s / row.loop_tasks_per_s)
        assert set(dataclasses.asdict(row)) >= {"method", "device", "speedup"}


def test_cpu_is_always_measured() -> None:
    assert available_devices()[0] == "cpu"


def test_bad_requests_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown method 'reptil'"):
        measure_throughput(["reptil"], devices=["cpu"])
    with pytest.raises(ValueError, match="rounds and steps_per_round must be positive"):
        measure_throughput(["maml"], devices=["cpu"], rounds=0)
