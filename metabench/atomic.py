"""Write files so that a reader sees the old version or the new one, never half of one (stdlib only)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

# NamedTemporaryFile creates 0600 files; the final file keeps the mode of the one it replaces, or
# gets the mode a plain open() would give a new file.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class NotARegularFileError(OSError):
    """The target exists and is a FIFO, device, socket or folder, which a rename would replace."""


@contextlib.contextmanager
def atomic_file(path: Path, make_parents: bool = True) -> Iterator[IO[bytes]]:
    """Yield a temporary file beside `path`; on success it is synced and renamed over `path`, else removed.

    make_parents=False refuses a missing folder (FileNotFoundError): for a path a user typed. An
    existing target that is not a regular file (after symlinks) is refused (NotARegularFileError):
    renaming over /dev/null or a FIFO would put a plain file in its place for everyone who uses it.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise NotARegularFileError(errno.EEXIST, "it exists and is not a regular file", str(path))
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_UMASK
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def write_bytes(path: Path, data: bytes, make_parents: bool = True) -> None:
    with atomic_file(path, make_parents) as handle:
        handle.write(data)


def write_text(path: Path, text: str, make_parents: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), make_parents)


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
