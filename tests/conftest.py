"""Test-wide setup: every test session gets its own METABENCH_HOME; the real Omniglot is shared."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


@pytest.fixture
def one_thread() -> Any:
    """One intra-op thread: measured numbers then hold on any core count, and on the shared 2-core
    machine two spinning threads made a step 10 to 20 times slower (pretrain's 100 learning steps: 49 s
    against 2.3 s; test_method_invariants.py under load: 46 s against 8)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_context(episode: Any, characters: int = 25, seed: int = 0) -> Any:
    """A TrainingContext over random binary images (characters x 4 rotations classes), for tests of a
    method's mechanics that need its constructor but no real data."""
    import torch

    from metabench.data.episodes import EpisodeSampler
    from metabench.methods.base import TrainingContext

    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 2, (characters, 20, 28, 28), generator=generator, dtype=torch.uint8)
    classes = [(c, r) for c in range(characters) for r in range(4)]
    return TrainingContext(episode, torch.device("cpu"), EpisodeSampler(images, torch.tensor(classes)))


def tensors(state: Any) -> list[Any]:
    """Every tensor in a nested state dict, in a fixed order."""
    import torch

    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in tensors(item)]
    return []


def assert_same_state(a: dict, b: dict) -> None:
    """Two state dicts hold equal tensors, bit for bit."""
    import torch

    ta, tb = tensors(a), tensors(b)
    assert len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb, strict=True))


def relabelled(episode: Any, permutation: Any) -> Any:
    """The same tasks with every class renamed by `permutation` (support and query labels alike)."""
    from metabench.data.episode import Episode

    return Episode(
        episode.support,
        permutation[episode.support_labels],
        episode.query,
        permutation[episode.query_labels],
        episode.ways,
        episode.shots,
        episode.queries,
    )
