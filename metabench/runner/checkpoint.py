"""Training checkpoints: written atomically under checkpoints_dir()/<run_id>/, read with weights_only=True."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from metabench import atomic, paths
from metabench.errors import MetabenchError

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(run_id: str) -> Path:
    return paths.checkpoints_dir() / run_id / CHECKPOINT_NAME


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the whole checkpoint or nothing: a kill mid-write leaves the previous one intact.

    `state` holds only tensors and plain Python values, so it loads with weights_only=True (no
    pickled code runs when a checkpoint is read).
    """
    atomic.write_with(path, lambda stream: torch.save({"format": CHECKPOINT_FORMAT, **state}, stream))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint's state dict (tensors on the CPU), None when there is none yet."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise MetabenchError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); "
            "delete it to restart the run from step 0"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise MetabenchError(
            f"checkpoint {path} has an unknown format; delete it to restart the run from step 0"
        )
    return state
