"""The decoded Omniglot cache: one uint8 tensor file [characters, 20, 28, 28] plus index.json, built once."""

from __future__ import annotations

import contextlib
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
    cache_folder,
    data_digest,
    fingerprint,
    fingerprints_match,
    read_index,
    same_recipe,
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
) -> OmniglotCache:
    """Load the cache; build it first when missing or built from other data or by another transform."""
    zips = require_zips(paths.data_dir(data_dir))
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    if index is not None and same_recipe(index, set(zips)):
        if fingerprints_match(index, zips):
            cache = _read(folder, index)
            if cache is not None:
                return cache
        else:
            # The files moved or were touched; their content digests (central directories only) decide.
            checked = check_sets(zips, expectations)
            if {name: c.digest for name, c in checked.items()} == _recorded_digests(index):
                cache = _read(folder, index)
                if cache is not None:
                    index["sources"] = {name: fingerprint(path) for name, path in zips.items()}
                    with contextlib.suppress(OSError):
                        atomic.write_json(folder / INDEX_NAME, index)
                    return cache
    checked = check_sets(zips, expectations)
    started = time.perf_counter()
    decoded = decode_sets(checked, expectations, workers=workers, progress=progress)
    return write_cache(checked, decoded, cache_dir, build_seconds=time.perf_counter() - started)


def _recorded_digests(index: dict[str, Any]) -> dict[str, str]:
    return {name: entry.get("digest") for name, entry in index.get("sets", {}).items()}


def read_cache(cache_dir: Path | None = None) -> OmniglotCache | None:
    """The cache as it is on disk, without looking at the sources; None when absent, stale or unreadable."""
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    if index is None or index.get("format") != CACHE_FORMAT or index.get("transform") != TRANSFORM:
        return None
    return _read(folder, index)


def adopt_sources(checked: dict[str, CheckedSet], cache_dir: Path | None = None) -> bool:
    """When the cache already holds exactly these sets' content, point its index at these files and say so.

    The cache was written after every image of that content was decoded (and CRC-checked), so the same
    digests need no second decode.
    """
    folder = cache_folder(cache_dir)
    index = read_index(folder)
    digests = {name: entry.digest for name, entry in checked.items()}
    if index is None or not same_recipe(index, set(checked)) or _recorded_digests(index) != digests:
        return False
    tensor = folder / str(index.get("tensor_file"))
    if not tensor.is_file() or tensor.stat().st_size != index.get("tensor_bytes"):
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
    digests = {name: c.digest for name, c in checked.items()}
    file_name = tensor_name(digests)
    atomic.write_with(folder / file_name, lambda handle: torch.save(tensors, handle))
    index = {
        "format": CACHE_FORMAT,
        "transform": TRANSFORM,
        "tensor_file": file_name,
        "tensor_bytes": (folder / file_name).stat().st_size,
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
    cache = _from_tensors(tensors, index, folder)
    assert cache is not None
    return cache


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


def _read(folder: Path, index: dict[str, Any]) -> OmniglotCache | None:
    """The cache the index describes, or None when the tensor file is missing or does not fit the index."""
    try:
        tensors = torch.load(folder / index["tensor_file"], weights_only=True)
    except Exception:  # any unreadable cache (truncated, garbage, foreign pickle) is simply rebuilt
        return None
    return _from_tensors(tensors, index, folder)


def _from_tensors(
    tensors: dict[str, torch.Tensor], index: dict[str, Any], folder: Path
) -> OmniglotCache | None:
    images = tensors.get("images") if isinstance(tensors, dict) else None
    names = index.get("characters", [])
    if images is None or images.dtype != torch.uint8 or list(images.shape) != [len(names), 20, SIDE, SIDE]:
        return None
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
