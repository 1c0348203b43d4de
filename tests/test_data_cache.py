"""The 28x28 cache: built once, reused, rebuilt when source content or transform change, never torn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_data_fakes import SMALL, build_fake_omniglot, image_set, snapshot, write_zip

from metabench.data import cache as cache_module
from metabench.data import cache_index
from metabench.data.cache import load_cache
from metabench.data.cache_index import INDEX_NAME, cache_folder, read_index
from metabench.errors import MetabenchError


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    build_fake_omniglot(data)
    return {"data": data, "cache": tmp_path / "cache"}


def _tensor_files(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_folder(cache_dir).glob("*.pt"))


def test_a_second_load_reuses_the_cache(fake: dict[str, Path]) -> None:
    first = load_cache(fake["data"], fake["cache"], expectations=SMALL)
    before = snapshot(fake["cache"])
    second = load_cache(fake["data"], fake["cache"], expectations=SMALL)
    assert snapshot(fake["cache"]) == before  # nothing rewritten
    assert first.images.equal(second.images) and first.characters == second.characters
    index = read_index(cache_folder(fake["cache"]))
    assert index is not None and index["transform"]["filter"] == "PIL.Image.Resampling.BOX"
    assert index["characters"][0] == ["Alpha/character01", "background"]


def test_touched_but_unchanged_sources_are_not_decoded_again(fake: dict[str, Path]) -> None:
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    tensor = _tensor_files(fake["cache"])
    mtime = (cache_folder(fake["cache"]) / tensor[0]).stat().st_mtime_ns
    zip_path = fake["data"] / "images_background.zip"
    os.utime(zip_path, ns=(zip_path.stat().st_atime_ns, zip_path.stat().st_mtime_ns + 10**9))
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    assert _tensor_files(fake["cache"]) == tensor
    assert (cache_folder(fake["cache"]) / tensor[0]).stat().st_mtime_ns == mtime


def test_changed_source_content_rebuilds(fake: dict[str, Path]) -> None:
    first = load_cache(fake["data"], fake["cache"], expectations=SMALL)
    write_zip(
        fake["data"] / "images_background.zip", image_set("images_background", {"Alpha": 2, "Beta": 2}, 42)
    )
    second = load_cache(fake["data"], fake["cache"], expectations=SMALL)
    assert second.set_digests["background"] != first.set_digests["background"]
    assert not second.images[:4].equal(first.images[:4]) and second.images[4:].equal(first.images[4:])
    assert len(_tensor_files(fake["cache"])) == 1  # the stale tensor file is gone


def test_a_new_transform_rebuilds(fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    old = _tensor_files(fake["cache"])
    changed = dict(cache_index.TRANSFORM, version=999)
    monkeypatch.setattr(cache_index, "TRANSFORM", changed)
    monkeypatch.setattr(cache_module, "TRANSFORM", changed)
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    index = read_index(cache_folder(fake["cache"]))
    assert index is not None and index["transform"]["version"] == 999
    assert _tensor_files(fake["cache"]) != old


def test_a_corrupt_tensor_file_is_rebuilt(fake: dict[str, Path]) -> None:
    first = load_cache(fake["data"], fake["cache"], expectations=SMALL)
    (cache_folder(fake["cache"]) / _tensor_files(fake["cache"])[0]).write_bytes(b"garbage")
    assert load_cache(fake["data"], fake["cache"], expectations=SMALL).images.equal(first.images)


def test_a_failed_rebuild_leaves_the_old_cache_whole(fake: dict[str, Path]) -> None:
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    before = snapshot(fake["cache"])
    members = image_set("images_background", {"Alpha": 2, "Beta": 2}, 5)
    members[sorted(members)[0]] = b"not a png"
    write_zip(fake["data"] / "images_background.zip", members)
    with pytest.raises(MetabenchError, match="not a readable PNG"):
        load_cache(fake["data"], fake["cache"], expectations=SMALL)
    assert snapshot(fake["cache"]) == before


def test_no_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(
        MetabenchError, match=r"^no Omniglot data in .*empty \(missing images_background.zip"
    ) as caught:
        load_cache(tmp_path / "empty", tmp_path / "cache")
    message = str(caught.value)
    for hint in (
        "metabench data download",
        "metabench data import PATH",
        "METABENCH_DATA",
        "images_background.zip",
    ):
        assert hint in message
    assert not (tmp_path / "cache").exists()


def test_the_index_never_names_a_missing_tensor_file(fake: dict[str, Path]) -> None:
    load_cache(fake["data"], fake["cache"], expectations=SMALL)
    index = read_index(cache_folder(fake["cache"]))
    assert index is not None
    assert (cache_folder(fake["cache"]) / index["tensor_file"]).stat().st_size == index["tensor_bytes"]
    assert sorted(p.name for p in cache_folder(fake["cache"]).iterdir()) == sorted(
        [INDEX_NAME, index["tensor_file"]]
    )
