"""The decoded Omniglot cache: one uint8 tensor file [characters, 20, 28, 28] plus index.json, built once."""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from metabench import atomic, paths
from metabench.data.archive import ImageSetLayout, RunsLayout
from metabench.data.cache_index import (
    CACHE_FORMAT,
    INDEX_NAME,
    TENSOR_PREFIX,
    DamagedCache,
    cache_folder,
    data_digest,
    fingerprint,
    fingerprints_match,
    read_index,
    same_recipe,
    tensor_bytes,
    tensor_name,
)
from metabench.data.decode import SIDE, TRANSFORM
from metabench.data.sources import DRAWINGS_PER_CHARACTER, IMAGE_SETS, OMNIGLOT, Expectations
from metabench.data.verify import CheckedSet, DecodedData, check_sets, decode_sets, require_zips


@dataclass(frozen=True)
class LakeRuns:
    """Lake et al.'s 20 within-alphabet 20-way 1-shot runs, exactly as published (28x28, ink 255)."""

    names: tuple[str, ...]  # run01 .. run20
    training: torch.Tensor  # uint8 [runs, ways, 28, 28]: training image of class01 .. classNN
    test: torch.Tensor  # uint8 [runs, ways, 28, 28]: item01 .. itemNN
    labels: torch.Tensor  # long [runs, ways]: labels[r, i] is the class (0-based) of test item i


@dataclass(frozen=True)
class OmniglotCache:
    """Every character's 20 drawings at 28x28 (uint8, ink 255), with names in the same order."""

    images: torch.Tensor  # uint8 [characters, 20, 28, 28]
    characters: tuple[str, ...]  # "Alphabet/characterNN"; background characters first, then evaluation
    sets: tuple[str, ...]  # "background" or "evaluation", per character
    set_digests: dict[str, str]
    runs: LakeRuns | None
    folder: Path

    @property
    def alphabets(self) -> tuple[str, ...]:
        """The alphabet of every character."""
        return tuple(name.split("/", 1)[0] for name in self.characters)

    def data_digest(self, include_runs: bool = False) -> str:
        return data_digest(self.set_digests, include_runs)


def load_cache(
    data_dir: Path | str | None = None,
    cache_dir: Path | None = None,
    *,
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> OmniglotCache:
    """Load the cache; build it first when missing, built from other data or by another transform.

    A damaged cache (its tensor file missing or not the bytes written) is rebuilt, and `notice` (by default
    a warning on stderr) says so: a corrupted file must never silently change what a run sees.
    """
    zips = require_zips(paths.data_dir(data_dir))
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    checked = None
    if index is not None and same_recipe(index, set(zips)):
        if not fingerprints_match(index, zips):
            # The files moved or were touched; their content digests (central directories only) decide.
            checked = check_sets(zips, expectations)
        if checked is None or _digests(checked) == _recorded_digests(index):
            try:
                cache = _read(folder, index)
            except DamagedCache as exc:
                (notice or _warn)(
                    f"the Omniglot cache in {folder} is damaged ({exc}); rebuilding it from the zips"
                )
            else:
                if checked is not None:
                    index["sources"] = {name: fingerprint(path) for name, path in zips.items()}
                    with contextlib.suppress(OSError):
                        atomic.write_json(folder / INDEX_NAME, index)
                return cache
    if checked is None:
        checked = check_sets(zips, expectations)
    started = time.perf_counter()
    decoded = decode_sets(checked, expectations, workers=workers, progress=progress)
    return write_cache(checked, decoded, cache_dir, build_seconds=time.perf_counter() - started)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _digests(checked: dict[str, CheckedSet]) -> dict[str, str]:
    return {name: entry.digest for name, entry in checked.items()}


def _recorded_digests(index: dict[str, Any]) -> dict[str, str]:
    return {name: entry.get("digest") for name, entry in index.get("sets", {}).items()}


def read_cache(cache_dir: Path | None = None) -> OmniglotCache | None:
    """The cache as it is on disk, without looking at the sources; None when absent or stale.

    DamagedCache when the index is current but its tensor file is missing or not the bytes written.
    """
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    if index is None or index.get("format") != CACHE_FORMAT or index.get("transform") != TRANSFORM:
        return None
    return _read(folder, index)


def adopt_sources(checked: dict[str, CheckedSet], cache_dir: Path | None = None) -> bool:
    """When the cache already holds exactly these sets' content, point its index at these files and say so.

    The cache was written after every image of that content was decoded (and CRC-checked), so the same
    digests need no second decode, provided the tensor file is still the one written.
    """
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    if index is None or not same_recipe(index, set(checked)) or _recorded_digests(index) != _digests(checked):
        return False
    try:
        tensor_bytes(folder, index)
    except DamagedCache:
        return False
    index["sources"] = {name: fingerprint(entry.path) for name, entry in checked.items()}
    atomic.write_json(folder / INDEX_NAME, index)
    return True


def write_cache(
    checked: dict[str, CheckedSet],
    decoded: DecodedData,
    cache_dir: Path | None = None,
    build_seconds: float = 0.0,
) -> OmniglotCache:
    """Write tensor file then index, each atomically; the index only ever names a complete tensor file."""
    folder = cache_folder(cache_dir)
    characters, sets = [], []
    for name in IMAGE_SETS:
        layout = checked[name].layout
        assert isinstance(layout, ImageSetLayout)
        characters += [c.name for c in layout.characters]
        sets += [name] * len(layout.characters)
    images = _tensor(decoded.characters, len(characters), DRAWINGS_PER_CHARACTER)
    tensors = {"images": images}
    runs_layout = checked["runs"].layout if "runs" in checked else None
    if (
        isinstance(runs_layout, RunsLayout)
        and decoded.runs_training is not None
        and decoded.runs_test is not None
    ):
        ways = len(runs_layout.runs[0].training)
        tensors["runs_training"] = _tensor(decoded.runs_training, len(runs_layout.runs), ways)
        tensors["runs_test"] = _tensor(decoded.runs_test, len(runs_layout.runs), ways)
        tensors["runs_labels"] = torch.tensor([list(r.labels) for r in runs_layout.runs], dtype=torch.long)
    file_name = tensor_name(_digests(checked))
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    atomic.write_bytes(folder / file_name, buffer.getvalue())
    index = {
        "format": CACHE_FORMAT,
        "transform": TRANSFORM,
        "tensor_file": file_name,
        "tensor_bytes": buffer.tell(),
        "tensor_sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
        "shape": list(images.shape),
        "characters": [[name, set_name] for name, set_name in zip(characters, sets, strict=True)],
        "runs": [r.name for r in runs_layout.runs] if isinstance(runs_layout, RunsLayout) else [],
        "sets": {name: _set_entry(c) for name, c in checked.items()},
        "sources": {name: fingerprint(c.path) for name, c in checked.items()},
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(build_seconds, 3),
    }
    atomic.write_json(folder / INDEX_NAME, index)
    for stale in folder.glob(f"{TENSOR_PREFIX}*.pt"):
        if stale.name != file_name:
            with contextlib.suppress(OSError):
                stale.unlink()
    return _from_tensors(tensors, index, folder)


def _set_entry(checked: CheckedSet) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": checked.path.name,
        "digest": checked.digest,
        "md5": checked.md5,
        "verified_by": checked.verified_by,
        "images": checked.images,
    }
    layout = checked.layout
    if isinstance(layout, ImageSetLayout):
        entry |= {"alphabets": len(layout.alphabets), "characters": len(layout.characters)}
    else:
        entry |= {"runs": len(layout.runs)}
    return entry


def _tensor(blob: bytes, rows: int, columns: int) -> torch.Tensor:
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).view(rows, columns, SIDE, SIDE)


def _read(folder: Path, index: dict[str, Any]) -> OmniglotCache:
    """The cache the index describes; DamagedCache when the tensor file is not the one written or misfits."""
    data = tensor_bytes(folder, index)
    try:
        tensors = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # the bytes are those written, so only a foreign writer can get here
        raise DamagedCache(f"{index['tensor_file']} does not load ({type(exc).__name__})") from None
    return _from_tensors(tensors, index, folder)


def _from_tensors(tensors: dict[str, torch.Tensor], index: dict[str, Any], folder: Path) -> OmniglotCache:
    images = tensors.get("images") if isinstance(tensors, dict) else None
    names = index.get("characters", [])
    if images is None or images.dtype != torch.uint8 or list(images.shape) != [len(names), 20, SIDE, SIDE]:
        raise DamagedCache(f"{index['tensor_file']} does not hold the images its index lists")
    runs = None
    if index.get("runs") and {"runs_training", "runs_test", "runs_labels"} <= set(tensors):
        runs = LakeRuns(
            tuple(index["runs"]), tensors["runs_training"], tensors["runs_test"], tensors["runs_labels"]
        )
    return OmniglotCache(
        images=images,
        characters=tuple(name for name, _ in names),
        sets=tuple(set_name for _, set_name in names),
        set_digests=_recorded_digests(index),
        runs=runs,
        folder=folder,
    )
