"""The benchmark methods for the run form, asked of `metabench methods --json` in a subprocess and cached.

The registry imports torch, which the TUI must never load; a subprocess keeps the one source of
truth (the registry) without that cost, and a cache stamped with the methods' source files makes
every later start instant.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metabench import __version__, paths
from metabench.config import METHOD_PLUGIN_GROUP, PRESETS
from metabench.errors import MetabenchError
from metabench.tui.run_process import meaningful_line

CACHE_NAME = "tui-methods.json"
TIMEOUT_S = 120


@dataclass(frozen=True)
class MethodInfo:
    """A benchmark method as the run form shows it."""

    name: str
    family: str
    paper: str = ""
    presets: tuple[str, ...] = PRESETS
    transductive: bool = False


def source_stamp() -> str:
    """A digest of the code that defines the methods, the plugins' entry points included (a package
    installed or removed changes the list): the cache is valid while it matches."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted((paths.PACKAGE_DIR / "methods").rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(paths.PACKAGE_DIR)}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    for entry in sorted(importlib.metadata.entry_points(group=METHOD_PLUGIN_GROUP), key=lambda e: e.name):
        digest.update(f"{entry.name}={entry.value}:{entry.dist.version if entry.dist else ''}".encode())
    return digest.hexdigest()[:16]


def parse_methods(payload: Any) -> list[MethodInfo]:
    """Read the JSON of `metabench methods --json`: a list of objects (or {"methods": [...]})."""
    items = payload.get("methods", []) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise MetabenchError("`metabench methods --json` did not print a list of methods")
    methods = []
    for item in items:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        presets = item.get("presets") or PRESETS
        if isinstance(presets, dict):
            presets = list(presets)
        methods.append(
            MethodInfo(
                name=str(item["name"]),
                family=str(item.get("family", "")),
                paper=str(item.get("paper") or ""),
                presets=tuple(str(p) for p in presets),
                transductive=bool(item.get("transductive", False)),
            )
        )
    return methods


def load_methods(cache_dir: Path | None = None, refresh: bool = False) -> list[MethodInfo]:
    """The method list, from the cache when its stamp matches, else from a subprocess (blocking)."""
    cache = (cache_dir or paths.cache_dir()) / CACHE_NAME
    stamp = source_stamp()
    if not refresh and cache.exists():
        try:
            data = json.loads(cache.read_text())
            if data.get("stamp") == stamp:
                return parse_methods(data["methods"])
        except (OSError, ValueError, KeyError, MetabenchError):
            pass  # a damaged cache is rebuilt below
    payload = _ask_subprocess()
    methods = parse_methods(payload)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "methods": payload}))
        tmp.replace(cache)
    except OSError:
        pass  # an unwritable cache only costs the next start a subprocess
    return methods


def _ask_subprocess() -> Any:
    command = [sys.executable, "-m", "metabench", "methods", "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MetabenchError(
            f"could not list the methods ({exc}); run `metabench methods` to see why"
        ) from exc
    if done.returncode != 0:
        reason = meaningful_line(done.stderr.splitlines()) or f"exit code {done.returncode}"
        raise MetabenchError(f"`metabench methods --json` failed: {reason}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise MetabenchError(f"`metabench methods --json` printed invalid JSON ({exc})") from exc
