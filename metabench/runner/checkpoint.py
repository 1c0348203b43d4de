"""Training checkpoints: one file per run, a header line with its payload's sha256, read weights_only."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from metabench import atomic, paths
from metabench.errors import MetabenchError
from metabench.runid import run_folder

CHECKPOINT_FORMAT = 2  # 2: the line "metabench-checkpoint 2 sha256=<hex>" precedes the torch.save payload
CHECKPOINT_NAME = "checkpoint.pt"
_HEADER = f"metabench-checkpoint {CHECKPOINT_FORMAT} sha256=".encode()
_RESTART = "delete it to restart the run from step 0"


def checkpoint_path(run_id: str) -> Path:
    """checkpoints_dir()/<run_id>/checkpoint.pt, for a checked run id whose folder stays inside."""
    try:
        return run_folder(paths.checkpoints_dir(), run_id) / CHECKPOINT_NAME
    except ValueError as exc:
        raise MetabenchError(f"no checkpoint for this run: {exc}") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the whole checkpoint or nothing: a kill mid-write leaves the previous one intact.

    Digest and payload share one atomically written file, so they can never disagree after a crash.
    `state` holds only tensors and plain Python values, so it loads with weights_only=True (no pickled
    code runs when a checkpoint is read).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    digest = hashlib.sha256(buffer.getbuffer()).hexdigest().encode()

    def write(stream: Any) -> None:
        stream.write(_HEADER + digest + b"\n")
        stream.write(buffer.getbuffer())

    atomic.write_with(path, write)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint's state dict (tensors on the CPU), None when there is none yet.

    A file whose payload does not match its recorded sha256 is refused: a resume from flipped bytes would
    finish at a different accuracy without a word.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MetabenchError(f"checkpoint {path} is unreadable ({exc.strerror or exc}); {_RESTART}") from None
    header, _, payload = blob.partition(b"\n")
    if not header.startswith(_HEADER):
        raise MetabenchError(
            f"checkpoint {path} is not a format-{CHECKPOINT_FORMAT} metabench checkpoint (an older "
            f"version's, or another file); {_RESTART}"
        )
    if header[len(_HEADER) :] != hashlib.sha256(payload).hexdigest().encode():
        raise MetabenchError(
            f"checkpoint {path} is damaged (its content does not match the sha256 written with it); "
            f"{_RESTART}"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # the bytes are those written, so only a foreign writer can get here
        raise MetabenchError(f"checkpoint {path} is unreadable ({type(exc).__name__}); {_RESTART}") from None
    if not isinstance(state, dict):
        raise MetabenchError(f"checkpoint {path} holds no training state; {_RESTART}")
    return state
