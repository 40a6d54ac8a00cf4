"""Download by name and verify, against a loopback HTTP server (no test touches the internet)."""

import functools
import http.server
import json
import os
import shutil
import threading
from typing import ClassVar

import pytest

from splatcourse.capture import (
    COURSE_CAPTURE,
    CaptureDownloadError,
    download_capture,
    load_capture,
)
from splatcourse.capture.download import main
from splatcourse.capture.manifest import hash_folder
from splatcourse.paths import manifest_path, shared_data_dir

AXE = shared_data_dir() / COURSE_CAPTURE


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class RangeHandler(QuietHandler):
    """Honours "Range: bytes=N-" like a real mirror does (http.server ignores it)."""

    requests: ClassVar[list] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        RangeHandler.requests.append((self.path, rng))
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path):
            return super().do_GET()
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        with open(path, "rb") as f:
            data = f.read()[start:]
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def serve():
    """serve(folder, handler) -> base URL of a loopback HTTP server for that folder."""
    servers = []

    def start(folder, handler_cls=QuietHandler):
        handler = functools.partial(handler_cls, directory=str(folder))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def toy(tmp_path):
    """A three-file capture, its manifest, and a copy to serve."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "a.txt").write_text("alpha " * 100)
    (src / "images" / "b c.bin").write_bytes(bytes(range(256)) * 40)
    (src / "c.txt").write_text("gamma " * 50)
    entry = {
        "title": "toy",
        "source_url": "https://example.invalid/toy",
        "licence": "CC0",
        "attribution": "nobody",
        "base_url": "https://example.invalid/never-used/",
        "files": [f.__dict__ for f in hash_folder(src)],
    }
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"captures": {"toy": entry}}))
    served = tmp_path / "served"
    shutil.copytree(src, served)
    return src, served, manifest, tmp_path / "dest"


def test_download_verifies_and_is_idempotent(toy, serve):
    src, served, manifest, dest = toy
    url = serve(served)
    folder = download_capture("toy", dest=dest, base_url=url, manifest=manifest, progress=False)
    assert folder == dest / "toy"
    for p in ("a.txt", "images/b c.bin", "c.txt"):  # a space in a name is URL-quoted
        assert (folder / p).read_bytes() == (src / p).read_bytes()
    assert not list(folder.rglob("*.part"))
    shutil.rmtree(served)  # a second run needs nothing from the server
    download_capture("toy", dest=dest, base_url=url, manifest=manifest, progress=False)


def test_corrupt_missing_and_truncated_files_are_named(toy, serve):
    _, served, manifest, dest = toy
    data = bytearray((served / "a.txt").read_bytes())
    data[10] ^= 0xFF  # same size, different bytes
    (served / "a.txt").write_bytes(bytes(data))
    (served / "images" / "b c.bin").unlink()
    (served / "c.txt").write_text("gamma")
    url = serve(served)
    with pytest.raises(CaptureDownloadError) as err:
        download_capture("toy", dest=dest, base_url=url, manifest=manifest, progress=False)
    msg = str(err.value)
    assert "a.txt: sha256" in msg and "corrupt" in msg
    assert "images/b c.bin: missing on the server (HTTP 404)" in msg
    assert "c.txt: size 5 bytes, expected 300" in msg
    assert len(err.value.problems) == 3
    # nothing bad is installed and no partial files are left behind
    assert not (dest / "toy" / "a.txt").exists() and not (dest / "toy" / "c.txt").exists()
    assert not list((dest / "toy").rglob("*.part"))


def test_stale_part_file_does_not_corrupt_the_result(toy, serve):
    src, served, manifest, dest = toy
    (dest / "toy").mkdir(parents=True)
    (dest / "toy" / "a.txt.part").write_bytes(b"garbage from an earlier run")
    (dest / "toy" / "c.txt").write_text("an old, different c.txt")  # gets replaced
    download_capture("toy", dest=dest, base_url=serve(served), manifest=manifest, progress=False)
    assert (dest / "toy" / "a.txt").read_bytes() == (src / "a.txt").read_bytes()
    assert (dest / "toy" / "c.txt").read_bytes() == (src / "c.txt").read_bytes()


def test_interrupted_download_resumes_with_http_range(toy, serve):
    src, served, manifest, dest = toy
    full = (src / "images" / "b c.bin").read_bytes()
    (dest / "toy" / "images").mkdir(parents=True)
    (dest / "toy" / "images" / "b c.bin.part").write_bytes(full[:1000])  # a good prefix
    (dest / "toy" / "a.txt.part").write_bytes(b"not a prefix of a.txt")  # a bad one
    RangeHandler.requests.clear()
    download_capture(
        "toy", dest=dest, base_url=serve(served, RangeHandler), manifest=manifest, progress=False
    )
    assert (dest / "toy" / "images" / "b c.bin").read_bytes() == full
    assert (dest / "toy" / "a.txt").read_bytes() == (src / "a.txt").read_bytes()
    ranges = dict(RangeHandler.requests[::-1])  # first request per path
    assert ranges["/images/b%20c.bin"] == "bytes=1000-"
    # the bad prefix was tried, detected by its hash, and fetched again in full
    assert [r for p, r in RangeHandler.requests if p == "/a.txt"] == ["bytes=21-", None]


def test_from_dir_and_env_base_url(toy, serve, monkeypatch, capsys):
    src, served, manifest, dest = toy
    assert (
        main(
            [
                "toy",
                "--from-dir",
                str(src),
                "--dest",
                str(dest),
                "--manifest",
                str(manifest),
                "--quiet",
            ]
        )
        == 0
    )
    assert (dest / "toy" / "c.txt").is_file()
    monkeypatch.setenv("SPLATCOURSE_DATA_URL", serve(served))
    download_capture("toy", dest=dest / "other", manifest=manifest, progress=False)
    assert (dest / "other" / "toy" / "a.txt").is_file()
    (src / "c.txt").unlink()
    assert (
        main(
            [
                "toy",
                "--from-dir",
                str(src),
                "--dest",
                str(dest / "x"),
                "--manifest",
                str(manifest),
                "--quiet",
            ]
        )
        == 1
    )
    assert "c.txt: missing in" in capsys.readouterr().err


def test_unknown_name_lists_known_captures(toy):
    with pytest.raises(KeyError, match="toy"):
        download_capture("nope", manifest=toy[2], progress=False)


def test_unreachable_server_is_reported_per_file(toy):
    _, _, manifest, dest = toy
    with pytest.raises(CaptureDownloadError, match="a.txt: download failed"):
        download_capture(
            "toy",
            dest=dest,
            base_url="http://127.0.0.1:9/",
            manifest=manifest,
            progress=False,
            timeout=5,
        )


@pytest.mark.skipif(not AXE.is_dir(), reason=f"shared capture not found at {AXE}")
def test_download_the_real_capture_from_a_loopback_mirror(tmp_path, serve):
    served = tmp_path / "mirror"
    shutil.copytree(AXE, served)
    url = serve(served)
    folder = download_capture(COURSE_CAPTURE, dest=tmp_path / "dest", base_url=url, progress=False)
    cap = load_capture(folder, width=64, verbose=False)
    assert len(cap) == 48
    # now break the mirror: one corrupt photo, one missing mask
    photo = served / "images" / "IMG_8850.JPG"
    photo.write_bytes(photo.read_bytes()[:-1] + b"\x00")
    (served / "masks" / "IMG_8851_mask.png").unlink()
    with pytest.raises(CaptureDownloadError) as err:
        download_capture(COURSE_CAPTURE, dest=tmp_path / "dest2", base_url=url, progress=False)
    assert len(err.value.problems) == 2
    assert "images/IMG_8850.JPG: sha256" in str(err.value)
    assert "masks/IMG_8851_mask.png: missing on the server (HTTP 404)" in str(err.value)
    assert manifest_path().is_file()
