"""Find the Omniglot zips in a folder, check each (official md5, else content), and decode them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metabench.data import sources
from metabench.data.archive import (
    FETCH_HINT,
    ImageSetLayout,
    RunsLayout,
    file_md5,
    read_image_set,
    read_members,
    read_runs,
)
from metabench.data.decode import DecodeJob, decode_all
from metabench.data.sources import IMAGE_SETS, OMNIGLOT, SETS, Expectations
from metabench.errors import MetabenchError

OFFICIAL_MD5 = "official-md5"
CONTENT = "content"


def missing_data_message(folder: Path, missing: list[str]) -> str:
    return (
        f"no Omniglot data in {folder} (missing {', '.join(missing)}): run `metabench data download`, "
        "or `metabench data import PATH` with a folder holding the zips, or set METABENCH_DATA "
        "(or pass --data) to a folder holding them"
    )


def find_zips(folder: Path) -> dict[str, Path]:
    """The Omniglot zips present in `folder`, by set name."""
    found = {}
    for name in SETS:
        path = folder / sources.SOURCES[name].file_name
        if path.is_file():
            found[name] = path
    return found


def require_zips(folder: Path) -> dict[str, Path]:
    """The zips in `folder`; MetabenchError saying how to get them when a required set is absent."""
    found = find_zips(folder)
    missing = [sources.SOURCES[name].file_name for name in IMAGE_SETS if name not in found]
    if missing:
        raise MetabenchError(missing_data_message(folder, missing))
    return found


@dataclass(frozen=True)
class CheckedSet:
    """A set whose archive passed the structural check; `verified_by` says how its content was trusted."""

    name: str
    path: Path
    md5: str
    verified_by: str  # OFFICIAL_MD5 or CONTENT
    layout: ImageSetLayout | RunsLayout

    @property
    def digest(self) -> str:
        return self.layout.digest

    @property
    def images(self) -> int:
        return self.layout.images


def check_set(name: str, path: Path, expectations: Expectations = OMNIGLOT) -> CheckedSet:
    """Check one archive's central directory: the official md5 vouches for the counts, else they are counted.

    Looks the official md5 up at call time, so a test can substitute its own table.
    """
    source = sources.SOURCES[name]
    md5 = file_md5(path)
    official = source.official_md5 is not None and md5 == source.official_md5
    if name == "runs":
        layout: ImageSetLayout | RunsLayout = read_runs(path, source.root, expectations.runs)
    else:
        layout = read_image_set(path, name, source.root, None if official else expectations.for_set(name))
    return CheckedSet(name, path, md5, OFFICIAL_MD5 if official else CONTENT, layout)


def check_bytes(checked: CheckedSet) -> None:
    """Read every image of a set, CRC-checked: the structural check sees only the central directory.

    A file that matched its official md5 needs no second look: the md5 covered every byte.
    """
    if checked.verified_by != OFFICIAL_MD5:
        read_members(checked.path, checked.layout.members)


def check_set_fully(name: str, path: Path, expectations: Expectations = OMNIGLOT) -> CheckedSet:
    """check_set, then check_bytes: for a file about to replace another, or to be trusted without decoding."""
    checked = check_set(name, path, expectations)
    check_bytes(checked)
    return checked


def check_sets(zips: dict[str, Path], expectations: Expectations = OMNIGLOT) -> dict[str, CheckedSet]:
    """Check every archive given (background and evaluation required); refuse an alphabet in both sets."""
    missing = [sources.SOURCES[name].file_name for name in IMAGE_SETS if name not in zips]
    if missing:
        raise MetabenchError(f"missing {', '.join(missing)}; " + FETCH_HINT)
    checked = {name: check_set(name, path, expectations) for name, path in zips.items()}
    background, evaluation = (checked[name].layout for name in IMAGE_SETS)
    assert isinstance(background, ImageSetLayout) and isinstance(evaluation, ImageSetLayout)
    shared = set(background.alphabets) & set(evaluation.alphabets)
    if shared:
        raise MetabenchError(
            f"alphabet {sorted(shared)[0]!r} is in both {background.path.name} and {evaluation.path.name}; "
            "the two files must be the background and the evaluation set: download them again"
        )
    return checked


@dataclass(frozen=True)
class DecodedData:
    """Every image decoded to 28x28 uint8 bytes (ink 255), in cache order."""

    characters: bytes  # [characters, 20, 28, 28]: background characters, then evaluation characters
    runs_training: bytes | None  # [runs, ways, 28, 28]
    runs_test: bytes | None  # [runs, ways, 28, 28]


def decode_sets(
    checked: dict[str, CheckedSet],
    expectations: Expectations = OMNIGLOT,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DecodedData:
    """Decode every image of the checked sets; any unreadable or wrongly sized image raises."""
    jobs = []
    for name in IMAGE_SETS:
        layout = checked[name].layout
        assert isinstance(layout, ImageSetLayout)
        jobs.append(DecodeJob(str(layout.path), layout.members, expectations.for_set(name).size))
    runs = checked.get("runs")
    if runs is not None:
        layout = runs.layout
        assert isinstance(layout, RunsLayout)
        size = expectations.runs.size
        jobs.append(DecodeJob(str(layout.path), tuple(m for r in layout.runs for m in r.training), size))
        jobs.append(DecodeJob(str(layout.path), tuple(m for r in layout.runs for m in r.test), size))
    blobs = decode_all(jobs, workers=workers, progress=progress)
    return DecodedData(
        characters=blobs[0] + blobs[1],
        runs_training=blobs[2] if runs is not None else None,
        runs_test=blobs[3] if runs is not None else None,
    )
