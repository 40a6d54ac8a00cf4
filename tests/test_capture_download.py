"""Download from a source repository, verify by git blob SHA-1, derive the course copy.

Every test runs against a loopback HTTP server (127.0.0.1) standing in for GitHub's raw file
host; it serves a small generated repository with the MicroPasts layout (photos/, masks/,
other/ with a PhotoScan XML and a Bundler .out, README.md, LICENSE.md). The test computes the
blob SHA-1s itself and writes its own list of source files and manifest. No test touches the
internet: the one that checks the real URLs replaces urlopen.
"""

import functools
import hashlib
import http.server
import io
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from splatcourse import cli
from splatcourse.capture import COURSE_CAPTURE, load_capture
from splatcourse.capture.derive import RECORD
from splatcourse.capture.download import (
    CaptureDownloadError,
    Http,
    InterruptedDownload,
    download_capture,
    main,
)
from splatcourse.capture.manifest import CorruptFile, MissingFile, TruncatedFile, get_entry

NAME = "toy"
PHOTOS = ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG", "IMG_0004.JPG"]  # 0004: no pose
FAST = Http(timeout=5.0, retries=2, backoff=0.0)


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def look_at_origin(angle: float) -> np.ndarray:
    """[4, 4] camera-to-world, OpenCV axes, 2 units from the origin, looking at it."""
    eye = np.array([2 * np.sin(angle), 0.3, -2 * np.cos(angle)])
    z = -eye / np.linalg.norm(eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    T[:3, 3] = eye
    return T


def photoscan_xml(poses: dict[str, np.ndarray]) -> bytes:
    cams = "".join(
        f'<camera id="{i}" label="{label}" sensor_id="0" enabled="true">'
        f"<transform>{' '.join(f'{v:.12g}' for v in T.ravel())}</transform></camera>"
        for i, (label, T) in enumerate(poses.items())
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><document version="1.1.0"><chunk><sensors>'
        '<sensor id="0" label="toy" type="frame"><resolution width="160" height="120"/>'
        '<calibration type="frame" class="adjusted"><resolution width="160" height="120"/>'
        "<fx>150</fx><fy>150</fy><cx>80</cx><cy>60</cy></calibration></sensor></sensors>"
        f"<cameras>{cams}</cameras></chunk></document>"
    ).encode()


def bundler_out(poses: dict[str, np.ndarray]) -> bytes:
    """The same cameras in Bundler's convention, and three points near the origin."""
    lines = ["# Bundle file v0.3", f"{len(poses)} 3"]
    for T in poses.values():
        V = np.linalg.inv(T)
        R, t = np.diag([1.0, -1.0, -1.0]) @ V[:3, :3], np.diag([1.0, -1.0, -1.0]) @ V[:3, 3]
        lines += ["150 0 0", *(" ".join(f"{v:.12g}" for v in row) for row in R)]
        lines.append(" ".join(f"{v:.12g}" for v in t))
    for p in ([0, 0, 0], [0.05, 0, 0], [0, 0.05, 0]):
        lines += [" ".join(map(str, p)), "200 100 50", "1 0 0 0.0 0.0"]
    return ("\n".join(lines) + "\n").encode()


def generated_repository() -> dict[str, bytes]:
    """A small repository with the MicroPasts layout: path -> content."""
    rng = np.random.default_rng(0)
    files = {"README.md": b"# Toy axe\nLicense: CC-BY\n", "LICENSE.md": b"Attribution 4.0\n"}
    for label in PHOTOS:
        noise = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)  # big enough to cut
        files[f"photos/{label}"] = jpeg(Image.fromarray(noise))
        mask = Image.new("L", (160, 120))
        ImageDraw.Draw(mask).ellipse((40, 25, 120, 95), fill=255)
        ImageDraw.Draw(mask).rectangle((0, 0, 30, 30), fill=135)  # above the threshold (127)
        ImageDraw.Draw(mask).rectangle((130, 0, 159, 30), fill=120)  # below it
        files[f"masks/{Path(label).stem}_mask.JPG"] = jpeg(mask)
    poses = {label: look_at_origin(a) for label, a in zip(PHOTOS[:3], (0.0, 0.4, 0.8))}
    files["other/toy_cameras.xml"] = photoscan_xml(poses)
    files["other/toy_cameras.out"] = bundler_out(poses)
    return dict(sorted(files.items()))


@pytest.fixture(scope="module")
def repository() -> dict[str, bytes]:
    return generated_repository()


@pytest.fixture
def manifest(tmp_path, repository) -> Path:
    """A manifest with one capture and its own list of source files (blob SHA-1s computed
    here); the size of the last photo is 'unknown', as for two real ones."""
    rows = ["# toy repository", "# path\tblob\tsize"]
    for path, data in repository.items():
        size = "unknown" if path == f"photos/{PHOTOS[-1]}" else str(len(data))
        rows.append(f"{path}\t{blob_sha1(data)}\t{size}")
    (tmp_path / "upstream").mkdir()
    (tmp_path / "upstream" / "toy.tsv").write_text("\n".join(rows) + "\n")
    entry = {
        "title": "toy capture",
        "source_url": "https://github.invalid/toy",
        "source_repo": "someone/toy",
        "source_commit": "0123456789abcdef0123456789abcdef01234567",
        "raw_url_template": "http://127.0.0.1:9/{repo}/{commit}/{path}",  # never used
        "source_files": "upstream/toy.tsv",
        "derive": {"image_width": 80, "jpeg_quality": 90, "mask_threshold": 127},
        "licence": "CC BY 4.0",
        "licence_url": "https://creativecommons.org/licenses/by/4.0/",
        "attribution": "Toy axe by nobody",
        "notes": ["a generated repository"],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"captures": {NAME: entry}}))
    return path


class Upstream:
    """What the loopback server serves and how it misbehaves.

    faults[path] is a list consumed one per request: "hang-up" (close without answering),
    an int HTTP status (e.g. 503), or ("cut", n) (announce the whole answer, send n bytes,
    close)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.faults: dict[str, list] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


class Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, upstream: Upstream, **kwargs):
        self.upstream = upstream
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        up = self.upstream
        path = urllib.parse.unquote(self.path.lstrip("/"))
        rng = self.headers.get("Range")
        up.requests.append((path, rng))
        fault = up.faults[path].pop(0) if up.faults.get(path) else None
        if fault == "hang-up":
            self.close_connection = True
            return
        if isinstance(fault, int):
            return self.send_error(fault)
        if path not in up.files:
            return self.send_error(404)
        data = up.files[path]
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        if start >= len(data) and rng:
            return self.send_error(416)
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: fault[1]] if fault else body)


@pytest.fixture
def upstream(repository):
    """(Upstream state, base URL) of a loopback server for the generated repository."""
    up = Upstream(repository)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, upstream=up)
    )
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield up, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def fetch(manifest, url, tmp_path, http=FAST, progress=False) -> Path:
    return download_capture(
        NAME,
        dest=tmp_path / "captures",
        base_url=url,
        manifest=manifest,
        http=http,
        progress=progress,
    )


def originals(tmp_path) -> Path:
    return tmp_path / "cache" / NAME / "originals"


def assert_nothing_unverified(tmp_path, repository):
    """Every file under a real name in the cache is byte-for-byte the original; no derived
    copy exists unless every original is there."""
    cache = originals(tmp_path)
    real = [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".part"]
    for p in real:
        assert p.read_bytes() == repository[p.relative_to(cache).as_posix()], p
    if len(real) < len(repository):
        assert not (tmp_path / "captures" / NAME).exists()


def test_download_verifies_derives_and_the_loader_reads_it(
    manifest, upstream, repository, tmp_path, monkeypatch, capsys
):
    _, url = upstream
    folder = fetch(manifest, url, tmp_path, progress=True)
    assert folder == tmp_path / "captures" / NAME
    assert "100%" in capsys.readouterr().err  # the byte progress bar ran to the end
    for path, data in repository.items():
        assert (originals(tmp_path) / path).read_bytes() == data
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.tmp"))

    # the course layout, as in the shared copy
    for label in PHOTOS:
        with Image.open(folder / "images" / label) as im:
            assert (im.format, im.size) == ("JPEG", (80, 60))
        with Image.open(folder / "masks" / f"{Path(label).stem}_mask.png") as m:
            assert m.format == "PNG" and m.size == (80, 60)
            assert set(np.unique(np.asarray(m))) == {0, 255}
            assert (m.getpixel((7, 7)), m.getpixel((72, 7)), m.getpixel((40, 30))) == (255, 0, 255)
    # a photo is Pillow's LANCZOS resize saved at JPEG quality 90, nothing else
    with Image.open(io.BytesIO(repository["photos/IMG_0002.JPG"])) as im:
        expected = io.BytesIO()
        im.resize((80, 60), Image.Resampling.LANCZOS).save(expected, "JPEG", quality=90)
    assert (folder / "images" / "IMG_0002.JPG").read_bytes() == expected.getvalue()
    for copied, original in [
        ("README.original.md", "README.md"),
        ("LICENSE.md", "LICENSE.md"),
        ("other/toy_cameras.xml", "other/toy_cameras.xml"),
    ]:
        assert (folder / copied).read_bytes() == repository[original]
    assert "Toy axe by nobody" in (folder / "ATTRIBUTION.md").read_text()
    assert "0123456789abcdef0123456789abcdef01234567" in (folder / "SOURCE.md").read_text()

    # the record: every derived file, its sha256 and the blob it came from
    record = json.loads((folder / RECORD).read_text())
    assert record["parameters"]["image_width"] == 80 and record["parameters"]["resample"]
    rows = {r["path"]: r for r in record["files"]}
    assert set(rows) == {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != RECORD
    }
    for r in rows.values():
        assert hashlib.sha256((folder / r["path"]).read_bytes()).hexdigest() == r["sha256"]
    assert rows["images/IMG_0002.JPG"]["source_blob_sha1"] == blob_sha1(
        repository["photos/IMG_0002.JPG"]
    )
    assert rows["masks/IMG_0002_mask.png"]["source"] == "masks/IMG_0002_mask.JPG"

    # the loader reads it by name from the captures folder
    monkeypatch.setenv("SPLATCOURSE_CAPTURES_DIR", str(tmp_path / "captures"))
    cap = load_capture(NAME, verbose=False)
    assert cap.image_names == PHOTOS[:3] and (cap.width, cap.height) == (80, 60)
    assert len(cap.points) == 3 and "IMG_0004.JPG" in " ".join(cap.notes)


def test_a_second_run_only_verifies_and_repairs_what_changed(
    manifest, upstream, repository, tmp_path, capsys
):
    up, url = upstream
    folder = fetch(manifest, url, tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    n_requests = len(up.requests)
    fetch(manifest, url, tmp_path)
    assert len(up.requests) == n_requests  # nothing downloaded
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == stamps  # nothing rewritten
    assert "0 file(s) made" in capsys.readouterr().out

    (folder / "masks" / "IMG_0003_mask.png").unlink()
    edited = originals(tmp_path) / "photos" / "IMG_0001.JPG"
    edited.write_bytes(b"edited" + edited.read_bytes()[6:])  # same size, other content
    fetch(manifest, url, tmp_path)
    out = capsys.readouterr().out
    assert "photos/IMG_0001.JPG: corrupt: git blob SHA-1" in out and "fetching it again" in out
    assert up.ranges("photos/IMG_0001.JPG") == [None, None]
    assert edited.read_bytes() == repository["photos/IMG_0001.JPG"]
    assert (folder / "masks" / "IMG_0003_mask.png").is_file()
    assert "1 file(s) made" in out  # the mask; images/IMG_0001.JPG came from the same blob


def test_interrupted_download_is_named_keeps_its_part_and_resumes(
    manifest, upstream, repository, tmp_path
):
    up, url = upstream
    path = "photos/IMG_0002.JPG"
    up.faults[path] = [("cut", 700)] * (FAST.retries + 1)  # every try ends after 700 bytes
    with pytest.raises(CaptureDownloadError) as err:
        fetch(manifest, url, tmp_path)
    (problem,) = err.value.problems
    assert isinstance(problem, InterruptedDownload) and problem.path == path
    assert f"{path}: interrupted: connection closed after 2100 bytes" in str(err.value)
    assert err.value.not_attempted == 2  # the next photos were not tried
    part = originals(tmp_path) / (path + ".part")
    assert part.read_bytes() == repository[path][:2100]
    assert up.ranges(path) == [None, "bytes=700-", "bytes=1400-"]
    assert_nothing_unverified(tmp_path, repository)

    fetch(manifest, url, tmp_path)  # the server is fine again: the run resumes
    assert up.ranges(path)[-1] == "bytes=2100-"
    assert (originals(tmp_path) / path).read_bytes() == repository[path]
    assert not part.exists()


def test_a_flaky_server_is_retried_with_backoff(manifest, upstream, repository, tmp_path):
    up, url = upstream
    up.faults["photos/IMG_0001.JPG"] = ["hang-up", 503]
    up.faults["photos/IMG_0003.JPG"] = [("cut", 1000)]
    up.faults[f"photos/{PHOTOS[-1]}"] = [("cut", 500)]  # unknown size: resumed all the same
    fetch(manifest, url, tmp_path, http=Http(timeout=5.0, retries=2, backoff=0.01))
    assert up.ranges("photos/IMG_0001.JPG") == [None, None, None]
    assert up.ranges("photos/IMG_0003.JPG") == [None, "bytes=1000-"]
    assert up.ranges(f"photos/{PHOTOS[-1]}") == [None, "bytes=500-"]
    assert_nothing_unverified(tmp_path, repository)
    assert (tmp_path / "captures" / NAME / RECORD).is_file()


def test_truncated_corrupt_and_missing_files_are_named_and_not_kept(
    manifest, upstream, repository, tmp_path
):
    up, url = upstream
    up.files["photos/IMG_0001.JPG"] = repository["photos/IMG_0001.JPG"][:-100]  # short
    good = repository["masks/IMG_0002_mask.JPG"]
    up.files["masks/IMG_0002_mask.JPG"] = good[:50] + bytes([good[50] ^ 0xFF]) + good[51:]
    up.files[f"photos/{PHOTOS[-1]}"] = repository[f"photos/{PHOTOS[-1]}"][:-1]  # size unknown
    del up.files["other/toy_cameras.out"]
    with pytest.raises(CaptureDownloadError) as err:
        fetch(manifest, url, tmp_path)
    kinds = {p.path: type(p) for p in err.value.problems}
    assert kinds == {
        "photos/IMG_0001.JPG": TruncatedFile,
        "masks/IMG_0002_mask.JPG": CorruptFile,
        f"photos/{PHOTOS[-1]}": CorruptFile,
        "other/toy_cameras.out": MissingFile,
    }
    msg = str(err.value)
    size = len(repository["photos/IMG_0001.JPG"])
    assert f"photos/IMG_0001.JPG: truncated: {size - 100} bytes, expected {size}" in msg
    assert "masks/IMG_0002_mask.JPG: corrupt: git blob SHA-1" in msg
    assert "other/toy_cameras.out: missing: not on the server (HTTP 404)" in msg
    assert not list(tmp_path.rglob("*.part"))
    assert_nothing_unverified(tmp_path, repository)


def test_a_stale_part_that_is_not_a_prefix_is_fetched_again(
    manifest, upstream, repository, tmp_path
):
    up, url = upstream
    path = "photos/IMG_0002.JPG"
    part = originals(tmp_path) / (path + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not the start of that photo")
    fetch(manifest, url, tmp_path)
    assert up.ranges(path) == [f"bytes={len(b'not the start of that photo')}-", None]
    assert (originals(tmp_path) / path).read_bytes() == repository[path]


def test_from_dir_installs_from_a_local_clone_with_the_same_checks(
    manifest, repository, tmp_path, capsys
):
    clone = tmp_path / "clone"
    for path, data in repository.items():
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).write_bytes(data)
    args = ["--from-dir", str(clone), "--manifest", str(manifest), "--quiet"]
    assert main([NAME, "--dest", str(tmp_path / "a" / "captures"), *args]) == 0
    assert (tmp_path / "a" / "captures" / NAME / "images" / "IMG_0001.JPG").is_file()
    (clone / "README.md").write_bytes(repository["README.md"].upper())  # same size
    assert main([NAME, "--dest", str(tmp_path / "b" / "captures"), *args]) == 1
    assert "README.md: corrupt: " in capsys.readouterr().err
    assert not (tmp_path / "b" / "cache" / NAME / "originals" / "README.md").exists()


def test_an_unreachable_server_stops_the_run_with_a_named_error(manifest, tmp_path):
    with pytest.raises(CaptureDownloadError) as err:
        fetch(manifest, "http://127.0.0.1:9/", tmp_path, http=Http(5.0, retries=1, backoff=0))
    (problem,) = err.value.problems
    assert isinstance(problem, InterruptedDownload) and problem.path == "LICENSE.md"
    assert "cannot connect" in str(problem) and "gave up after 2 tries" in str(problem)
    assert err.value.not_attempted > 0


def test_unknown_capture_name_lists_the_known_ones(manifest):
    with pytest.raises(KeyError, match="toy"):
        download_capture("nope", manifest=manifest, progress=False)


def test_the_cli_fetches_github_raw_files_at_the_pinned_commit(tmp_path, monkeypatch, capsys):
    """`splatcourse download NAME` with no options asks GitHub for the pinned commit's files
    (urlopen is replaced: nothing leaves this machine)."""
    asked = []

    def offline(request, timeout):
        asked.append(request.full_url)
        raise urllib.error.URLError("offline in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("SPLATCOURSE_DATA_URL", raising=False)
    dest = tmp_path / "captures"
    assert cli.main(["download", COURSE_CAPTURE, "--dest", str(dest), "--retries", "0"]) == 1
    entry = get_entry(COURSE_CAPTURE)
    first = entry.files()[0].path
    assert asked == [
        "https://raw.githubusercontent.com/MicroPasts/socketed-axe-version2/"
        f"ff6a818b226c73018ce331e38fd2ceea1aa1a0e9/{first}"
    ]
    assert f"{first}: interrupted: cannot connect" in capsys.readouterr().err
    assert entry.file_url("a b/c.JPG").endswith("/a%20b/c.JPG")
    assert not (dest / COURSE_CAPTURE).exists()
