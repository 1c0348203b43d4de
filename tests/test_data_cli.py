"""`metabench data ...` and `metabench bench sampler`: output, JSON, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_data_fakes import build_fake_omniglot
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.data import sources
from metabench.data.archive import file_md5
from metabench.data.cache_index import cache_folder

runner = CliRunner()


@pytest.fixture
def fake_official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake zips whose md5s are made 'official', and a private METABENCH_HOME for their cache."""
    zips = build_fake_omniglot(tmp_path / "source", runs=False)
    for name, path in zips.items():
        monkeypatch.setitem(
            sources.SOURCES, name, dataclasses.replace(sources.SOURCES[name], official_md5=file_md5(path))
        )
    monkeypatch.setenv("METABENCH_HOME", str(tmp_path / "home"))
    return tmp_path


def test_info_on_the_real_data(omniglot_dir: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data", str(omniglot_dir)])
    assert result.exit_code == 0, result.output
    assert "32,460 images, 1,623 characters, 50 alphabets" in result.output
    assert "background" in result.output and "20 runs" in result.output
    result = runner.invoke(app, ["data", "info", "--json"])  # METABENCH_DATA points at the same zips
    report = json.loads(result.stdout)
    assert report["totals"] == {"alphabets": 50, "characters": 1623, "images": 32460}
    assert report["sets"]["evaluation"]["characters"] == 659 and report["data_dir"] == str(omniglot_dir)


def test_splits_counts_every_protocol_on_the_real_data(omniglot_dir: Path) -> None:
    result = runner.invoke(app, ["data", "splits", "--json", "--data", str(omniglot_dir)])
    assert result.exit_code == 0, result.output
    sides = {
        row["protocol"]: [
            (row[side]["classes"], row[side]["characters"]) for side in ("train", "val", "test")
        ]
        for row in json.loads(result.stdout)
    }
    assert sides["vinyals"] == [(4112, 1028), (688, 172), (1692, 423)]  # 4 rotations of each character
    assert sides["lake"] == sides["lake-within"] == [(813, 813), (151, 151), (659, 659)]  # 813 + 151 = 964
    assert sides["lake-runs"][2] == (400, 200)  # 20 runs x 20 classes, drawn from 200 characters
    table = runner.invoke(app, ["data", "splits"])
    assert table.exit_code == 0 and "4,112 / 1,028 / 33" in table.output and "lake-runs" in table.output


def test_splits_without_data_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "splits", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "no Omniglot data in" in result.output and "metabench data import PATH" in result.output
    assert "Traceback" not in result.output


def test_info_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data", str(tmp_path / "nothing")])
    assert result.exit_code == 0
    assert "metabench data download" in " ".join(result.output.split())
    report = json.loads(runner.invoke(app, ["data", "info", "--data", str(tmp_path), "--json"]).stdout)
    assert not report["installed"] and report["sets"]["background"]["present"] is False


def test_import_then_verify_then_mend(fake_official: Path) -> None:
    data = fake_official / "data"
    result = runner.invoke(app, ["data", "import", str(fake_official / "source"), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "verified by official-md5" in result.output and (data / "images_background.zip").is_file()
    result = runner.invoke(app, ["data", "verify", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["cache"]["status"] == "current"
    tensor = next(cache_folder().glob("*.pt"))
    blob = bytearray(tensor.read_bytes())
    blob[-2000:-1000] = bytes(1000)  # damage the pixels, not the file's structure
    tensor.write_bytes(bytes(blob))
    result = runner.invoke(app, ["data", "info", "--data", str(data)])
    assert result.exit_code == 0 and "(damaged)" in result.output and "metabench data verify" in result.output
    result = runner.invoke(app, ["data", "verify", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "cache: rebuilt (it was damaged: omniglot28-" in result.output
    result = runner.invoke(app, ["data", "info", "--data", str(data), "--json"])
    assert json.loads(result.stdout)["cache"]["status"] == "current"


def test_import_errors_are_one_line(fake_official: Path) -> None:
    result = runner.invoke(app, ["data", "import", str(fake_official / "missing")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    bad = fake_official / "source" / "images_evaluation.zip"
    bad.write_bytes(bad.read_bytes()[:500])
    result = runner.invoke(
        app, ["data", "import", str(fake_official / "source"), "--data", str(fake_official / "d")]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "images_evaluation.zip is not a readable zip" in result.output
    assert not (fake_official / "d").exists()


def test_verify_without_data_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "verify", "--data", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error: no Omniglot data in")


def test_bench_sampler_rejects_an_unknown_device() -> None:
    result = runner.invoke(app, ["bench", "sampler", "--device", "tpu"])
    assert result.exit_code == 1 and "unknown device 'tpu'" in result.output
