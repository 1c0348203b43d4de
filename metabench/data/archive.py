"""Read Omniglot zips without extracting them: safe member names, the set layout, a content digest."""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from metabench.data.sources import RunsExpectation, SetExpectation
from metabench.errors import MetabenchError

_JUNK = ("__MACOSX/",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")
_DRIVE = re.compile(r"^[A-Za-z]:")
FETCH_HINT = (
    "download it again with `metabench data download` or import a good copy with `metabench data import PATH`"
)
# Omniglot's PNGs and label files are under 2 kB: a member above this is not Omniglot, and reading it
# whole would cost its size in memory (twice, while it is inflated).
MAX_MEMBER_BYTES = 1 << 20


@dataclass(frozen=True)
class CharacterEntry:
    """One character folder of an image set: its drawings' member names, in drawing order."""

    alphabet: str
    character: str
    members: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.alphabet}/{self.character}"


@dataclass(frozen=True)
class ImageSetLayout:
    """An image set's characters (sorted by alphabet, then character) and its content digest."""

    name: str
    path: Path
    characters: tuple[CharacterEntry, ...]
    digest: str

    @property
    def alphabets(self) -> tuple[str, ...]:
        return tuple(sorted({c.alphabet for c in self.characters}))

    @property
    def images(self) -> int:
        return sum(len(c.members) for c in self.characters)

    @property
    def members(self) -> tuple[str, ...]:
        """Every drawing's member name, in cache order."""
        return tuple(member for character in self.characters for member in character.members)


@dataclass(frozen=True)
class RunEntry:
    """One of Lake's one-shot runs: a training image per class, test items and each item's class."""

    name: str
    training: tuple[str, ...]
    test: tuple[str, ...]
    labels: tuple[int, ...]  # labels[i]: index into `training` of test item i's class


@dataclass(frozen=True)
class RunsLayout:
    """Lake's all_runs archive, parsed."""

    path: Path
    runs: tuple[RunEntry, ...]
    digest: str

    @property
    def images(self) -> int:
        return sum(len(r.training) + len(r.test) for r in self.runs)

    @property
    def members(self) -> tuple[str, ...]:
        """Every image's member name: all training images, then all test items."""
        return tuple(m for r in self.runs for m in r.training) + tuple(m for r in self.runs for m in r.test)


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip, turning a missing, truncated or corrupt file into a one-line MetabenchError."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise MetabenchError(f"{path} does not exist; {FETCH_HINT}") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise MetabenchError(
            f"{path} is not a readable zip (corrupt or truncated: {exc}); {FETCH_HINT}"
        ) from None


def check_member_name(name: str, archive: Path) -> None:
    """Refuse absolute and parent-relative member paths (zip-slip), even though nothing is extracted."""
    normal = name.replace("\\", "/")
    if normal.startswith("/") or _DRIVE.match(normal) or ".." in normal.split("/"):
        raise MetabenchError(
            f"{archive.name} contains the unsafe member path {name!r} (absolute or '..'); "
            f"refusing the archive: {FETCH_HINT}"
        )


def read_member(zf: zipfile.ZipFile, name: str, archive: Path) -> bytes:
    """A member's bytes, CRC-checked by zipfile; refused above MAX_MEMBER_BYTES whatever its header says."""
    limit = f"over the {MAX_MEMBER_BYTES >> 20} MiB limit (Omniglot's files are a few kB); {FETCH_HINT}"
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise MetabenchError(f"{archive.name}: member {name} is {info.file_size:,} bytes, {limit}")
        with zf.open(info) as handle:
            data = handle.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; its subclass NotImplementedError: an unknown compression.
        raise MetabenchError(f"{archive.name}: member {name} is corrupt ({exc}); {FETCH_HINT}") from None
    if len(data) > MAX_MEMBER_BYTES:  # zipfile stops at the header's size, but that is not relied on
        raise MetabenchError(f"{archive.name}: member {name} holds over {MAX_MEMBER_BYTES:,} bytes, {limit}")
    return data


def read_members(path: Path, names: Iterable[str]) -> None:
    """Read every named member, so that the CRC check covers bytes the central directory only describes."""
    with open_zip(path) as zf:
        for name in names:
            read_member(zf, name, path)


def file_members(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
    """The archive's files (no folders, no OS litter), every name checked for safety."""
    members = []
    for info in zf.infolist():
        check_member_name(info.filename, archive)
        if (
            info.is_dir()
            or info.filename.startswith(_JUNK)
            or info.filename.rsplit("/", 1)[-1] in _JUNK_NAMES
        ):
            continue
        members.append(info)
    return members


def _relative(name: str, root: str) -> tuple[str, ...]:
    """Member path parts below the set's root folder (which official zips have and others may not)."""
    parts = tuple(part for part in name.split("/") if part)
    return parts[1:] if parts and parts[0] == root else parts


def _digest(entries: Iterable[tuple[str, zipfile.ZipInfo]]) -> str:
    """sha256 over (relative name, CRC-32, size) of every file: equal for repackaged copies of the same PNGs.

    zipfile checks each member's CRC-32 when it is read, so once decoded the digest vouches for the bytes.
    """
    lines = sorted(f"{rel}\t{info.CRC:08x}\t{info.file_size}\n" for rel, info in entries)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def read_image_set(path: Path, name: str, root: str, expectation: SetExpectation | None) -> ImageSetLayout:
    """Parse an image set's central directory: Alphabet/characterNN/IIII_DD.png, counts checked.

    With `expectation` None (the file matched its official md5) only the structure is checked.
    """
    drawings = expectation.drawings if expectation else 20
    with open_zip(path) as zf:
        members = file_members(zf, path)
    by_character: dict[tuple[str, str], list[str]] = {}
    entries = []
    for info in members:
        rel = _relative(info.filename, root)
        if len(rel) != 3 or not rel[2].lower().endswith(".png"):
            raise MetabenchError(
                f"{path.name}: unexpected member {info.filename!r} (want {root}/Alphabet/characterNN/"
                f"IIII_DD.png); is this the {name} set? {FETCH_HINT}"
            )
        by_character.setdefault((rel[0], rel[1]), []).append(info.filename)
        entries.append(("/".join(rel), info))
    if not by_character:
        raise MetabenchError(f"{path.name} holds no images; {FETCH_HINT}")
    characters = tuple(
        CharacterEntry(alphabet, character, tuple(sorted(files)))
        for (alphabet, character), files in sorted(by_character.items())
    )
    for entry in characters:
        if len(entry.members) != drawings:
            raise MetabenchError(
                f"{path.name}: {entry.name} has {len(entry.members)} drawings, expected {drawings}; "
                f"the archive is incomplete: {FETCH_HINT}"
            )
    layout = ImageSetLayout(name, path, characters, _digest(entries))
    if expectation and (len(layout.alphabets), len(characters)) != (
        expectation.alphabets,
        expectation.characters,
    ):
        raise MetabenchError(
            f"{path.name} holds {len(layout.alphabets)} alphabets and {len(characters)} characters, expected "
            f"{expectation.alphabets} and {expectation.characters} for the {name} set; {FETCH_HINT}"
        )
    return layout


_RUN_FILE = re.compile(r"^(run\d+)/(training/class\d+\.png|test/item\d+\.png|class_labels\.txt)$")


def read_runs(path: Path, root: str, expectation: RunsExpectation) -> RunsLayout:
    """Parse all_runs.zip: runNN/training/classNN.png, runNN/test/itemNN.png, runNN/class_labels.txt."""
    with open_zip(path) as zf:
        members = file_members(zf, path)
        files: dict[str, dict[str, str]] = {}
        entries = []
        for info in members:
            rel = "/".join(_relative(info.filename, root))
            match = _RUN_FILE.match(rel)
            if not match:
                raise MetabenchError(f"{path.name}: unexpected member {info.filename!r}; {FETCH_HINT}")
            files.setdefault(match.group(1), {})[match.group(2)] = info.filename
            entries.append((rel, info))
        runs = tuple(_parse_run(zf, path, run, files[run], expectation) for run in sorted(files))
    if len(runs) != expectation.runs:
        raise MetabenchError(f"{path.name} holds {len(runs)} runs, expected {expectation.runs}; {FETCH_HINT}")
    return RunsLayout(path, runs, _digest(entries))


def _parse_run(
    zf: zipfile.ZipFile, path: Path, run: str, files: dict[str, str], expectation: RunsExpectation
) -> RunEntry:
    training = sorted(key for key in files if key.startswith("training/"))
    test = sorted(key for key in files if key.startswith("test/"))
    if "class_labels.txt" not in files or len(training) != expectation.ways or len(test) != expectation.ways:
        raise MetabenchError(
            f"{path.name}: {run} needs class_labels.txt, {expectation.ways} training and {expectation.ways} "
            f"test images (found {len(training)} and {len(test)}); {FETCH_HINT}"
        )
    try:
        text = read_member(zf, files["class_labels.txt"], path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetabenchError(
            f"{path.name}: {run}/class_labels.txt is unreadable ({exc}); {FETCH_HINT}"
        ) from None
    label_of: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.replace("\\", "/").split("/") for f in line.split()]
        item, target = ("/".join(p[-2:]) for p in fields) if len(fields) == 2 else ("", "")
        if item not in test or target not in training or item in label_of:
            raise MetabenchError(f"{path.name}: {run}/class_labels.txt has a bad line {line!r}; {FETCH_HINT}")
        label_of[item] = training.index(target)
    if sorted(label_of) != test or sorted(label_of.values()) != list(range(expectation.ways)):
        raise MetabenchError(
            f"{path.name}: {run}/class_labels.txt must"
            f" give each test item a class, each class once; {FETCH_HINT}"
        )
    return RunEntry(
        run,
        tuple(files[key] for key in training),
        tuple(files[key] for key in test),
        tuple(label_of[key] for key in test),
    )


def file_md5(path: Path) -> str:
    """The md5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
