"""Run ids: the one shape the runner generates, checked wherever one enters; paths are built only from it."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

# <method>-<protocol>-<N>w<K>s-<UTC yyyymmddThhmmss>-<4 hex>, e.g. protonet-vinyals-5w1s-20261126T091344-2b91.
# Method and protocol names are lower-case words joined by single hyphens ('+' for names like maml++):
# no dot, slash or space can appear, so an id is always a plain file name.
_NAME = r"[a-z0-9][a-z0-9+]*(?:-[a-z0-9+]+)*"
RUN_ID_PATTERN = re.compile(rf"{_NAME}-\d{{1,4}}w\d{{1,3}}s-\d{{8}}T\d{{6}}-[0-9a-f]{{4}}")
MAX_RUN_ID_LENGTH = 128


def new_run_id(method: str, protocol: str, setting: str) -> str:
    """Readable and unique: method, protocol, setting (e.g. '5w1s'), UTC time and a random suffix."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return check_run_id(f"{method}-{protocol}-{setting}-{stamp}-{secrets.token_hex(2)}")


def is_run_id(value: object) -> bool:
    """True when `value` has the shape the runner generates."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_RUN_ID_LENGTH
        and RUN_ID_PATTERN.fullmatch(value) is not None
    )


def check_run_id(value: object) -> str:
    """`value` itself when it is a run id; ValueError naming the expected shape otherwise."""
    if not is_run_id(value):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"{shown!r} is not a run id (expected METHOD-PROTOCOL-NwKs-YYYYMMDDTHHMMSS-XXXX, "
            "as `metabench runs list` shows)"
        )
    assert isinstance(value, str)
    return value


def run_folder(root: Path, run_id: str) -> Path:
    """root/<run_id> for a checked id, verified to resolve inside `root` (no link leads out of it)."""
    folder = Path(root) / check_run_id(run_id)
    resolved_root = Path(root).resolve()
    if not folder.resolve().is_relative_to(resolved_root) or folder.resolve() == resolved_root:
        raise ValueError(f"{folder} leads outside {root}; remove the link and retry")
    return folder
