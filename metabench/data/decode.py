"""Decode Omniglot PNGs straight from their zip with Pillow, shrink them to 28x28, in a small process pool."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from metabench.data.archive import FETCH_HINT, read_member
from metabench.errors import MetabenchError

SIDE = 28
PIXELS = SIDE * SIDE
# Everything that changes the cached pixels; a different value rebuilds the cache.
TRANSFORM: dict[str, object] = {
    "version": 1,
    "size": [SIDE, SIDE],
    "filter": "PIL.Image.Resampling.BOX",  # exact area average: the ink fraction of each output pixel
    "ink": 255,  # stored uint8: ink 255, background 0; the sampler divides by 255 (ink = 1.0)
    "steps": "PNG mode 1 -> L -> resize BOX -> invert",
}
_INVERT = bytes(range(255, -1, -1))
_CHUNK = 1000  # images per pool task: big enough to amortise the task overhead, small enough to balance
_POOL_MIN_IMAGES = 4000  # below this a pool's start-up costs more than it saves


@dataclass(frozen=True)
class DecodeJob:
    """Members of one zip to decode, in order."""

    archive: str
    members: tuple[str, ...]
    size: tuple[int, int]


def decode_png(data: bytes, size: tuple[int, int], archive: str, member: str) -> bytes:
    """One PNG -> 784 bytes (28x28, row-major, ink 255); a wrong size or undecodable file raises."""
    try:
        image = PngImagePlugin.PngImageFile(io.BytesIO(data))
        if image.size != size:
            raise MetabenchError(
                f"{os.path.basename(archive)}: {member} is {image.size[0]}x{image.size[1]}, expected "
                f"{size[0]}x{size[1]}; this is not the official Omniglot: {FETCH_HINT}"
            )
        small = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise MetabenchError(
            f"{os.path.basename(archive)}: {member} is not a readable PNG ({exc}); {FETCH_HINT}"
        ) from None
    return small.tobytes().translate(_INVERT)


_open_archives: dict[str, zipfile.ZipFile] = {}  # per worker process: parse each central directory once


def _archive(path: str) -> zipfile.ZipFile:
    if path not in _open_archives:
        _open_archives[path] = zipfile.ZipFile(path)
    return _open_archives[path]


def decode_job(job: DecodeJob) -> bytes:
    """Decode every member of `job`; the zip's CRC check and size cap turn a bad member into an error."""
    zf = _archive(job.archive)
    path = Path(job.archive)
    return b"".join(
        decode_png(read_member(zf, member, path), job.size, job.archive, member) for member in job.members
    )


def default_workers() -> int:
    """Two processes when two cores are free, else one: on a shared machine a pool only adds overhead."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]  # includes this process
    except OSError:
        busy = 0.0
    return 2 if cores >= 2 and busy <= cores - 1.5 else 1


def decode_all(
    jobs: Sequence[DecodeJob],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[bytes]:
    """Decode several jobs, returning each job's concatenated 28x28 images (784 bytes per member)."""
    chunks = [
        (index, DecodeJob(job.archive, job.members[start : start + _CHUNK], job.size))
        for index, job in enumerate(jobs)
        for start in range(0, len(job.members), _CHUNK)
    ]
    total = sum(len(job.members) for job in jobs)
    workers = default_workers() if workers is None else workers
    parts: list[list[bytes]] = [[] for _ in jobs]
    done = 0
    use_pool = workers > 1 and total >= _POOL_MIN_IMAGES
    try:
        with contextlib.ExitStack() as stack:
            if use_pool:
                # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
                context = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
                # On an error, drop the queued chunks instead of decoding them all before raising.
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                results = pool.map(decode_job, [chunk for _, chunk in chunks])
            else:
                results = map(decode_job, [chunk for _, chunk in chunks])
            for (index, chunk), blob in zip(chunks, results, strict=True):
                parts[index].append(blob)
                done += len(chunk.members)
                if progress:
                    progress(done, total)
    finally:
        for archive in _open_archives.values():
            archive.close()
        _open_archives.clear()
    return [b"".join(p) for p in parts]
