"""data/manifest.json: complete, matches the shared capture, and nothing of it is in git."""

import subprocess
from pathlib import Path

import pytest

from splatcourse.capture import (
    COURSE_CAPTURE,
    load_manifest,
    sha256_file,
)
from splatcourse.capture.manifest import verify_folder
from splatcourse.paths import repo_root, shared_data_dir

AXE = shared_data_dir() / COURSE_CAPTURE


def test_manifest_entry_has_source_licence_attribution_and_hashes():
    entry = load_manifest()[COURSE_CAPTURE]
    assert entry.source_url.startswith("https://github.com/MicroPasts/")
    assert (
        entry.licence == "CC BY 4.0" and "creativecommons.org/licenses/by/4.0" in entry.licence_url
    )
    assert "Hugh Fiske" in entry.attribution and "MicroPasts" in entry.attribution
    assert entry.base_url.startswith("https://")
    paths = {f.path for f in entry.files}
    assert {
        "LICENSE.md",
        "ATTRIBUTION.md",
        "SOURCE.md",
        "README.original.md",
        "other/Socketed_axe_cameras.xml",
        "other/Socketed_axe_cameras.out",
    } <= paths
    assert sum(p.startswith("images/") for p in paths) == 52
    assert sum(p.startswith("masks/") for p in paths) == 54
    assert all(len(f.sha256) == 64 and f.size > 0 for f in entry.files)
    assert entry.default_width == 256


@pytest.mark.skipif(not AXE.is_dir(), reason=f"shared capture not found at {AXE}")
def test_manifest_matches_the_shared_capture():
    entry = load_manifest()[COURSE_CAPTURE]
    assert verify_folder(entry, AXE) == []
    on_disk = {p.relative_to(AXE).as_posix() for p in AXE.rglob("*") if p.is_file()}
    assert on_disk == {f.path for f in entry.files}


def test_no_file_in_git_is_a_capture_file():
    """Never commit the capture: no tracked (or addable) file has a manifest file's hash."""
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
    manifest_files = [f for e in load_manifest().values() for f in e.files]
    by_size = {}
    for f in manifest_files:
        by_size.setdefault(f.size, set()).add(f.sha256)
    offenders = [
        str(p.relative_to(root))
        for p in files
        if p.is_file()
        and p.stat().st_size in by_size
        and sha256_file(p) in by_size[p.stat().st_size]
    ]
    assert offenders == [], f"capture files must not be committed: {offenders}"
