"""Write files so that a reader sees the old version or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

# NamedTemporaryFile creates 0600 files; give the final file the permissions a plain open() would.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Yield a temporary file beside `path`; on success it is synced and renamed over `path`, else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(handle.name, 0o666 & ~_UMASK)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def write_with(path: Path, writer: Callable[[IO[bytes]], None]) -> None:
    """Let `writer` fill the file (e.g. torch.save), atomically."""
    with atomic_file(path) as handle:
        writer(handle)


def copy(source: Path, target: Path) -> None:
    """Copy a file atomically."""
    with atomic_file(target) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle, 1 << 20)
