"""data/manifest.json and its list of original files: complete, pinned to the source commit,
consistent with the shared copy, and nothing of the capture is in git."""

import subprocess
from pathlib import Path

import pytest

from splatcourse.capture import COURSE_CAPTURE, load_manifest
from splatcourse.capture.derive import plan
from splatcourse.capture.manifest import git_blob_sha1, read_source_files
from splatcourse.paths import repo_root, shared_data_dir

AXE = shared_data_dir() / COURSE_CAPTURE
SHARED_TREE = shared_data_dir().parent / "upstream" / "socketed-axe-version2.tree.tsv"


def test_manifest_entry_pins_its_source_licence_attribution_and_files():
    entry = load_manifest()[COURSE_CAPTURE]
    assert entry.source_url == "https://github.com/MicroPasts/socketed-axe-version2"
    assert entry.source_repo == "MicroPasts/socketed-axe-version2"
    assert entry.source_commit == "ff6a818b226c73018ce331e38fd2ceea1aa1a0e9"
    assert entry.file_url("photos/IMG_8835.JPG") == (
        "https://raw.githubusercontent.com/MicroPasts/socketed-axe-version2/"
        "ff6a818b226c73018ce331e38fd2ceea1aa1a0e9/photos/IMG_8835.JPG"
    )
    assert (
        entry.licence == "CC BY 4.0" and "creativecommons.org/licenses/by/4.0" in entry.licence_url
    )
    assert "Hugh Fiske" in entry.attribution and "MicroPasts" in entry.attribution
    assert entry.default_width == 256
    assert (entry.derive.image_width, entry.derive.jpeg_quality) == (512, 90)
    assert (entry.derive.mask_threshold, entry.derive.resample) == (127, "LANCZOS")
    assert entry.source_files == repo_root() / "data" / "upstream" / "socketed-axe-version2.tsv"


def test_the_source_list_holds_what_the_course_uses_and_nothing_large_besides():
    files = load_manifest()[COURSE_CAPTURE].files()
    paths = [f.path for f in files]
    assert len(paths) == len(set(paths)) == 113
    assert sum(p.startswith("photos/IMG_") for p in paths) == 54
    assert sum(p.startswith("masks/IMG_") and p.endswith("_mask.JPG") for p in paths) == 54
    assert {"photos/IMG_8861.JPG", "photos/IMG_8871.JPG", "README.md", "LICENSE.md"} <= set(paths)
    assert {p for p in paths if p.startswith("other/")} == {
        "other/Socketed_axe_cameras.xml",
        "other/Socketed_axe_cameras.out",
        "other/Socketed_axe_markers.xml",
    }
    unknown = [f.path for f in files if f.size is None]
    assert unknown == ["photos/IMG_8861.JPG", "photos/IMG_8871.JPG"]
    assert 195e6 < sum(f.size or 4e6 for f in files) < 225e6  # about 200 MB to download
    course = plan(files)  # every original has its place in the course copy
    assert sum(d.path.startswith("images/") for d in course) == 54
    assert sum(d.path.endswith("_mask.png") for d in course) == 54


@pytest.mark.skipif(not SHARED_TREE.is_file(), reason=f"{SHARED_TREE} not found")
def test_the_committed_source_list_matches_the_shared_tree_listing():
    shared = {f.path: f for f in read_source_files(SHARED_TREE)}
    for f in load_manifest()[COURSE_CAPTURE].files():
        assert f.path in shared, f.path
        assert (f.blob_sha1, f.size) == (shared[f.path].blob_sha1, shared[f.path].size), f.path


@pytest.mark.skipif(not AXE.is_dir(), reason=f"shared capture not found at {AXE}")
def test_the_files_the_shared_copy_keeps_unchanged_are_the_originals():
    blobs = {f.path: f.blob_sha1 for f in load_manifest()[COURSE_CAPTURE].files()}
    for copy, original in [
        ("README.original.md", "README.md"),
        ("LICENSE.md", "LICENSE.md"),
        ("other/Socketed_axe_cameras.xml", "other/Socketed_axe_cameras.xml"),
        ("other/Socketed_axe_cameras.out", "other/Socketed_axe_cameras.out"),
        ("other/Socketed_axe_markers.xml", "other/Socketed_axe_markers.xml"),
    ]:
        assert git_blob_sha1(AXE / copy) == blobs[original], copy


def test_no_file_in_git_is_a_capture_file():
    """Never commit the capture: no tracked (or addable) file is an original (same git blob)
    or, where the shared copy is at hand, one of its files."""
    root = repo_root()
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [root / Path(p) for p in out.decode().split("\0") if p]
    assert files, "git lists no files"
    capture_blobs = {f.blob_sha1 for e in load_manifest().values() for f in e.files()}
    if AXE.is_dir():
        capture_blobs |= {git_blob_sha1(p) for p in AXE.rglob("*") if p.is_file()}
    offenders = [
        str(p.relative_to(root)) for p in files if p.is_file() and git_blob_sha1(p) in capture_blobs
    ]
    assert offenders == [], f"capture files must not be committed: {offenders}"
