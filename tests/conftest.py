"""Test-wide setup: every test session gets its own METABENCH_HOME; the real Omniglot is shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_omniglot() -> Path:
    """The real Omniglot zips: METABENCH_DATA if set (CI sets it), else ../shared/omniglot."""
    env = os.environ.get("METABENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "omniglot"


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep tests away from the user's real database, cache and results.

    Set on os.environ (not monkeypatch) so subprocesses started by tests inherit it; the Omniglot
    cache built under it is reused by every test of the session.
    """
    home = tmp_path_factory.mktemp("metabench-home")
    os.environ["METABENCH_HOME"] = str(home)
    os.environ["METABENCH_DATA"] = str(shared_omniglot())
    os.environ.pop("METABENCH_DB", None)
    os.environ.pop("METABENCH_RESULTS", None)
    return home


@pytest.fixture(scope="session")
def omniglot_dir() -> Path:
    """Path of the real Omniglot zips; a missing data set is a test failure, not a skip."""
    path = shared_omniglot()
    assert (path / "images_background.zip").exists(), f"real Omniglot not found at {path}; set METABENCH_DATA"
    return path
