"""Corrupt files are never used without a word: cache and checkpoints carry a sha256, zips are read whole."""

from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from test_data_fakes import SMALL, build_fake_omniglot, image_set, snapshot, write_zip

from metabench.data.archive import MAX_MEMBER_BYTES
from metabench.data.cache import load_cache
from metabench.data.cache_index import cache_folder, read_index
from metabench.data.install import import_data, info, verify
from metabench.data.verify import check_set, check_set_fully
from metabench.errors import MetabenchError
from metabench.runner.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

RUN_ID = "protonet-vinyals-5w1s-20261126T091344-2b91"
RESTART = "delete it to restart the run from step 0"


def _data_span(path: Path, member: zipfile.ZipInfo) -> tuple[int, int]:
    """Where a member's (compressed) bytes lie in its zip, read from the local header."""
    with open(path, "rb") as handle:
        handle.seek(member.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = member.header_offset + 30 + name_length + extra_length
    return start, start + member.compress_size


def _flip(path: Path, start: int, end: int) -> None:
    blob = bytearray(path.read_bytes())
    for offset in range(start, end):
        blob[offset] ^= 0x5A
    path.write_bytes(bytes(blob))


def _damage_pixels(cache_dir: Path) -> Path:
    """Overwrite half of the image tensor's bytes, leaving the file loadable, as a stray write might."""
    tensor = next(cache_folder(cache_dir).glob("*.pt"))
    with zipfile.ZipFile(tensor) as zf:
        images = max(zf.infolist(), key=lambda member: member.file_size)
    start, end = _data_span(tensor, images)
    _flip(tensor, start, (start + end) // 2)
    return tensor


@pytest.fixture
def installed(tmp_path: Path) -> dict[str, Path]:
    """Fake Omniglot imported into a data folder, its cache built; the source folder kept for re-imports."""
    source = tmp_path / "source"
    build_fake_omniglot(source)
    data, cache = tmp_path / "data", tmp_path / "cache"
    import_data(source, data, cache, expectations=SMALL)
    return {"source": source, "data": data, "cache": cache}


# --- the cache ---------------------------------------------------------------------------------------------


def test_a_damaged_cache_is_rebuilt_with_a_notice(installed: dict[str, Path]) -> None:
    good = load_cache(installed["data"], installed["cache"], expectations=SMALL).images.clone()
    _damage_pixels(installed["cache"])
    notices: list[str] = []
    cache = load_cache(installed["data"], installed["cache"], expectations=SMALL, notice=notices.append)
    assert cache.images.equal(good)
    assert len(notices) == 1 and "is damaged" in notices[0] and "rebuilding it from the zips" in notices[0]
    again: list[str] = []
    load_cache(installed["data"], installed["cache"], expectations=SMALL, notice=again.append)
    assert again == []  # the rebuilt cache is whole


def test_the_default_notice_is_a_warning_on_stderr(
    installed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _damage_pixels(installed["cache"])
    load_cache(installed["data"], installed["cache"], expectations=SMALL)
    err = capsys.readouterr().err
    assert err.startswith("warning: the Omniglot cache in") and err.count("\n") == 1


def test_info_reports_a_damaged_cache(installed: dict[str, Path]) -> None:
    assert info(installed["data"], installed["cache"])["cache"]["status"] == "current"
    _damage_pixels(installed["cache"])
    cache = info(installed["data"], installed["cache"])["cache"]
    assert cache["status"] == "damaged"
    assert "does not match the sha256" in cache["problem"] and "metabench data verify" in cache["problem"]


def test_info_reports_a_missing_tensor_file_as_damaged(installed: dict[str, Path]) -> None:
    next(cache_folder(installed["cache"]).glob("*.pt")).unlink()
    cache = info(installed["data"], installed["cache"])["cache"]
    assert cache["status"] == "damaged" and " is missing" in cache["problem"]


def test_verify_names_the_damage_and_mends_it(installed: dict[str, Path]) -> None:
    _damage_pixels(installed["cache"])
    report = verify(installed["data"], installed["cache"], expectations=SMALL)
    assert report["cache"]["status"].startswith("rebuilt (it was damaged: omniglot28-")
    assert info(installed["data"], installed["cache"])["cache"]["status"] == "current"


def test_a_reimport_does_not_adopt_a_damaged_cache(installed: dict[str, Path]) -> None:
    good = load_cache(installed["data"], installed["cache"], expectations=SMALL).images.clone()
    _damage_pixels(installed["cache"])
    report = import_data(installed["source"], installed["data"], installed["cache"], expectations=SMALL)
    assert not report.cache_reused
    notices: list[str] = []
    cache = load_cache(installed["data"], installed["cache"], expectations=SMALL, notice=notices.append)
    assert cache.images.equal(good) and notices == []


def test_the_index_records_the_tensor_files_sha256(installed: dict[str, Path]) -> None:
    import hashlib

    index = read_index(cache_folder(installed["cache"]))
    assert index is not None and index["format"] == 2
    tensor = cache_folder(installed["cache"]) / index["tensor_file"]
    assert index["tensor_sha256"] == hashlib.sha256(tensor.read_bytes()).hexdigest()


# --- the zips ----------------------------------------------------------------------------------------------


def flip_mid_member(path: Path) -> str:
    """Damage the bytes of the image in the middle of the zip; its central directory stays as it was."""
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.infolist() if m.filename.endswith(".png")]
    member = members[len(members) // 2]
    start, end = _data_span(path, member)
    _flip(path, (start + end) // 2, (start + end) // 2 + 1)
    return member.filename


def test_a_flipped_byte_never_replaces_a_good_install(installed: dict[str, Path], tmp_path: Path) -> None:
    """Same content as installed (the central directory is intact), one byte flipped mid-member."""
    copy = tmp_path / "copy"
    shutil.copytree(installed["source"], copy)
    member = flip_mid_member(copy / "images_background.zip")
    before = snapshot(installed["data"]), snapshot(installed["cache"])
    with pytest.raises(MetabenchError, match=rf"images_background.zip: member {member} is corrupt") as caught:
        import_data(copy, installed["data"], installed["cache"], expectations=SMALL)
    assert "\n" not in str(caught.value) and "metabench data download" in str(caught.value)
    assert (snapshot(installed["data"]), snapshot(installed["cache"])) == before


def test_a_flipped_byte_in_a_real_zip_is_found(omniglot_dir: Path, tmp_path: Path) -> None:
    """The central directory of the real all_runs.zip cannot tell; reading every member can."""
    path = tmp_path / "all_runs.zip"
    shutil.copyfile(omniglot_dir / "all_runs.zip", path)
    check_set_fully("runs", path)  # the pristine copy passes
    member = flip_mid_member(path)
    check_set("runs", path)  # the structural check alone is fooled
    with pytest.raises(MetabenchError, match=rf"all_runs.zip: member {member} is corrupt .*; download it"):
        check_set_fully("runs", path)


def test_an_oversized_member_is_refused_before_it_is_read(installed: dict[str, Path], tmp_path: Path) -> None:
    members = image_set("images_background", {"Alpha": 2, "Beta": 2})
    name = sorted(members)[7]
    members[name] = bytes(MAX_MEMBER_BYTES + 1)  # deflates to a few kB: the header's size is what warns
    source = tmp_path / "big"
    build_fake_omniglot(source)
    write_zip(source / "images_background.zip", members)
    before = snapshot(installed["data"]), snapshot(installed["cache"])
    with pytest.raises(
        MetabenchError, match=rf"member {name} is 1,048,577 bytes, over the 1 MiB limit"
    ) as caught:
        import_data(source, installed["data"], installed["cache"], expectations=SMALL)
    assert "\n" not in str(caught.value) and "metabench data download" in str(caught.value)
    assert (snapshot(installed["data"]), snapshot(installed["cache"])) == before


# --- checkpoints -------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = {"weights": torch.arange(4096, dtype=torch.float32), "step": torch.tensor(7)}
    path = tmp_path / RUN_ID / "checkpoint.pt"
    save_checkpoint(path, state)
    return path, state


def test_a_checkpoint_round_trips(saved: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = saved
    loaded = load_checkpoint(path)
    assert loaded is not None and loaded.keys() == state.keys()
    assert all(loaded[key].equal(value) for key, value in state.items())
    assert load_checkpoint(path.with_name("absent.pt")) is None


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("flip", r"is damaged \(its content does not match the sha256 written with it\)"),
        ("truncate", r"is damaged"),
        ("old format", r"is not a format-2 metabench checkpoint"),
        ("empty", r"is not a format-2 metabench checkpoint"),
    ],
)
def test_a_bad_checkpoint_is_refused_in_one_line(
    saved: tuple[Path, dict[str, torch.Tensor]], damage: str, match: str
) -> None:
    path, state = saved
    blob = path.read_bytes()
    if damage == "flip":  # in the middle of the weights: torch.load alone would return other numbers
        middle = len(blob) // 2
        path.write_bytes(blob[:middle] + bytes([blob[middle] ^ 0x01]) + blob[middle + 1 :])
    elif damage == "truncate":
        path.write_bytes(blob[: len(blob) - 100])
    elif damage == "old format":  # what CHECKPOINT_FORMAT 1 wrote: a bare torch.save
        torch.save({"format": 1, **state}, path)
    else:
        path.write_bytes(b"")
    with pytest.raises(MetabenchError, match=match) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and message.endswith(RESTART)


@pytest.mark.parametrize("run_id", ["", "../../outside", "/home/someone/thesis", f"{RUN_ID}/..", "a b"])
def test_checkpoint_paths_come_only_from_run_ids(run_id: str) -> None:
    with pytest.raises(MetabenchError, match=r"no checkpoint for this run: .* is not a run id"):
        checkpoint_path(run_id)


def test_a_checkpoint_folder_linked_elsewhere_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METABENCH_HOME", str(tmp_path / "home"))
    assert checkpoint_path(RUN_ID) == tmp_path / "home" / "checkpoints" / RUN_ID / "checkpoint.pt"
    (tmp_path / "home" / "checkpoints").mkdir(parents=True)
    (tmp_path / "home" / "checkpoints" / RUN_ID).symlink_to(tmp_path)
    with pytest.raises(MetabenchError, match=r"leads outside .*checkpoints; remove the link and retry"):
        checkpoint_path(RUN_ID)
