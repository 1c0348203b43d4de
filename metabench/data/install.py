"""Install Omniglot into the data folder (import, or after a download), record its source, report, verify."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metabench import atomic, paths
from metabench.data.archive import ImageSetLayout, read_image_set, read_runs
from metabench.data.cache_index import (
    INDEX_NAME,
    TENSOR_PREFIX,
    DamagedCache,
    cache_folder,
    fingerprints_match,
    read_index,
    same_recipe,
    tensor_bytes,
)
from metabench.data.decode import TRANSFORM
from metabench.data.sources import IMAGE_SETS, OMNIGLOT, SETS, SOURCES, Expectations
from metabench.data.verify import (
    CheckedSet,
    DecodedData,
    check_bytes,
    check_sets,
    decode_sets,
    find_zips,
    missing_data_message,
    require_zips,
)
from metabench.errors import MetabenchError

MANIFEST_NAME = "metabench-omniglot.json"  # the record of where each installed set came from
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InstallReport:
    """What an import or download installed."""

    data_dir: Path
    sets: dict[str, dict[str, Any]]
    cache_dir: Path
    build_seconds: float
    manifest_written: bool
    cache_reused: bool = False  # the cache already held this content, so nothing was decoded again


def import_data(
    source: Path | str,
    data_dir: Path | str | None = None,
    cache_dir: Path | None = None,
    *,
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
    progress: Progress | None = None,
) -> InstallReport:
    """Verify the zips (or unzipped folders) in `source`, copy them into the data folder and build the cache.

    Nothing is copied and the cache is not touched unless every set passes every check.
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise MetabenchError(
            f"{source} is not a folder; give the folder holding images_background.zip and "
            "images_evaluation.zip (and optionally all_runs.zip), or their unzipped folders"
        )
    with tempfile.TemporaryDirectory(prefix="metabench-import-") as staging:
        zips = _gather(source, Path(staging))
        origin = {name: str(source.resolve()) for name in zips}
        return install(zips, paths.data_dir(data_dir), origin, cache_dir, expectations, workers, progress)


def _gather(source: Path, staging: Path) -> dict[str, Path]:
    """Each set's zip in `source`, zipping an unzipped folder into `staging` where there is no zip."""
    zips = find_zips(source)
    for name in SETS:
        folder = source / SOURCES[name].root
        if name not in zips and folder.is_dir():
            zips[name] = _zip_folder(folder, SOURCES[name].root, staging / SOURCES[name].file_name)
    missing = [SOURCES[name].file_name for name in IMAGE_SETS if name not in zips]
    if missing:
        raise MetabenchError(
            f"{source} holds neither {' nor '.join(missing)} nor the unzipped folder; give the folder that "
            "holds the Omniglot zips (get them with `metabench data download`)"
        )
    return zips


def _zip_folder(folder: Path, root: str, target: Path) -> Path:
    """Pack an unzipped set so the data folder always holds zips (stored: PNGs do not compress further)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                raise MetabenchError(
                    f"{path} is a symbolic link; copy the real files into {folder} and retry"
                )
            if path.is_file():
                zf.write(path, f"{root}/{path.relative_to(folder).as_posix()}")
    return target


def install(
    zips: dict[str, Path],
    target: Path,
    origin: dict[str, str],
    cache_dir: Path | None = None,
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
    progress: Progress | None = None,
    record: bool | None = None,
) -> InstallReport:
    """Check and decode every set, then place the zips in `target`, write the cache and the source record.

    When the cache already holds this exact content (same digests, same transform), it is kept as is.
    The source record is written when `record`, by default only when zips were copied in: a folder
    imported in place (say, a shared read-only copy that METABENCH_DATA names) is left untouched.
    """
    checked = check_sets(zips, expectations)
    if _cache_holds(checked, cache_dir):
        # This content was decoded into the cache, so no decode is needed; but equal central directories
        # can front damaged bytes, and nothing replaces an installed file before every byte is checked.
        for entry in checked.values():
            check_bytes(entry)
        decoded, build_seconds = None, 0.0
    else:
        started = time.perf_counter()
        decoded = decode_sets(checked, expectations, workers=workers, progress=progress)
        build_seconds = time.perf_counter() - started
    target.mkdir(parents=True, exist_ok=True)
    installed, copied = {}, False
    for name, entry in checked.items():
        destination = target / SOURCES[name].file_name
        if not (destination.exists() and os.path.samefile(destination, entry.path)):
            atomic.copy(entry.path, destination)
            copied = True
        installed[name] = dataclasses.replace(entry, path=destination)
    from metabench.data.cache import adopt_sources, write_cache  # torch: only once the data passed its checks

    reused = decoded is None and adopt_sources(installed, cache_dir)
    if not reused:
        if decoded is None:  # the index promised this content but its tensor file is gone or damaged
            decoded = decode_sets(installed, expectations, workers=workers, progress=progress)
        write_cache(installed, decoded, cache_dir, build_seconds=build_seconds)
    sets = {name: _describe(entry) | {"source": origin.get(name, "")} for name, entry in installed.items()}
    manifest_written = _record(target, sets) if (copied if record is None else record) else False
    return InstallReport(target, sets, cache_folder(cache_dir), build_seconds, manifest_written, reused)


def _cache_holds(checked: dict[str, CheckedSet], cache_dir: Path | None) -> bool:
    """The cache was built by this transform from exactly these sets' content (torch-free check)."""
    index = read_index(cache_folder(cache_dir))
    digests = {name: entry.digest for name, entry in checked.items()}
    if index is None or not same_recipe(index, set(checked)):
        return False
    return {name: entry.get("digest") for name, entry in index.get("sets", {}).items()} == digests


def _describe(entry: CheckedSet) -> dict[str, Any]:
    description: dict[str, Any] = {
        "file": entry.path.name,
        "md5": entry.md5,
        "verified_by": entry.verified_by,
        "digest": entry.digest,
        "images": entry.images,
    }
    if isinstance(entry.layout, ImageSetLayout):
        description |= {"alphabets": len(entry.layout.alphabets), "characters": len(entry.layout.characters)}
    else:
        description |= {"runs": len(entry.layout.runs)}
    return description


def _record(target: Path, sets: dict[str, dict[str, Any]]) -> bool:
    """Write the source record; a folder we cannot write to is reported, not an error."""
    manifest = read_manifest(target)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for name, description in sets.items():
        manifest.setdefault("sets", {})[name] = description | {"registered_at": now}
    try:
        atomic.write_json(target / MANIFEST_NAME, manifest)
    except OSError:
        return False
    return True


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def info(data_dir: Path | str | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    """What is installed: sets, counts, digests, source record, cache files (no decoding, no torch)."""
    folder = paths.data_dir(data_dir)
    zips = find_zips(folder)
    manifest = read_manifest(folder).get("sets", {})
    index = read_index(cache_folder(cache_dir))
    # Built from these very files: the index's counts and digests describe them.
    current = index is not None and same_recipe(index, set(zips)) and fingerprints_match(index, zips)
    sets: dict[str, Any] = {}
    for name in SETS:
        path = folder / SOURCES[name].file_name
        entry: dict[str, Any] = {"file": path.name, "present": name in zips}
        if name in zips:
            entry["bytes"] = path.stat().st_size
            entry |= index["sets"][name] if current and index else _scan(name, path)
            recorded = manifest.get(name, {})
            entry |= {
                k: recorded[k] for k in ("source", "registered_at", "verified_by", "md5") if k in recorded
            }
        sets[name] = entry
    image_sets = [sets[name] for name in IMAGE_SETS if "characters" in sets[name]]
    missing = [SOURCES[name].file_name for name in IMAGE_SETS if name not in zips]
    return {
        "data_dir": str(folder),
        "installed": not missing,
        "hint": missing_data_message(folder, missing) if missing else None,
        "sets": sets,
        "totals": {key: sum(s[key] for s in image_sets) for key in ("alphabets", "characters", "images")},
        "cache": _cache_info(cache_dir, index, current),
    }


def _scan(name: str, path: Path) -> dict[str, Any]:
    """Counts and digest from the central directory; a broken file is reported, not raised."""
    try:
        if name == "runs":
            runs = read_runs(path, SOURCES[name].root, OMNIGLOT.runs)
            return {"runs": len(runs.runs), "images": runs.images, "digest": runs.digest}
        layout = read_image_set(path, name, SOURCES[name].root, None)
    except MetabenchError as exc:
        return {"error": str(exc)}
    return {
        "alphabets": len(layout.alphabets),
        "characters": len(layout.characters),
        "images": layout.images,
        "digest": layout.digest,
    }


def _cache_info(cache_dir: Path | None, index: dict[str, Any] | None, current: bool) -> dict[str, Any]:
    folder = cache_folder(cache_dir)
    files = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name == INDEX_NAME or path.name.startswith(TENSOR_PREFIX):
                files.append({"name": path.name, "bytes": path.stat().st_size})
    status, problem = ("current" if current else ("stale" if index else "missing")), None
    if current and index is not None:
        try:
            tensor_bytes(folder, index)
        except DamagedCache as exc:
            status = "damaged"
            problem = f"{exc}: the next run rebuilds it from the zips, or run `metabench data verify` now"
    return {
        "folder": str(folder),
        "status": status,
        "problem": problem,
        "files": files,
        "shape": index.get("shape") if index else None,
        "built_at": index.get("built_at") if index else None,
        "build_seconds": index.get("build_seconds") if index else None,
        "transform": TRANSFORM,
    }


def _cache_status(cache_dir: Path | None, digests: dict[str, str], decoded: DecodedData) -> str:
    """'current', or why the cache must be rebuilt from the freshly decoded sets."""
    import torch

    from metabench.data.cache import read_cache

    try:
        cache = read_cache(cache_dir)
    except DamagedCache as exc:
        return f"rebuilt (it was damaged: {exc})"
    if cache is None or cache.set_digests != digests:
        return "rebuilt (it was missing or built from other data)"
    if not torch.equal(
        cache.images.flatten(), torch.frombuffer(bytearray(decoded.characters), dtype=torch.uint8)
    ):
        return "rebuilt (its pixels did not match the sources)"
    return "current"


def verify(
    data_dir: Path | str | None = None,
    cache_dir: Path | None = None,
    *,
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Re-check every set (md5 or content, every image decoded) and the cache's pixels; mend the cache."""
    from metabench.data.cache import write_cache

    zips = require_zips(paths.data_dir(data_dir))
    checked = check_sets(zips, expectations)
    decoded = decode_sets(checked, expectations, workers=workers, progress=progress)
    status = _cache_status(cache_dir, {name: entry.digest for name, entry in checked.items()}, decoded)
    if status != "current":
        write_cache(checked, decoded, cache_dir)
    return {
        "data_dir": str(paths.data_dir(data_dir)),
        "ok": True,
        "sets": {name: _describe(entry) for name, entry in checked.items()},
        "cache": {"folder": str(cache_folder(cache_dir)), "status": status},
    }
