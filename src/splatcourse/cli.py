"""`splatcourse` command line: one command for each thing an instructor or student does.

Used by: students (lab, start, submit), instructors (release, autograde, feedback, grades,
merge-gradebooks, renderer-model) and everyone who downloads a capture.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _cmd_release(args: argparse.Namespace) -> int:
    from .grading import instructor

    for path in instructor.release(assignments=args.assignment or None):
        print(f"released {path}")
    return 0


def _shard(text: str | None) -> tuple[int, int] | None:
    """`--shard I/N` as (I, N); None without the option."""
    if not text:
        return None
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected I/N (two whole numbers), got {text!r}") from None
    return index, count


def _cmd_autograde(args: argparse.Namespace) -> int:
    from .grading import instructor

    shard = _shard(args.shard)
    report = instructor.autograde(
        Path(args.submissions),
        assignments=args.assignment or None,
        timeout=args.timeout,
        workers=args.workers,
        force=args.force,
        cell_timeout=args.cell_timeout,
        shard=shard,
    )
    print(report.summary())
    return 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    from .grading import instructor

    pages = instructor.feedback(assignments=args.assignment or None)
    print(f"wrote {len(pages)} feedback page(s) under {instructor.default_course().feedback}")
    return 0


def _cmd_grades(args: argparse.Namespace) -> int:
    from .grading import instructor

    csv_path, plot_path = instructor.export_grades(out_dir=args.out)
    print(f"grades: {csv_path}\nplot:   {plot_path}")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from . import quiet_openmp, student
    from .paths import repo_root

    root = repo_root()
    command = student.lab_command(root, port=args.port, extra=args.jupyter_args)
    os.chdir(root)  # nbgrader's Validate reads the course's nbgrader_config.py from the cwd
    quiet_openmp()  # every kernel JupyterLab starts inherits it, before its `import torch`
    os.execv(command[0], command)  # JupyterLab takes over this process (and its Ctrl-C)


def _cmd_start(args: argparse.Namespace) -> int:
    from . import student

    print(student.start(args.assignment).message())
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from . import student

    archive = student.submit(args.assignment, student=args.student)
    print(
        f"wrote {archive}\nhand this file in; your instructor unzips it into their submissions "
        "folder and runs `splatcourse autograde` on it"
    )
    return 0


def _cmd_renderer_model(args: argparse.Namespace) -> int:
    """Exercise 3's trained axe model: built once from the capture, cached under data/cache/."""
    from .train.renderer_model import build_renderer_model, load_renderer_model

    path = build_renderer_model(force=args.force, progress=True)
    model = load_renderer_model()
    print(f"renderer model: {path} ({model['summary']['gaussians']} Gaussians)")
    return 0


def _add_renderer_model(sub) -> None:
    p = sub.add_parser(
        "renderer-model",
        help="build (once; cached) the small trained axe model that exercise 3 draws",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if it is cached")
    p.set_defaults(func=_cmd_renderer_model)


def _cmd_view(args: argparse.Namespace) -> int:
    """Serve a .ply in viser's viewer until Ctrl-C (the server runs on its own threads)."""
    import time

    from .ui.splat_view import serve_ply

    view = serve_ply(args.path, port=args.port)
    print(f"viewing {args.path} at http://localhost:{view.port}/ (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        view.stop()
    return 0


def _add_view(sub) -> None:
    p = sub.add_parser(
        "view", help="open a 3DGS .ply (the course's or another tool's) in the 3D viewer"
    )
    p.add_argument("path", type=Path, help="the .ply file")
    p.add_argument("--port", type=int, default=8080, help="the viewer's port (default 8080)")
    p.set_defaults(func=_cmd_view)


def _cmd_merge_gradebooks(args: argparse.Namespace) -> int:
    from .grading.gradebooks import merge_gradebooks

    count = merge_gradebooks(args.out, args.shards)
    print(f"merged {count} submission(s) from {len(args.shards)} gradebook(s) into {args.out}")
    return 0


def _add_merge_gradebooks(sub) -> None:
    p = sub.add_parser(
        "merge-gradebooks",
        help="merge the gradebooks of a sharded autograde run (--shard I/N) into one",
    )
    p.add_argument("out", type=Path, help="the merged gradebook (created if missing)")
    p.add_argument("shards", type=Path, nargs="+", help="each shard's gradebook.db")
    p.set_defaults(func=_cmd_merge_gradebooks)


def _cmd_capture(args: argparse.Namespace) -> int:
    from .capture.sfm import capture

    capture(
        args.photos_dir,
        masks=args.masks,
        poses=args.poses,
        mapper=args.mapper,
        mask_features=args.mask_features,
        deterministic=args.deterministic,
        overwrite=args.overwrite,
        verbose=args.verbose,
    )
    print(f"load it with load_capture({str(args.photos_dir)!r}), or train it with")
    print(f"  python bench/capture_fit.py --capture {args.photos_dir}")
    return 0


def _add_capture(sub) -> None:
    p = sub.add_parser(
        "capture",
        help="structure from motion: make a folder of photos a capture the course loads "
        "(writes PHOTOS_DIR/sparse/0)",
    )
    p.add_argument("photos_dir", type=Path, help="the photos (or a folder holding images/)")
    p.add_argument("--masks", type=Path, default=None, help="a folder of object masks")
    p.add_argument(
        "--poses",
        type=Path,
        default=None,
        help="known cameras (PhotoScan XML folder, transforms.json, COLMAP): only make points",
    )
    p.add_argument(
        "--mapper",
        choices=("global", "incremental"),
        default="global",
        help="SfM tried first (the other is the fallback); default global (GLOMAP)",
    )
    p.add_argument(
        "--mask-features",
        action="store_true",
        help="features on the object only (when it moved against its surroundings)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="features and matching on one thread: the same cameras on every run, 1.5x slower",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing sparse/0")
    p.add_argument("--verbose", action="store_true", help="show pycolmap's own log")
    p.set_defaults(func=_cmd_capture)


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command; `download` hands its own arguments to the capture downloader."""
    parser = argparse.ArgumentParser(prog="splatcourse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "download",
        help="fetch a capture's original files from its source repository "
        "at the pinned commit, verify each by its git blob SHA-1 and derive the course "
        "copy: `splatcourse download socketed_axe_arreton` (see --help there)",
    )

    p = sub.add_parser(
        "lab",
        help="open the course in JupyterLab, lesson 1 in front (what `make lab` runs); "
        "other options go to JupyterLab",
    )
    p.add_argument("--port", type=int, default=None, help="JupyterLab's port (default 8888)")
    p.set_defaults(func=_cmd_lab)

    p = sub.add_parser(
        "start", help="copy a released exercise into work/ to do it there (never overwrites)"
    )
    p.add_argument("assignment", help="e.g. ex01_toy_splats")
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser(
        "submit",
        help="zip your work/<assignment>/ as <student>/<assignment>/<notebook>.ipynb for grading",
    )
    p.add_argument("assignment", help="e.g. ex01_toy_splats")
    p.add_argument("--student", default=None, help="your student id (default: your login name)")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("release", help="generate exercises/ from solutions/ (student versions)")
    p.add_argument("assignment", nargs="*", help="assignment names (default: all)")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser(
        "autograde",
        help="grade a folder of submissions "
        "laid out as SUBMISSIONS/<student>/<assignment>/<notebook>.ipynb",
    )
    p.add_argument("submissions", help="folder of submissions")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="wall-clock seconds allowed per submission (default 600)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="submissions graded side by side (default: one per core)",
    )
    p.add_argument(
        "--force", action="store_true", help="regrade submissions unchanged since the last run"
    )
    p.add_argument(
        "--cell-timeout",
        type=int,
        default=None,
        help="seconds one cell may run (default 240, from the config)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="grade only shard I of N (students in sorted order, I counted from 0)",
    )
    p.set_defaults(func=_cmd_autograde)

    p = sub.add_parser("feedback", help="write HTML feedback for every graded submission")
    p.add_argument("assignment", nargs="*", help="assignment names (default: all)")
    p.set_defaults(func=_cmd_feedback)

    p = sub.add_parser("grades", help="export grades to CSV and a score-distribution plot")
    p.add_argument("--out", type=Path, default=None, help="folder (default autograde/grades)")
    p.set_defaults(func=_cmd_grades)
    _add_renderer_model(sub)
    _add_merge_gradebooks(sub)
    _add_view(sub)
    _add_capture(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["download"]:
        from .capture.download import main as download_main

        return int(download_main(argv[1:]) or 0)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":  # only `lab` hands unknown options on (to JupyterLab)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.jupyter_args = extra
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"splatcourse {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
