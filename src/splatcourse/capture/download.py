"""Download a capture's original files from its source repository, verify each one by its git
blob SHA-1, and derive the course copy from them.

    splatcourse download socketed_axe_arreton          (also: make download)
    python -m splatcourse.capture.download socketed_axe_arreton [--dest DIR] [--cache DIR]
    python -m splatcourse.capture.download socketed_axe_arreton --from-dir PATH/TO/CLONE

The originals come from the repository and commit pinned in `data/manifest.json` (GitHub's raw
file URLs), listed with their git blob SHA-1 and size in `data/upstream/`. They are kept in
`data/cache/NAME/originals` (next to the captures folder); the course copy goes to
`data/captures/NAME` (see `splatcourse.capture.derive`).

Each original is written to `FILE.part`, checked (size, then git blob SHA-1) and only then
renamed to its real name, so nothing unverified ever sits under a real name. Connection
errors are retried with backoff, resuming the `.part` with an HTTP Range request; an
interrupted run resumes the same way when run again. Missing (HTTP 404), truncated, corrupt
and interrupted files are reported by path and kind at the end. A run with everything in
place only re-verifies the originals and the record of the course copy.

Used by: `splatcourse download` and `make download`, for lesson 5 and exercise 4's axe.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..paths import ENV_DATA_URL, captures_dir
from .derive import derive_capture, plan
from .manifest import CaptureEntry, FileEntry, FileProblem, MissingFile, check_file, get_entry

CHUNK = 1 << 16
USER_AGENT = "splatcourse-download"


class InterruptedDownload(FileProblem):
    kind = "interrupted"


class CaptureDownloadError(RuntimeError):
    """Some originals could not be installed; `problems` holds one FileProblem per file."""

    def __init__(self, name: str, problems: list[FileProblem], not_attempted: int = 0):
        self.problems = problems
        self.not_attempted = not_attempted
        lines = [str(p) for p in problems]
        if not_attempted:
            lines.append(f"({not_attempted} more files not attempted; run again to resume)")
        super().__init__(
            f"capture {name!r}: {len(problems)} file(s) not installed, nothing derived:\n  "
            + "\n  ".join(lines)
        )


class _Transient(Exception):
    """A connection problem worth retrying (the .part keeps what arrived)."""


class _CannotResume(_Transient):
    """The server will not continue this .part: the next try fetches the whole file."""


@dataclass(frozen=True)
class Http:
    """How patient the downloader is: per-request timeout, retries, first backoff (doubled)."""

    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0


class _Progress:
    """One byte counter over the whole download. Files of unknown size join the total when
    the server first says how big they are."""

    def __init__(self, todo: list[FileEntry], already: int, enabled: bool, desc: str):
        self.bar = tqdm(
            total=sum(f.size or 0 for f in todo),
            initial=already,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not enabled or not todo,
            desc=desc,
        )
        self._sized = {f.path for f in todo if f.size is not None}

    def add(self, n: int) -> None:
        self.bar.update(n)

    def learn_size(self, path: str, size: int | None) -> None:
        if size is not None and path not in self._sized:
            self._sized.add(path)
            self.bar.total += size
            self.bar.refresh()


def originals_dir(dest: Path, name: str) -> Path:
    """Where the originals are kept: `cache/NAME/originals` next to the captures folder."""
    return dest.parent / "cache" / name / "originals"


def _part(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _answer_range(resp) -> tuple[int | None, int | None]:
    """(first byte, full size) of a 206 answer: "Content-Range: bytes START-END/TOTAL"."""
    spec = resp.headers.get("Content-Range", "").removeprefix("bytes ")
    first, _, total = spec.partition("/")
    start = first.split("-")[0]
    return (
        int(start) if start.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def _open(url: str, have: int, f: FileEntry, timeout: float):
    """The server's answer for `url` from byte `have` on. 404 and other 4xx are final
    (MissingFile); connection errors, 5xx, 429 and 416 are worth another try."""
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:
            raise _CannotResume(f"server cannot resume at byte {have} (HTTP 416)") from e
        if e.code == 429 or e.code >= 500:
            raise _Transient(f"server error (HTTP {e.code})") from e
        what = "not on the server" if e.code == 404 else "refused by the server"
        raise MissingFile(f.path, f"{what} (HTTP {e.code}) at {url}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Transient(f"cannot connect ({getattr(e, 'reason', e)})") from e


def _restart(part: Path, progress: _Progress) -> None:
    progress.add(-_size(part))
    part.unlink(missing_ok=True)


def _download_once(url: str, part: Path, f: FileEntry, progress: _Progress, timeout: float):
    """Append the rest of `url` to `part`, or write it from the start when the server cannot
    resume. Raises _Transient when the connection fails or closes early."""
    have = _size(part)
    try:
        resp = _open(url, have, f, timeout)
    except _CannotResume:
        _restart(part, progress)
        raise
    with resp:
        start, full = _answer_range(resp) if resp.status == 206 else (0, None)
        if start != (have if resp.status == 206 else 0):
            _restart(part, progress)
            raise _CannotResume(f"server answered from byte {start}, asked for byte {have}")
        resumed = resp.status == 206
        if not resumed:
            _restart(part, progress)  # a whole file (the server ignored the Range header)
        length = resp.headers.get("Content-Length")
        progress.learn_size(f.path, full or (int(length) if length and not resumed else None))
        got = 0
        with open(part, "ab") as out:
            try:
                while block := resp.read(CHUNK):
                    out.write(block)
                    got += len(block)
                    progress.add(len(block))
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection lost after {_size(part)} bytes ({e})") from e
    if length is not None and got < int(length):
        raise _Transient(f"connection closed after {_size(part)} bytes")


def _download(url: str, part: Path, f: FileEntry, progress: _Progress, http: Http) -> None:
    """_download_once, retried with exponential backoff; InterruptedDownload when it gives up."""
    for attempt in range(http.retries + 1):
        try:
            return _download_once(url, part, f, progress, http.timeout)
        except _Transient as e:
            reason = e
        if attempt < http.retries:
            time.sleep(http.backoff * 2**attempt)
    raise InterruptedDownload(
        f.path,
        f"{reason} from {url}; gave up after {http.retries + 1} tries, {_size(part)} bytes "
        f"kept in {part} (run again to resume)",
    )


def _install(part: Path, target: Path, f: FileEntry) -> FileProblem | None:
    """Rename `part` to `target` if it is the original, else delete it and say why."""
    problem = check_file(part, f)
    if problem is not None:
        part.unlink(missing_ok=True)  # never keep bytes that failed the check
        return problem
    os.replace(part, target)  # atomic on one file system
    return None


def _fetch(f: FileEntry, target: Path, url: str, progress: _Progress, http: Http) -> None:
    """Download, verify and install one original; raises its FileProblem when it cannot."""
    part = _part(target)
    from_earlier_run = part.exists()
    _download(url, part, f, progress, http)
    got = _size(part)
    problem = _install(part, target, f)
    if problem is not None and from_earlier_run:  # that .part may not be a prefix of this file
        progress.add(-got)
        _download(url, part, f, progress, http)
        problem = _install(part, target, f)
    if problem is not None:
        raise problem


def _copy(f: FileEntry, target: Path, from_dir: Path, progress: _Progress) -> None:
    """Install one original from a local copy of the repository, with the same check."""
    src = from_dir / f.path
    if not src.is_file():
        raise MissingFile(f.path, f"not in {from_dir}")
    progress.learn_size(f.path, src.stat().st_size)
    part = _part(target)
    shutil.copyfile(src, part)
    progress.add(_size(part))
    problem = _install(part, target, f)
    if problem is not None:
        raise problem


Installer = Callable[[FileEntry, Path, _Progress], None]


def _installer(
    entry: CaptureEntry, base_url: str | None, from_dir: str | Path | None, http: Http
) -> tuple[str, Installer]:
    """(where the originals come from, function installing one of them)."""
    if from_dir is not None:
        local = Path(from_dir)
        return str(local), lambda f, target, progress: _copy(f, target, local, progress)
    base = base_url or os.environ.get(ENV_DATA_URL)

    def url_of(path: str) -> str:
        if base:
            return base.rstrip("/") + "/" + urllib.parse.quote(path)
        return entry.file_url(path)

    where = base or entry.file_url("")
    return where, lambda f, target, progress: _fetch(f, target, url_of(f.path), progress, http)


def _unverified(files: list[FileEntry], originals: Path) -> list[FileEntry]:
    """The originals still to fetch. A file under its real name that fails the check (edited,
    or another version) is removed; a `.part` that is already complete and right is installed."""
    todo = []
    for f in files:
        target = originals / f.path
        if target.exists():
            problem = check_file(target, f)
            if problem is None:
                continue
            print(f"  {problem}: removed, fetching it again")
            target.unlink()
        part = _part(target)
        complete = part.exists() and (f.size is None or _size(part) >= f.size)
        if not (complete and _install(part, target, f) is None):
            todo.append(f)
    return todo


def _install_all(
    todo: list[FileEntry], originals: Path, install: Installer, progress: _Progress
) -> tuple[list[FileProblem], int]:
    """Install every file of `todo`; returns the problems and how many files were not tried
    (an interrupted download stops the run: the server or the network is not answering)."""
    problems: list[FileProblem] = []
    for k, f in enumerate(todo):
        target = originals / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            install(f, target, progress)
        except InterruptedDownload as e:
            problems.append(e)
            return problems, len(todo) - k - 1
        except FileProblem as e:
            problems.append(e)
    return problems, 0


def download_capture(
    name: str,
    dest: str | Path | None = None,
    base_url: str | None = None,
    from_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    cache: str | Path | None = None,
    http: Http | None = None,
    progress: bool = True,
) -> Path:
    """Install the originals of capture `name` into `cache` (default: `cache/NAME/originals`
    next to `dest`), verified, then derive the course copy into `dest/NAME` (default:
    data/captures/NAME) and return that folder.

    Originals come from `from_dir` (a local copy of the source repository), else `base_url`
    (a mirror with the repository's paths), else $SPLATCOURSE_DATA_URL, else the source
    repository at the pinned commit. Raises CaptureDownloadError naming every file that could
    not be installed; nothing is derived then."""
    entry = get_entry(name, manifest)
    http = http or Http()
    dest = Path(dest) if dest is not None else captures_dir()
    folder = dest / name
    originals = Path(cache) if cache is not None else originals_dir(dest, name)
    files = entry.files()
    course_files = plan(files)  # fails now, not after the download, if a file has no place
    todo = _unverified(files, originals)
    where, install = _installer(entry, base_url, from_dir, http)
    print(
        f"{entry.title}\n  originals: {len(files) - len(todo)} of {len(files)} verified in "
        f"{originals}; fetching {len(todo)} from {where}"
    )
    already = sum(_size(_part(originals / f.path)) for f in todo)
    progress_bar = _Progress(todo, already, progress, desc=name)
    with progress_bar.bar:
        problems, not_attempted = _install_all(todo, originals, install, progress_bar)
    if problems:
        raise CaptureDownloadError(name, problems, not_attempted)
    made = _derive(entry, originals, folder, len(course_files), progress)
    print(
        f"  course copy: {len(made)} file(s) made, the other {len(course_files) - len(made)} "
        f"up to date, in {folder}"
    )
    print(f"  licence: {entry.licence} ({entry.licence_url}); attribution: {entry.attribution}")
    return folder


def _derive(
    entry: CaptureEntry, originals: Path, folder: Path, n_files: int, progress: bool
) -> list[str]:
    with tqdm(
        total=n_files, unit="file", disable=not progress, desc="course copy", leave=False
    ) as bar:
        return derive_capture(entry, originals, folder, progress=lambda path: bar.update())


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (also `splatcourse download` and `make download`)."""
    ap = argparse.ArgumentParser(
        prog="splatcourse download",
        description="Download the original files of a course capture from its source "
        "repository at the commit pinned in data/manifest.json (GitHub raw files), verify each "
        "one by its git blob SHA-1 and size, and derive the course copy (downsampled photos, "
        "binarised PNG masks, camera files) that load_capture(NAME) reads. Run it again to "
        "resume an interrupted download; with everything in place it only re-verifies.",
    )
    ap.add_argument("name", help="capture name from data/manifest.json, e.g. socketed_axe_arreton")
    ap.add_argument(
        "--dest",
        help="folder that receives the course copy NAME/ "
        "(default: data/captures, or $SPLATCOURSE_CAPTURES_DIR)",
    )
    ap.add_argument(
        "--cache",
        help="folder for the original files "
        "(default: cache/NAME/originals next to the --dest folder)",
    )
    ap.add_argument(
        "--from-dir",
        help="take the originals from a local copy of the source "
        "repository (e.g. a git clone) instead, with the same checks",
    )
    ap.add_argument(
        "--base-url",
        help="take the originals from a mirror that serves the "
        f"repository's paths under this URL (or set ${ENV_DATA_URL})",
    )
    ap.add_argument("--manifest", help="manifest file (default: data/manifest.json)")
    ap.add_argument(
        "--retries",
        type=int,
        default=Http.retries,
        help=f"retries per file on connection errors (default {Http.retries})",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        download_capture(
            args.name,
            dest=args.dest,
            base_url=args.base_url,
            from_dir=args.from_dir,
            manifest=args.manifest,
            cache=args.cache,
            http=Http(retries=args.retries),
            progress=not args.quiet,
        )
    except (CaptureDownloadError, KeyError, FileNotFoundError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
