"""Fetch the official Omniglot zips with urllib: resumable (HTTP Range into .part), retried, md5-checked."""

from __future__ import annotations

import contextlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from metabench import __version__, paths
from metabench.data import sources as omniglot_sources
from metabench.data.archive import file_md5
from metabench.data.install import InstallReport, install
from metabench.data.sources import OMNIGLOT, SETS, Expectations, SetSource
from metabench.data.verify import check_set_fully
from metabench.errors import MetabenchError

ByteProgress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total bytes or None)
_BLOCK = 1 << 16
# Failures worth another attempt: the network, not the request.
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class _Interrupted(Exception):
    """The body ended before Content-Length said it would."""


def download_file(
    url: str,
    target: Path,
    md5: str | None,
    *,
    progress: ByteProgress | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `target` through `target.part`, resuming it after a dropped connection.

    The finished file is renamed into place only when its md5 matches (when `md5` is given), so `target`
    is never half-written; a mismatching download is deleted.
    """
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, target.name, progress, timeout)
            break
        except (_Interrupted, *_TRANSIENT) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                raise MetabenchError(
                    f"{url} answered HTTP {exc.code} {exc.reason}; check the address"
                ) from None
            if attempt == retries:
                raise MetabenchError(
                    f"downloading {target.name} failed after {retries + 1} attempts ({exc}); check the "
                    f"connection and run `metabench data download` again: it resumes from {part.name}"
                ) from None
            time.sleep(backoff * (attempt + 1))
        except OSError as exc:  # not the network: the disk (full, read-only, ...)
            raise MetabenchError(
                f"cannot write {part}: {exc}; free some space or choose another --dest"
            ) from None
    if md5 is not None:
        got = file_md5(part)
        if got != md5:
            part.unlink()
            raise MetabenchError(
                f"{target.name}: md5 {got} differs from the official {md5}; the download was deleted: "
                "run `metabench data download` again"
            )
    os.replace(part, target)
    return target


def _fetch(url: str, part: Path, name: str, progress: ByteProgress | None, timeout: float) -> None:
    """One attempt: ask for the bytes after those already in `part` and append them."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"metabench/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after `have`: the part is complete (the md5 check decides)
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again from the first byte
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as handle:
            handle.truncate(have)
            if progress:
                progress(name, have, total)
            while True:
                try:
                    block = response.read(_BLOCK)
                except http.client.IncompleteRead as exc:
                    handle.write(exc.partial)
                    raise _Interrupted(f"connection closed after {have + len(exc.partial)} bytes") from None
                if not block:
                    break
                handle.write(block)
                have += len(block)
                if progress:
                    progress(name, have, total)
    if total is not None and have < total:
        raise _Interrupted(f"connection closed after {have} of {total} bytes")


def download_omniglot(
    dest: Path | str | None = None,
    *,
    sources: dict[str, SetSource] | None = None,
    progress: ByteProgress | None = None,
    decode_progress: Callable[[int, int], None] | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    cache_dir: Path | None = None,
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
) -> InstallReport:
    """Fetch the three zips into `dest` (default: the data folder), skipping good ones, then install them."""
    target = paths.data_dir(dest)
    table = sources if sources is not None else omniglot_sources.SOURCES
    zips = {}
    for name in SETS:
        source = table[name]
        path = target / source.file_name
        if _already_good(name, path, source, expectations):
            if progress:
                progress(path.name, path.stat().st_size, path.stat().st_size)
        else:
            if source.official_md5 is None:
                # No published checksum: the archive's structure and every member's CRC are checked before
                # it takes the final name, so a damaged download never replaces a good file.
                part = download_file(
                    source.url,
                    path.with_name(path.name + ".new"),
                    None,
                    progress=progress,
                    retries=retries,
                    backoff=backoff,
                    timeout=timeout,
                )
                try:
                    check_set_fully(name, part, expectations)
                except MetabenchError:
                    part.unlink()
                    raise
                os.replace(part, path)
            else:
                download_file(
                    source.url,
                    path,
                    source.official_md5,
                    progress=progress,
                    retries=retries,
                    backoff=backoff,
                    timeout=timeout,
                )
        zips[name] = path
    origin = {name: table[name].url for name in zips}
    return install(zips, target, origin, cache_dir, expectations, workers, decode_progress, record=True)


def _already_good(name: str, path: Path, source: SetSource, expectations: Expectations) -> bool:
    if not path.is_file():
        return False
    if source.official_md5 is not None:
        return file_md5(path) == source.official_md5
    with contextlib.suppress(MetabenchError):
        check_set_fully(name, path, expectations)
        return True
    return False
