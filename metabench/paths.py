"""Where metabench keeps its state: database, data, cache and results (overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "metabench"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def home() -> Path:
    """The root of all metabench state: METABENCH_HOME, else the user data directory."""
    env = os.environ.get("METABENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME))


def database_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite database: --db, else METABENCH_DB, else <home>/metabench.db."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("METABENCH_DB")
    return Path(env).expanduser() if env else home() / "metabench.db"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where the Omniglot zips live: --data, else METABENCH_DATA, else <home>/data/omniglot."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("METABENCH_DATA")
    return Path(env).expanduser() if env else home() / "data" / "omniglot"


def cache_dir() -> Path:
    """Decoded tensors and other derived files that can always be rebuilt."""
    return home() / "cache"


def checkpoints_dir() -> Path:
    """Training checkpoints, one folder per run."""
    return home() / "checkpoints"


def results_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where portable run records are written: --results, METABENCH_RESULTS, else <home>/results."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("METABENCH_RESULTS")
    return Path(env).expanduser() if env else home() / "results"


# Files shipped with the package, by their path in the repository; the wheel carries each at
# metabench/_<path> (pyproject.toml's force-include).
BUNDLED_FILES = ("catalog", "results/published.csv", "results/references.csv")


def bundled(name: str) -> Path:
    """A file shipped with the package: the installed copy (wheel) or the repository's (editable)."""
    [relative] = [path for path in BUNDLED_FILES if Path(path).name == name]
    installed = PACKAGE_DIR / f"_{relative}"
    return installed if installed.exists() else REPO_DIR / relative
