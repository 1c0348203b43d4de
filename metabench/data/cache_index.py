"""The cache's index.json: where the cache lives, what it was built from, and whether it is still current.

Kept free of torch so that `metabench data info` answers quickly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from metabench import paths
from metabench.data.decode import TRANSFORM

CACHE_FORMAT = 2  # 2: the index records the tensor file's sha256
INDEX_NAME = "index.json"
TENSOR_PREFIX = "omniglot28-"


def cache_folder(cache_dir: Path | None = None) -> Path:
    """Where the Omniglot cache lives: <cache_dir>/omniglot."""
    return (cache_dir if cache_dir is not None else paths.cache_dir()) / "omniglot"


def read_index(folder: Path) -> dict[str, Any] | None:
    """The index, or None when absent or unreadable (the cache is then rebuilt)."""
    try:
        index = json.loads((folder / INDEX_NAME).read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


class DamagedCache(Exception):
    """The tensor file the index names is missing, or its bytes are not those that were written."""


def tensor_bytes(folder: Path, index: dict[str, Any]) -> bytes:
    """The tensor file's bytes, checked against the sha256 the index recorded; DamagedCache saying why not.

    Hashing the ~26 MB file costs about 25 ms, little next to loading it and nothing next to a rebuild.
    """
    name = index.get("tensor_file")
    if not isinstance(name, str) or not name.startswith(TENSOR_PREFIX) or Path(name).name != name:
        raise DamagedCache("its index names no tensor file")
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise DamagedCache(f"{name} is missing") from None
    except OSError as exc:
        raise DamagedCache(f"{name} is unreadable ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != index.get("tensor_sha256"):
        raise DamagedCache(f"{name} does not match the sha256 recorded when it was written")
    return data


def fingerprint(path: Path) -> dict[str, Any]:
    """Cheap identity of a source file: if it is unchanged, so is its recorded content digest."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def same_recipe(index: dict[str, Any], set_names: set[str]) -> bool:
    """Built by this cache format and transform, from the same sets."""
    return (
        index.get("format") == CACHE_FORMAT
        and index.get("transform") == TRANSFORM
        and set(index.get("sets", {})) == set_names
    )


def fingerprints_match(index: dict[str, Any], zips: dict[str, Path]) -> bool:
    """The source files are the very files (path, size, mtime) the cache was built or last checked from."""
    recorded = index.get("sources", {})
    try:
        return all(recorded.get(name) == fingerprint(path) for name, path in zips.items())
    except OSError:
        return False


def data_digest(set_digests: dict[str, str], include_runs: bool = False) -> str:
    """16 hex identifying the pixels a run sees: the source sets' content digests plus the transform."""
    names = ["background", "evaluation"] + (["runs"] if include_runs else [])
    blob = json.dumps({"sets": {n: set_digests[n] for n in names}, "transform": TRANSFORM}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def content_digest(set_digests: dict[str, str]) -> str:
    """One sha256 over the digests of every installed set."""
    blob = "".join(f"{name}:{digest}\n" for name, digest in sorted(set_digests.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


def tensor_name(set_digests: dict[str, str]) -> str:
    """The tensor file's name, unique per content and transform, so the index never points at a stranger."""
    key = hashlib.sha256(f"{content_digest(set_digests)}|{json.dumps(TRANSFORM, sort_keys=True)}".encode())
    return f"{TENSOR_PREFIX}{key.hexdigest()[:16]}.pt"
