"""Downloads from a real HTTP server on 127.0.0.1: md5 checks, resuming a dropped transfer, whole installs."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_data_fakes import SMALL, build_fake_omniglot, runs_set, write_zip
from test_integrity import flip_mid_member

from metabench.data.cache import load_cache
from metabench.data.download import download_file, download_omniglot
from metabench.data.sources import SOURCES, SetSource
from metabench.errors import MetabenchError


@dataclass
class Behaviour:
    """What the server does: its files, how many requests to cut short, whether it honours Range."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: int = 0  # this many GETs send half the body, then close the connection
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class Handler(http.server.BaseHTTPRequestHandler):
    behaviour: Behaviour

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        behaviour = self.server.behaviour  # type: ignore[attr-defined]
        behaviour.requests.append((self.path, self.headers.get("Range")))
        body = behaviour.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and behaviour.honour_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if behaviour.cut_first > 0:
            behaviour.cut_first -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = behaviour  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


BODY = bytes(range(256)) * 2000  # 512 kB, several read blocks


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_matching_md5_lands_under_the_final_name(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    seen: list[tuple[str, int, int | None]] = []
    target = download_file(f"{url}/a.zip", tmp_path / "a.zip", md5(BODY), progress=lambda *a: seen.append(a))
    assert target.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]
    assert seen[-1] == ("a.zip", len(BODY), len(BODY))
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)


def test_a_wrong_md5_deletes_the_download(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    with pytest.raises(
        MetabenchError, match=r"a.zip: md5 .* differs from the official 0{32}; the download was"
    ):
        download_file(f"{url}/a.zip", tmp_path / "a.zip", "0" * 32, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_a_dropped_transfer_resumes_with_range(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    behaviour.cut_first = 1
    download_file(f"{url}/a.zip", tmp_path / "a.zip", md5(BODY), backoff=0)
    assert (tmp_path / "a.zip").read_bytes() == BODY
    assert behaviour.requests[0] == ("/a.zip", None)
    assert behaviour.requests[1][1] == f"bytes={len(BODY) // 2}-"  # asked only for the missing half
    assert len(behaviour.requests) == 2


def test_a_server_ignoring_range_restarts_from_zero(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    behaviour.cut_first = 1
    behaviour.honour_range = False
    download_file(f"{url}/a.zip", tmp_path / "a.zip", md5(BODY), backoff=0)
    assert (tmp_path / "a.zip").read_bytes() == BODY


def test_a_part_left_by_an_earlier_run_is_resumed(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    (tmp_path / "a.zip.part").write_bytes(BODY[:1000])
    download_file(f"{url}/a.zip", tmp_path / "a.zip", md5(BODY), backoff=0)
    assert (tmp_path / "a.zip").read_bytes() == BODY
    assert behaviour.requests == [("/a.zip", "bytes=1000-")]


def test_giving_up_keeps_the_part_for_next_time(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.files["a.zip"] = BODY
    behaviour.cut_first = 3
    with pytest.raises(MetabenchError, match=r"failed after 2 attempts .* it resumes from a.zip.part"):
        download_file(f"{url}/a.zip", tmp_path / "a.zip", md5(BODY), retries=1, backoff=0)
    assert not (tmp_path / "a.zip").exists()
    assert 0 < (tmp_path / "a.zip.part").stat().st_size < len(BODY)


def test_not_found_is_not_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    with pytest.raises(MetabenchError, match="answered HTTP 404"):
        download_file(f"{url}/missing.zip", tmp_path / "missing.zip", None, backoff=0)
    assert len(behaviour.requests) == 1 and list(tmp_path.iterdir()) == []


def test_download_installs_and_builds_the_cache(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    zips = build_fake_omniglot(tmp_path / "served")
    table = {}
    for name, path in zips.items():
        behaviour.files[path.name] = path.read_bytes()
        # The runs have no published md5 (as the real all_runs.zip): their structure is checked instead.
        table[name] = SetSource(
            name,
            path.name,
            SOURCES[name].root,
            f"{url}/{path.name}",
            None if name == "runs" else md5(path.read_bytes()),
        )
    behaviour.cut_first = 1  # the first file drops once on the way
    data, cache_dir = tmp_path / "data", tmp_path / "cache"
    report = download_omniglot(data, sources=table, cache_dir=cache_dir, expectations=SMALL, backoff=0)
    assert report.sets["background"]["verified_by"] == "content"  # these md5s are not the official ones
    assert report.sets["runs"]["source"] == f"{url}/all_runs.zip"
    assert all((data / path.name).read_bytes() == path.read_bytes() for path in zips.values())
    assert not list(data.glob("*.part")) and not list(data.glob("*.new"))
    assert load_cache(data, cache_dir, expectations=SMALL).images.shape == (6, 20, 28, 28)
    # A second download finds every file good and fetches nothing.
    count = len(behaviour.requests)
    download_omniglot(data, sources=table, cache_dir=cache_dir, expectations=SMALL, backoff=0)
    assert len(behaviour.requests) == count


def test_a_broken_runs_archive_is_not_kept(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    zips = build_fake_omniglot(tmp_path / "served")
    behaviour.files["all_runs.zip"] = b"not a zip at all" * 100
    table = {
        name: SetSource(
            name,
            path.name,
            SOURCES[name].root,
            f"{url}/{path.name}",
            None if name == "runs" else md5(path.read_bytes()),
        )
        for name, path in zips.items()
    }
    for name in ("background", "evaluation"):
        behaviour.files[zips[name].name] = zips[name].read_bytes()
    with pytest.raises(MetabenchError, match="all_runs.zip.new is not a readable zip"):
        download_omniglot(tmp_path / "data", sources=table, cache_dir=tmp_path / "cache", expectations=SMALL)
    assert (
        not (tmp_path / "data" / "all_runs.zip").exists()
        and not (tmp_path / "data" / "all_runs.zip.new").exists()
    )
    assert not (tmp_path / "cache").exists()


def _serve(behaviour: Behaviour, url: str, zips: dict[str, Path]) -> dict[str, SetSource]:
    """Serve the zips; the runs without an md5, as the real all_runs.zip, so their content is checked."""
    table = {}
    for name, path in zips.items():
        behaviour.files[path.name] = path.read_bytes()
        digest = None if name == "runs" else md5(path.read_bytes())
        table[name] = SetSource(name, path.name, SOURCES[name].root, f"{url}/{path.name}", digest)
    return table


def test_a_damaged_runs_archive_in_place_is_fetched_again(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    """Its central directory is intact, one image's bytes are not: only reading every member tells."""
    url, behaviour = server
    table = _serve(behaviour, url, build_fake_omniglot(tmp_path / "served"))
    data, cache_dir = tmp_path / "data", tmp_path / "cache"
    download_omniglot(data, sources=table, cache_dir=cache_dir, expectations=SMALL, backoff=0)
    flip_mid_member(data / "all_runs.zip")
    count = len(behaviour.requests)
    download_omniglot(data, sources=table, cache_dir=cache_dir, expectations=SMALL, backoff=0)
    assert [path for path, _ in behaviour.requests[count:]] == ["/all_runs.zip"]
    assert (data / "all_runs.zip").read_bytes() == behaviour.files["all_runs.zip"]


def test_a_runs_download_with_damaged_bytes_is_not_kept(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, behaviour = server
    zips = build_fake_omniglot(tmp_path / "served")
    member = flip_mid_member(zips["runs"])
    table = _serve(behaviour, url, zips)
    with pytest.raises(MetabenchError, match=rf"all_runs.zip.new: member {member} is corrupt"):
        download_omniglot(tmp_path / "data", sources=table, cache_dir=tmp_path / "cache", expectations=SMALL)
    assert not (tmp_path / "data" / "all_runs.zip").exists()
    assert not (tmp_path / "data" / "all_runs.zip.new").exists()


def test_the_download_command(
    server: tuple[str, Behaviour], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`metabench data download --dest` from the local server, whose files are made the official ones."""
    from typer.testing import CliRunner

    from metabench.cli.app import app
    from metabench.data import sources

    url, behaviour = server
    zips = build_fake_omniglot(tmp_path / "served", runs=False)
    for name, path in zips.items():
        behaviour.files[path.name] = path.read_bytes()
        source = SetSource(name, path.name, SOURCES[name].root, f"{url}/{path.name}", md5(path.read_bytes()))
        monkeypatch.setitem(sources.SOURCES, name, source)
    behaviour.files["all_runs.zip"] = b"missing on purpose"
    monkeypatch.setitem(sources.SOURCES, "runs", dataclasses.replace(SOURCES["runs"], url=f"{url}/gone.zip"))
    monkeypatch.setenv("METABENCH_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["data", "download", "--dest", str(tmp_path / "data")])
    assert result.exit_code == 1 and "answered HTTP 404" in result.output  # all_runs.zip is not served
    assert (tmp_path / "data" / "images_background.zip").is_file()  # the good files stay for next time
    # all_runs.zip has no published md5: its structure is checked, so serve a full-sized one (20 runs x 20).
    behaviour.files["gone.zip"] = write_zip(
        tmp_path / "all_runs.zip", runs_set(runs=20, ways=20)
    ).read_bytes()
    result = CliRunner().invoke(app, ["data", "download", "--dest", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sets"]["background"]["verified_by"] == "official-md5"
