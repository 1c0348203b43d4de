"""Tiny generated Omniglot look-alikes (real PNGs, real zips) for the verifier, cache and download tests."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw

from metabench.data.archive import file_md5, read_image_set
from metabench.data.sources import Expectations, RunsExpectation, SetExpectation

# What the fakes below hold: 2 + 1 alphabets, 4 + 2 characters, 2 runs of 3 classes.
SMALL = Expectations(
    background=SetExpectation(alphabets=2, characters=4),
    evaluation=SetExpectation(alphabets=1, characters=2),
    runs=RunsExpectation(runs=2, ways=3),
)
BACKGROUND = {"Alpha": 2, "Beta": 2}
EVALUATION = {"Gamma": 2}


def drawing(seed: int, size: tuple[int, int] = (105, 105)) -> bytes:
    """A 1-bit PNG like Omniglot's: white background, a few black strokes."""
    rng = random.Random(seed)
    image = Image.new("1", size, 1)
    pen = ImageDraw.Draw(image)
    for _ in range(3):
        points = [(rng.randrange(size[0]), rng.randrange(size[1])) for _ in range(2)]
        pen.line(points, fill=0, width=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_set(root: str, alphabets: dict[str, int], seed: int = 0, drawings: int = 20) -> dict[str, bytes]:
    """Members of an image set zip: root/Alphabet/characterNN/IIII_DD.png."""
    members = {}
    character_id = 1
    for alphabet, characters in alphabets.items():
        for number in range(1, characters + 1):
            for draw in range(1, drawings + 1):
                name = f"{root}/{alphabet}/character{number:02d}/{character_id:04d}_{draw:02d}.png"
                members[name] = drawing(seed * 100_000 + character_id * 100 + draw)
            character_id += 1
    return members


def runs_set(runs: int = 2, ways: int = 3, seed: int = 0) -> dict[str, bytes]:
    """Members of an all_runs-like zip; test item i belongs to class (i + 1) % ways (a permutation)."""
    members = {}
    for run in range(1, runs + 1):
        lines = []
        for c in range(1, ways + 1):
            members[f"run{run:02d}/training/class{c:02d}.png"] = drawing(seed + run * 1000 + c)
            members[f"run{run:02d}/test/item{c:02d}.png"] = drawing(seed + run * 1000 + 500 + c)
            target = c % ways + 1
            lines.append(f"run{run:02d}/test/item{c:02d}.png run{run:02d}/training/class{target:02d}.png")
        members[f"run{run:02d}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def build_fake_omniglot(folder: Path, seed: int = 0, runs: bool = True) -> dict[str, Path]:
    """Write images_background.zip, images_evaluation.zip (and all_runs.zip) into `folder`."""
    zips = {
        "background": write_zip(
            folder / "images_background.zip", image_set("images_background", BACKGROUND, seed)
        ),
        "evaluation": write_zip(
            folder / "images_evaluation.zip", image_set("images_evaluation", EVALUATION, seed + 1)
        ),
    }
    if runs:
        zips["runs"] = write_zip(folder / "all_runs.zip", runs_set(seed=seed))
    return zips


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file below `folder`, to prove that a failed operation touched nothing."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_fakes_have_the_promised_layout(tmp_path: Path) -> None:
    zips = build_fake_omniglot(tmp_path)
    layout = read_image_set(zips["background"], "background", "images_background", SMALL.background)
    assert layout.alphabets == ("Alpha", "Beta")
    assert layout.images == 4 * 20
    assert len(file_md5(zips["evaluation"])) == 32
