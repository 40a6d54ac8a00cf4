"""Download a capture listed in `data/manifest.json` and verify every file.

    python -m splatcourse.capture.download socketed_axe_arreton
    python -m splatcourse.capture.download socketed_axe_arreton --base-url URL --dest DIR
    python -m splatcourse.capture.download socketed_axe_arreton --from-dir PATH/TO/LOCAL/COPY

Files already present with the right size and sha256 are kept. Each file is written to
`NAME.part` and renamed only once it is complete and verified, so an interrupted run leaves
no half file behind under the real name; the next run resumes the `.part` (HTTP Range) when
the server supports it. Every file that is missing on the server, truncated or corrupt is
reported by name at the end, and none of them is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..paths import ENV_DATA_URL, captures_dir
from .manifest import CaptureEntry, FileEntry, check_file, get_entry

CHUNK = 1 << 16


class CaptureDownloadError(RuntimeError):
    """Some files could not be installed; `problems` has one 'path: problem' per file."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = problems
        lines = "\n  ".join(problems)
        super().__init__(f"capture {name!r}: {len(problems)} problem(s):\n  {lines}")


def file_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(path)


def _fetch(url: str, part: Path, entry: FileEntry, bar, timeout: float) -> tuple[str | None, bool]:
    """Download url into part, resuming an earlier .part when the server allows (HTTP Range).
    Returns (problem or None, whether it resumed)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= entry.size:  # complete or overlong leftovers: start again
        part.unlink()
        have = 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    resumed = False
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resumed = bool(have) and resp.status == 206
            with open(part, "ab" if resumed else "wb") as out:
                bar.update(have if resumed else 0)
                while block := resp.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        what = "missing on the server" if e.code == 404 else "server error"
        return f"{what} (HTTP {e.code}) at {url}", resumed
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Unreachable(f"download failed ({reason}) from {url}; run again to resume") from e
    return None, resumed


class _Unreachable(Exception):
    """The mirror did not answer: no point trying the remaining files."""


def _install(part: Path, target: Path, entry: FileEntry) -> str | None:
    problem = check_file(part, entry)
    if problem:
        part.unlink(missing_ok=True)  # never keep bad bytes around
        return problem
    os.replace(part, target)  # atomic on one file system
    return None


def download_capture(
    name: str,
    dest: str | Path | None = None,
    base_url: str | None = None,
    from_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Install capture `name` into `dest/name` (default: data/captures/name) and return that
    folder. Source: `from_dir` (a local copy), else `base_url`, else $SPLATCOURSE_DATA_URL,
    else the manifest's base_url. Raises CaptureDownloadError naming every bad file."""
    entry: CaptureEntry = get_entry(name, manifest)
    folder = Path(dest if dest is not None else captures_dir()) / name
    base = base_url or os.environ.get(ENV_DATA_URL) or entry.base_url
    todo = [f for f in entry.files if check_file(folder / f.path, f) is not None]
    source = from_dir if from_dir is not None else base
    print(
        f"{entry.title}: {len(entry.files) - len(todo)} of {len(entry.files)} files already "
        f"present in {folder}; fetching {len(todo)} from {source}"
    )
    problems = []
    with tqdm(
        total=sum(f.size for f in todo),
        unit="B",
        unit_scale=True,
        disable=not progress or not todo,
        desc=name,
    ) as bar:
        for k, f in enumerate(todo):
            target = folder / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            if from_dir is not None:
                src = Path(from_dir) / f.path
                if not src.is_file():
                    problems.append(f"{f.path}: missing in {from_dir}")
                    continue
                shutil.copyfile(src, part)
                bar.update(f.size)
                problem = None
            else:
                try:
                    problem, resumed = _fetch(file_url(base, f.path), part, f, bar, timeout)
                    if problem is None and resumed and check_file(part, f) is not None:
                        part.unlink()  # the old .part was not a prefix of this file: restart
                        problem, _ = _fetch(file_url(base, f.path), part, f, bar, timeout)
                except _Unreachable as e:
                    problems.append(f"{f.path}: {e}")
                    if len(todo) > k + 1:
                        problems.append(f"({len(todo) - k - 1} more files not attempted)")
                    break
            if problem is None:
                problem = _install(part, target, f)
            if problem:
                problems.append(f"{f.path}: {problem}")
    if problems:
        raise CaptureDownloadError(name, problems)
    print(f"{name}: all {len(entry.files)} files verified in {folder}")
    print(f"Licence: {entry.licence} ({entry.licence_url}). Attribution: {entry.attribution}")
    return folder


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (also wired into `splatcourse download`)."""
    ap = argparse.ArgumentParser(
        prog="python -m splatcourse.capture.download",
        description="Download a course capture and verify its files.",
    )
    ap.add_argument("name", help="capture name from data/manifest.json, e.g. socketed_axe_arreton")
    ap.add_argument("--base-url", help=f"mirror to download from (or set ${ENV_DATA_URL})")
    ap.add_argument("--dest", help="folder that receives NAME/ (default: data/captures)")
    ap.add_argument("--from-dir", help="install from a local copy instead, with the same checks")
    ap.add_argument("--manifest", help="manifest file (default: data/manifest.json)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        download_capture(
            args.name,
            dest=args.dest,
            base_url=args.base_url,
            from_dir=args.from_dir,
            manifest=args.manifest,
            progress=not args.quiet,
        )
    except (CaptureDownloadError, KeyError, FileNotFoundError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
