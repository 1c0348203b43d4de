"""What Omniglot consists of: the three archives, where they come from, and what each must contain."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE = (105, 105)  # every Omniglot drawing, width x height
DRAWINGS_PER_CHARACTER = 20  # twenty people drew every character
SETS = ("background", "evaluation", "runs")
IMAGE_SETS = ("background", "evaluation")  # required; the runs are optional (only `lake-runs` needs them)


@dataclass(frozen=True)
class SetSource:
    """One official archive: its file name, the folder at its root, its download address and md5."""

    name: str
    file_name: str
    root: str
    url: str
    official_md5: str | None  # None: the authors publish no checksum, so the content check decides


_BASE = "https://github.com/brendenlake/omniglot/raw/master/python"
SOURCES: dict[str, SetSource] = {
    "background": SetSource(
        "background",
        "images_background.zip",
        "images_background",
        f"{_BASE}/images_background.zip",
        "68d2efa1b9178cc56df9314c21c6e718",
    ),
    "evaluation": SetSource(
        "evaluation",
        "images_evaluation.zip",
        "images_evaluation",
        f"{_BASE}/images_evaluation.zip",
        "6b91aef0f799c5bb55b94e3f2daec811",
    ),
    "runs": SetSource(
        "runs", "all_runs.zip", "all_runs", f"{_BASE}/one-shot-classification/all_runs.zip", None
    ),
}


@dataclass(frozen=True)
class SetExpectation:
    """What the content check demands of an image set (an archive without an official md5 match).

    Tests inject small expectations to exercise the verifier on tiny generated archives.
    """

    alphabets: int
    characters: int
    drawings: int = DRAWINGS_PER_CHARACTER
    size: tuple[int, int] = IMAGE_SIZE


@dataclass(frozen=True)
class RunsExpectation:
    """What Lake's one-shot runs archive must hold: `runs` runs of `ways` classes, one test item each."""

    runs: int = 20
    ways: int = 20
    size: tuple[int, int] = IMAGE_SIZE


@dataclass(frozen=True)
class Expectations:
    """The content check's targets for every set."""

    background: SetExpectation = SetExpectation(alphabets=30, characters=964)
    evaluation: SetExpectation = SetExpectation(alphabets=20, characters=659)
    runs: RunsExpectation = RunsExpectation()

    def for_set(self, name: str) -> SetExpectation:
        return self.background if name == "background" else self.evaluation


OMNIGLOT = Expectations()
