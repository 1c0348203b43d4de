"""Facts about where a run executes: the device, library versions, peak memory, timestamps."""

from __future__ import annotations

import platform
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from metabench import __version__
from metabench.config import DEVICES
from metabench.errors import MetabenchError


def resolve_device(requested: str) -> torch.device:
    """'auto' means CUDA when present; asking for CUDA without it is the user's error to fix."""
    if requested not in DEVICES:
        raise MetabenchError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise MetabenchError(
            "--device cuda was asked for but torch.cuda.is_available() is false; use --device cpu or auto"
        )
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def device_name(device: torch.device) -> str:
    """A readable name for the leaderboard: the GPU model, or the CPU model when the OS says."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({_cpu_model()})" if _cpu_model() else "CPU"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def versions() -> dict[str, str | None]:
    return {
        "metabench": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory (whole process, so earlier runs in it count too)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_cuda_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / (1024 * 1024)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
