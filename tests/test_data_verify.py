"""Every verification branch of `import` on tiny generated zips: what is accepted, what is refused, why."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_data_fakes import (
    SMALL,
    build_fake_omniglot,
    drawing,
    image_set,
    runs_set,
    snapshot,
    write_zip,
)

from metabench.data import sources
from metabench.data.archive import file_md5
from metabench.data.cache import load_cache
from metabench.data.install import MANIFEST_NAME, import_data
from metabench.errors import MetabenchError


@pytest.fixture
def installed(tmp_path: Path) -> dict[str, Path]:
    """A good fake installation: its data folder and cache folder, both populated."""
    source = tmp_path / "source"
    build_fake_omniglot(source)
    data, cache = tmp_path / "data", tmp_path / "cache"
    import_data(source, data, cache, expectations=SMALL)
    return {"data": data, "cache": cache, "root": tmp_path}


def test_content_check_accepts_repackaged_data_and_builds_the_cache(tmp_path: Path) -> None:
    source = tmp_path / "source"
    build_fake_omniglot(source)
    data, cache_dir = tmp_path / "data", tmp_path / "cache"
    report = import_data(source, data, cache_dir, expectations=SMALL)
    assert {name: entry["verified_by"] for name, entry in report.sets.items()} == dict.fromkeys(
        ("background", "evaluation", "runs"), "content"
    )
    assert report.manifest_written and not report.cache_reused
    assert sorted(p.name for p in data.iterdir()) == sorted(
        ["images_background.zip", "images_evaluation.zip", "all_runs.zip", MANIFEST_NAME]
    )
    manifest = json.loads((data / MANIFEST_NAME).read_text())
    assert manifest["sets"]["background"]["source"] == str(source.resolve())
    cache = load_cache(data, cache_dir, expectations=SMALL)
    assert cache.images.shape == (6, 20, 28, 28) and cache.images.dtype == torch.uint8
    assert cache.characters[:2] == ("Alpha/character01", "Alpha/character02")
    assert cache.sets == ("background",) * 4 + ("evaluation",) * 2
    assert cache.images.max() == 255 and cache.images.float().mean() < 64  # sparse ink on a dark background
    assert cache.runs is not None and cache.runs.labels.tolist() == [[1, 2, 0], [1, 2, 0]]


def test_ink_is_bright_and_background_dark(tmp_path: Path) -> None:
    """A drawing that is all ink decodes to 255 everywhere; an empty one to 0."""
    members = image_set("images_background", {"Alpha": 2, "Beta": 2})
    names = sorted(members)
    for name, colour in ((names[0], 0), (names[1], 1)):
        buffer = io.BytesIO()
        Image.new("1", (105, 105), colour).save(buffer, format="PNG")
        members[name] = buffer.getvalue()
    source = tmp_path / "source"
    build_fake_omniglot(source)
    write_zip(source / "images_background.zip", members)
    import_data(source, tmp_path / "data", tmp_path / "cache", expectations=SMALL)
    images = load_cache(tmp_path / "data", tmp_path / "cache", expectations=SMALL).images
    assert images[0, 0].unique().tolist() == [255]  # black pixels in the PNG are ink
    assert images[0, 1].unique().tolist() == [0]


def test_official_md5_is_accepted_without_counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    zips = build_fake_omniglot(source, runs=False)  # all_runs.zip has no published md5
    for name in ("background", "evaluation"):
        official = dataclasses.replace(sources.SOURCES[name], official_md5=file_md5(zips[name]))
        monkeypatch.setitem(sources.SOURCES, name, official)
    # The default expectations (30 alphabets, 964 characters) do not fit, but the md5 vouches for the file.
    report = import_data(source, tmp_path / "data", tmp_path / "cache")
    assert report.sets["background"]["verified_by"] == "official-md5"
    assert report.sets["evaluation"]["verified_by"] == "official-md5"


def _refused(source: Path, installed: dict[str, Path], match: str) -> None:
    """Importing `source` fails with `match`, and neither the data folder nor the cache changes."""
    before = snapshot(installed["data"]), snapshot(installed["cache"])
    with pytest.raises(MetabenchError, match=match) as caught:
        import_data(source, installed["data"], installed["cache"], expectations=SMALL)
    assert "\n" not in str(caught.value)
    assert (snapshot(installed["data"]), snapshot(installed["cache"])) == before
    leftovers = [p for p in installed["cache"].rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def _source_with(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    source = tmp_path / "bad"
    build_fake_omniglot(source, seed=7)
    write_zip(source / sources.SOURCES[name].file_name, members)
    return source


def test_counts_that_differ_are_refused(installed: dict[str, Path]) -> None:
    source = _source_with(
        installed["root"], "background", image_set("images_background", {"Alpha": 2, "Beta": 1})
    )
    _refused(source, installed, r"images_background.zip holds 2 alphabets and 3 characters, expected 2 and 4")


def test_a_character_missing_drawings_is_refused(installed: dict[str, Path]) -> None:
    members = image_set("images_background", {"Alpha": 2, "Beta": 2})
    del members[sorted(members)[5]]
    source = _source_with(installed["root"], "background", members)
    _refused(source, installed, r"Alpha/character01 has 19 drawings, expected 20")


def test_a_wrongly_sized_image_is_refused(installed: dict[str, Path]) -> None:
    members = image_set("images_background", {"Alpha": 2, "Beta": 2})
    members[sorted(members)[-1]] = drawing(1, size=(100, 100))
    source = _source_with(installed["root"], "background", members)
    _refused(source, installed, r"0004_20.png is 100x100, expected 105x105")


def test_a_member_that_is_no_png_is_refused(installed: dict[str, Path]) -> None:
    members = image_set("images_evaluation", {"Gamma": 2})
    members[sorted(members)[3]] = b"this is not a png"
    source = _source_with(installed["root"], "evaluation", members)
    _refused(source, installed, r"0001_04.png is not a readable PNG")


@pytest.mark.parametrize("member", ["images_background/../../escape.png", "/etc/evil.png", "..\\evil.png"])
def test_zip_slip_members_are_refused(installed: dict[str, Path], member: str) -> None:
    members = image_set("images_background", {"Alpha": 2, "Beta": 2})
    members[member] = drawing(3)
    source = _source_with(installed["root"], "background", members)
    _refused(source, installed, r"unsafe member path")


def test_a_truncated_zip_is_refused(installed: dict[str, Path]) -> None:
    source = _source_with(
        installed["root"], "background", image_set("images_background", {"Alpha": 2, "Beta": 2})
    )
    path = source / "images_background.zip"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(source, installed, r"images_background.zip is not a readable zip \(corrupt or truncated")


def test_a_corrupt_member_is_refused(installed: dict[str, Path]) -> None:
    """The central directory is intact but a member's compressed bytes are damaged: the CRC check tells."""
    source = _source_with(installed["root"], "evaluation", image_set("images_evaluation", {"Gamma": 2}))
    path = source / "images_evaluation.zip"
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[10]
    blob = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(start + 5, start + 25):
        blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))
    _refused(source, installed, rf"images_evaluation.zip: .*({info.filename} is corrupt|not a readable PNG)")


def test_garbage_is_refused(installed: dict[str, Path]) -> None:
    source = _source_with(installed["root"], "evaluation", {})
    (source / "images_evaluation.zip").write_bytes(b"PK\x03\x04 definitely not a zip" * 10)
    _refused(source, installed, r"images_evaluation.zip is not a readable zip")


def test_a_missing_set_is_refused(installed: dict[str, Path]) -> None:
    source = _source_with(installed["root"], "evaluation", {})
    (source / "images_evaluation.zip").unlink()
    _refused(source, installed, r"holds neither images_evaluation.zip nor the unzipped folder")


def test_an_alphabet_in_both_sets_is_refused(installed: dict[str, Path]) -> None:
    members = image_set("images_evaluation", {"Alpha": 2})
    source = _source_with(installed["root"], "evaluation", members)
    _refused(source, installed, r"alphabet 'Alpha' is in both")


def test_bad_runs_labels_are_refused(installed: dict[str, Path]) -> None:
    members = runs_set()
    members["run02/class_labels.txt"] = b"run02/test/item01.png run02/training/class01.png\n"
    source = _source_with(installed["root"], "runs", members)
    _refused(source, installed, r"run02/class_labels.txt must give each test item a class")


def test_unzipped_folders_are_imported_as_zips(tmp_path: Path) -> None:
    zips = build_fake_omniglot(tmp_path / "zips")
    unzipped = tmp_path / "unzipped"
    for name in ("background", "evaluation", "runs"):
        with zipfile.ZipFile(zips[name]) as zf:
            zf.extractall(unzipped if name != "runs" else unzipped / "all_runs")
    report = import_data(unzipped, tmp_path / "data", tmp_path / "cache", expectations=SMALL)
    assert report.sets["background"]["images"] == 80
    # Same PNG bytes, different packaging: the content digest is the same.
    direct = import_data(tmp_path / "zips", tmp_path / "data2", tmp_path / "cache2", expectations=SMALL)
    assert {n: e["digest"] for n, e in report.sets.items()} == {
        n: e["digest"] for n, e in direct.sets.items()
    }


def test_import_of_a_file_or_missing_folder_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(
        MetabenchError, match="is not a folder; give the folder holding images_background.zip"
    ):
        import_data(tmp_path / "nope", tmp_path / "data", tmp_path / "cache")


def test_importing_a_folder_in_place_writes_nothing_into_it(tmp_path: Path) -> None:
    """METABENCH_DATA may name a shared copy: registering it must not write into it."""
    source = tmp_path / "shared"
    build_fake_omniglot(source)
    before = snapshot(source)
    report = import_data(source, source, tmp_path / "cache", expectations=SMALL)
    assert not report.manifest_written and snapshot(source) == before
    assert load_cache(source, tmp_path / "cache", expectations=SMALL).images.shape == (6, 20, 28, 28)
