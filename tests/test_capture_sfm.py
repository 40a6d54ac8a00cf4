"""Structure from motion (`splatcourse capture`) on the synthetic object, whose cameras are known.

The photos-only path runs once per module (64 views at 256x192, about 6 s of SfM on one
thread): at 128 pixels or 40 views SIFT finds too few features on the object for global
mapping to place every camera (measured: 22% of the scene radius RMS at 40 views, 256 px).
"""

import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch

from splatcourse.capture import load_capture, sfm, synthetic_capture, write_colmap_text
from splatcourse.capture.align import PoseError, pose_error, similarity, umeyama
from splatcourse.capture.hull import visual_hull
from splatcourse.capture.pycolmap_import import import_pycolmap
from splatcourse.capture.sfm import SfmError, capture, list_photos
from splatcourse.capture.synthetic import sdf
from splatcourse.cli import main as cli_main
from splatcourse.train import TrainConfig, Trainer, fit
from splatcourse.train.model import initial_points

N_VIEWS, WIDTH = 64, 256


@pytest.fixture(scope="module")
def truth():
    return synthetic_capture(n_views=N_VIEWS, width=WIDTH)


def _photos_only(cap, folder):
    """The capture's photos alone, straight in `folder` (no images/, cameras or masks)."""
    write_colmap_text(cap, folder)
    for png in (folder / "images").iterdir():
        png.rename(folder / png.name)
    for sub in ("images", "sparse", "masks"):
        shutil.rmtree(folder / sub)
    return folder


@pytest.fixture(scope="module")
def recovered(truth, tmp_path_factory):
    folder = _photos_only(truth, tmp_path_factory.mktemp("photos"))
    report = capture(folder, deterministic=True, progress=False)
    return folder, report


#: The share of cameras that must come out right, and how far from the truth is still right.
RIGHT_FRACTION, RIGHT_RADIUS = 0.85, 0.05


def _cameras_right(cap, truth) -> tuple[int, PoseError]:
    """(how many cameras lie within RIGHT_RADIUS of the scene radius of the true ones, the pose
    error of the best RIGHT_FRACTION), after the similarity fitted on those best cameras."""
    best = pose_error(cap, truth, inlier_fraction=RIGHT_FRACTION)
    return int((best.centre_errors < RIGHT_RADIUS * best.scene_radius).sum()), best


def test_photos_only_recovers_the_cameras(truth, recovered):
    folder, report = recovered
    assert report.method == "global mapping"
    assert len(report.registered) == N_VIEWS and not report.unregistered
    cap = load_capture(folder, verbose=False)  # the model in folder/sparse/0, photos beside it
    assert cap.image_names == truth.image_names
    # On several threads SfM is not deterministic (see capture's `deterministic`). Measured so
    # with the machine quiet, 110 runs: a block of 2-7 low views (among 13-19, the object's
    # least textured side) came out 10-75% of the scene radius away in all but two, and the
    # best 85% of the cameras had an RMS centre error of 1.0-1.4% of the radius and rotations
    # within 1.6-3.4 deg. With another process busy, 148 runs: 6 misplaced most cameras (0-33
    # right), the rest up to 1.8% and 3.8 deg. On one thread it is one result on every run,
    # busy or not (8 runs): 61 right, 1.28%, 2.3 deg.
    n_right, best = _cameras_right(cap, truth)
    shuffled = torch.from_numpy(np.random.default_rng(0).permutation(N_VIEWS))
    wrong = replace(cap, viewmats=cap.viewmats[shuffled])  # each photo given another's camera
    n_right_wrong, best_wrong = _cameras_right(wrong, truth)
    print(
        f"cameras right: {n_right}/{N_VIEWS}, best {RIGHT_FRACTION:.0%}: RMS "
        f"{best.rms_centre_error_relative:.2%} of the radius, rotation within "
        f"{best.max_rotation_error_deg:.1f} deg; the cameras shuffled among the photos: "
        f"{n_right_wrong}/{N_VIEWS} right, RMS {best_wrong.rms_centre_error_relative:.2%}"
    )
    assert n_right >= RIGHT_FRACTION * N_VIEWS  # at most 9 of 64 misplaced
    assert best.rms_centre_error_relative < 0.02
    assert best.max_rotation_error_deg < 5
    # the same bounds refuse the right cameras given to the wrong photos
    assert n_right_wrong < RIGHT_FRACTION * N_VIEWS
    assert best_wrong.rms_centre_error_relative > 0.02


class _Mapped(Exception):
    """Raised in place of mapping, once the features and matches are in the database."""


def test_deterministic_capture_finds_and_matches_the_same_features(truth, tmp_path, monkeypatch):
    """capture(deterministic=True) numbers the photos in name order and matches them the same
    way every time; on two threads the numbering followed the order threads finished in
    (differing in each of 3 runs measured). Stops before mapping, which is deterministic given
    the database (25 runs measured)."""
    photos = _photos_only(truth.subset(list(range(24))), tmp_path / "photos")

    def features_and_matches(run: int) -> tuple[list[str], dict]:
        db_path = tmp_path / f"database{run}.db"

        def keep_the_database(database, *args):
            shutil.copy(database, db_path)
            raise _Mapped

        monkeypatch.setattr(sfm, "_map", keep_the_database)
        with pytest.raises(_Mapped):
            capture(photos, deterministic=True, progress=False)
        pycolmap = import_pycolmap()
        with pycolmap.Database.open(db_path) as db:
            by_id = {im.image_id: im.name for im in db.read_all_images()}
            pair_ids, geometries = db.read_two_view_geometries()
        pairs = {
            tuple(by_id[i] for i in pycolmap.pair_id_to_image_pair(pair_id)): g.inlier_matches
            for pair_id, g in zip(pair_ids, geometries)
        }
        return [by_id[i] for i in sorted(by_id)], pairs

    order, pairs = features_and_matches(0)
    order_again, pairs_again = features_and_matches(1)
    assert order == order_again == list_photos(photos)
    assert pairs.keys() == pairs_again.keys() and len(pairs) > 24
    assert all(np.array_equal(pairs[p], pairs_again[p]) for p in pairs)


def test_umeyama_undoes_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))
    dst = 2.5 * src @ R.T + np.array([1.0, -2.0, 0.5])
    s, R_fit, t = umeyama(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(R_fit, R) and np.allclose(t, [1, -2, 0.5])


@pytest.mark.slow
def test_fit_with_recovered_cameras_matches_fit_with_true_ones(truth, recovered, tmp_path):
    """Same photos, split, recipe and starting points (the SfM points, carried into the true
    frame by the fitted similarity): only the cameras differ."""
    folder, _ = recovered
    true_folder = tmp_path / "true"
    write_colmap_text(truth, true_folder)
    shutil.rmtree(true_folder / "masks")  # photos only, like the recovered capture
    caps = {
        "recovered": load_capture(folder, width=128, verbose=False),
        "true": load_capture(true_folder, width=128, verbose=False),
    }
    s, R, t = similarity(caps["recovered"], caps["true"])
    sfm_points = caps["recovered"].points.double().numpy()  # [M, 3]
    caps["true"].points = torch.from_numpy(sfm_points @ (s * R).T + t).float()
    caps["true"].point_colors = caps["recovered"].point_colors
    cfg = TrainConfig(steps=300, sh_degree=0, max_gaussians=5000, reset_every=0)
    scores = {}
    for name, cap in caps.items():
        result = fit(cap, cfg, progress=False)
        assert result.eval is not None
        scores[name] = result.eval.ssim
    # measured (full-frame SSIM, no masks): true cameras 0.842, recovered 0.858, so the bar
    # leaves 0.047 of margin; the true cameras start from points carried over by a similarity
    # fitted on camera centres, which is why they do not come out ahead. Started instead from
    # the synthetic object's 2,000 exact surface points, the true cameras scored 0.905.
    assert scores["recovered"] > scores["true"] - 0.03, scores


def test_known_poses_triangulate_points_on_the_surface(truth, recovered, tmp_path):
    """Some photos at another size (a second phone, a resized copy): each camera's K is
    scaled to its photo, for triangulation and for loading."""
    from PIL import Image

    folder, _ = recovered
    photos = tmp_path / "photos"
    photos.mkdir()
    for png in folder.glob("*.png"):
        shutil.copy(png, photos)
    for png in sorted(photos.glob("*.png"))[1::4]:
        Image.open(png).resize((192, 144), Image.Resampling.LANCZOS).save(png)
    report = capture(photos, poses=truth, progress=False)
    assert report.method == "triangulation" and report.n_points > 200
    cap = load_capture(photos, verbose=False)
    assert any("resampled" in note for note in cap.notes)
    assert torch.allclose(cap.viewmats, truth.viewmats, atol=1e-5)
    assert torch.allclose(cap.Ks, truth.Ks, atol=1e-4)
    # in the true frame, so on the object: measured median |sdf| 0.000
    assert sdf(cap.points).abs().median() < 0.02


def test_known_poses_and_masks_give_the_visual_hull(tmp_path):
    cap = synthetic_capture(n_views=24, width=96)
    write_colmap_text(cap, tmp_path)
    shutil.rmtree(tmp_path / "sparse")
    report = capture(tmp_path, poses=cap, progress=False)
    assert report.method == "visual hull" and report.n_points > 1000
    loaded = load_capture(tmp_path, verbose=False)
    assert loaded.masks is not None and len(loaded.points) == report.n_points
    d = sdf(loaded.points)
    # a hull holds the object: its surface points lie on it or just outside (concavities)
    assert d.abs().median() < 0.03 and d.min() > -0.1


def test_visual_hull_needs_masks():
    cap = synthetic_capture(n_views=8, width=48)
    cap.masks = None
    with pytest.raises(ValueError, match="needs object masks"):
        visual_hull(cap)


def test_trainer_starts_from_the_hull_not_from_fog(capsys):
    cap = synthetic_capture(n_views=16, width=64)
    cap.points, cap.point_colors = torch.zeros(0, 3), torch.zeros(0, 3)
    init = initial_points(cap, TrainConfig())
    assert init.source == "visual hull"
    assert "points from visual hull" in capsys.readouterr().out
    assert sdf(init.points).abs().median() < 0.05
    trainer = Trainer(cap, TrainConfig(), progress=False)
    assert trainer.result(evaluate_heldout=False).summary()["init_points"] == "visual hull"


def test_trainer_triangulates_a_capture_without_masks_or_points(truth):
    cap = truth.subset(list(range(N_VIEWS)))
    cap.masks = None
    cap.points, cap.point_colors = torch.zeros(0, 3), torch.zeros(0, 3)
    init = initial_points(cap, TrainConfig())
    assert init.source == "triangulation" and len(init.points) > 200
    assert sdf(init.points).abs().median() < 0.02


def test_too_few_photos_is_a_clear_error(tmp_path, truth):
    _photos_only(truth.subset([0, 1, 2]), tmp_path)
    with pytest.raises(SfmError, match="found 3 photo"):
        capture(tmp_path, progress=False)
    assert cli_main(["capture", str(tmp_path)]) == 2


def test_the_command_passes_deterministic_on(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(sfm, "capture", lambda photos_dir, **options: seen.update(options))
    assert cli_main(["capture", str(tmp_path), "--deterministic"]) == 0
    assert seen["deterministic"] is True
    assert cli_main(["capture", str(tmp_path)]) == 0
    assert seen["deterministic"] is False


def test_photos_that_do_not_overlap_are_a_clear_error(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(6):  # independent noise: features everywhere, no pair in common
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(
            tmp_path / f"noise_{i}.png"
        )
    with pytest.raises(SfmError, match="no overlap"):
        capture(tmp_path, progress=False)


def test_an_existing_model_is_not_overwritten(recovered):
    folder, _ = recovered
    with pytest.raises(FileExistsError, match="overwrite"):
        capture(folder, progress=False)


@pytest.mark.parametrize("zlib_first", [True, False])
def test_pycolmap_then_png_does_not_crash_through_the_course(tmp_path, zlib_first):
    """pycolmap exports its own zlib symbols: imported before zlib, the next PNG save aborts
    the process (SIGABRT). The course imports it through `import_pycolmap`, which loads zlib
    first. The bare import is kept as the control that shows the hazard is real."""
    load = (
        "from splatcourse.capture.sfm import capture  # the course's import path\n"
        "from splatcourse.capture.pycolmap_import import import_pycolmap\n"
        "import_pycolmap()"
        if zlib_first
        else "import pycolmap"
    )
    script = textwrap.dedent(f"""
        {load.replace(chr(10), chr(10) + "        ")}
        from PIL import Image
        Image.new("RGB", (64, 64), (10, 200, 30)).save({str(tmp_path / "x.png")!r})
        print("saved")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if zlib_first:
        assert run.returncode == 0 and "saved" in run.stdout, run.stderr[-2000:]
    else:
        assert run.returncode != 0  # the crash the course's import order avoids
