"""Facts about where a run executes: the device, library versions, peak memory, timestamps."""

from __future__ import annotations

import functools
import hashlib
import platform
import resource
import subprocess
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


@functools.cache
def code_version() -> str:
    """The exact code that ran: 'git:<commit>' (+'-dirty' when the package differs from it), else
    'src:<digest>' of the package's source files (an installed wheel has no repository)."""
    package = Path(__file__).resolve().parents[1]
    try:
        commit = _git(package.parent, "rev-parse", "HEAD")
        dirty = _git(package.parent, "status", "--porcelain", "--untracked-files=no", "--", package.name)
        return f"git:{commit}" + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
        return f"src:{digest.hexdigest()[:16]}"


def _git(folder: Path, *args: str) -> str:
    if not (folder / ".git").exists():
        raise FileNotFoundError(folder / ".git")
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


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
