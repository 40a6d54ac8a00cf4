"""`capture`: from a folder of photos to a capture the course loads, with structure from motion.

Three cases, by what the student has besides the photos:

* **photos only**: pycolmap finds SIFT features, matches every pair of photos, and solves
  for the cameras and sparse points with global SfM (GLOMAP), falling back to incremental SfM
  when global mapping registers fewer photos. Masks are deliberately not given to feature
  extraction: on a measured capture they made global mapping put 14 of 49 cameras in the wrong
  place (they speed up matching, but leave too few features on a small object).
* **known poses, no points**: the cameras are fixed and pycolmap only triangulates matched
  features into points;
* **known poses and masks**: the visual hull (`capture.hull`) gives the points, no features.

Whatever the case, the result is written as a COLMAP text model in `PHOTOS_DIR/sparse/0`,
which `capture.colmap` reads, so `load_capture(PHOTOS_DIR)` and
`bench/capture_fit.py --capture PHOTOS_DIR` work straight after. The photos stay where they
are (in PHOTOS_DIR or PHOTOS_DIR/images); masks go in `PHOTOS_DIR/masks` (see
`capture.frames` for their names). The cameras are pinhole (SIMPLE_PINHOLE, one per photo
size), the model the rasterizer renders with, so no distortion is estimated and then ignored.

Used by: `splatcourse capture PHOTOS_DIR`, lesson 5's "Your own object", the trainer's
initialisation when a capture has no points (`triangulate_capture`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from .dataset import Capture
from .frames import find_mask
from .hull import visual_hull
from .images import image_size
from .pycolmap_import import import_pycolmap

#: Fewer photos than this cannot make a capture worth training (and SfM needs several).
MIN_PHOTOS = 5
#: Mapping must register at least this fraction of the photos, or `capture` refuses.
MIN_REGISTERED_FRACTION = 0.5
#: SIFT runs on photos shrunk to at most this many pixels on the long side (phone photos are
#: 4000 px: features at full size cost minutes and add nothing the course's 256 px fits use).
MAX_FEATURE_SIZE = 1600
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
CAMERA_MODEL = "SIMPLE_PINHOLE"
#: Matches a pair of photos needs to count as overlapping (pycolmap's own verification bar).
MIN_INLIERS = 15
#: pycolmap's random seed for verification and mapping, so the same photos give the same
#: cameras (up to the order threads finish in: see `capture`'s `deterministic`).
SEED = 0

Mapper = Literal["global", "incremental"]


class SfmError(RuntimeError):
    """Structure from motion could not make a capture (the message says what to change)."""


@dataclass
class SfmReport:
    """What `capture` did: the model folder, how the points were made, and how long it took."""

    model_dir: Path
    method: str  # "global mapping", "incremental mapping", "triangulation", "visual hull"
    n_photos: int
    registered: list[str]
    unregistered: list[str]
    n_points: int
    seconds: dict[str, float]

    def summary(self) -> str:
        lines = [
            f"{self.model_dir}: {len(self.registered)}/{self.n_photos} photos registered, "
            f"{self.n_points} points by {self.method} in {sum(self.seconds.values()):.1f} s "
            f"({', '.join(f'{k} {v:.1f} s' for k, v in self.seconds.items())})"
        ]
        if self.unregistered:
            lines.append(f"  not registered (left out): {', '.join(self.unregistered)}")
        return "\n".join(lines)


def photos_folder(photos_dir: Path) -> Path:
    """Where the photos are: PHOTOS_DIR/images when it exists, else PHOTOS_DIR itself."""
    return photos_dir / "images" if (photos_dir / "images").is_dir() else photos_dir


def list_photos(folder: Path) -> list[str]:
    """The photo file names in `folder` (not its subfolders), sorted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"photos folder not found: {folder}")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def capture(
    photos_dir: str | Path,
    masks: str | Path | None = None,
    poses: Capture | str | Path | None = None,
    *,
    mapper: Mapper = "global",
    mask_features: bool = False,
    deterministic: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> SfmReport:
    """Make `photos_dir` a capture: write `photos_dir/sparse/0` (COLMAP text) and return a report.

    masks: a folder of object masks; they are copied to `photos_dir/masks` (where the loader
        looks) unless they are already there. With `poses`, the visual hull is carved from
        the known capture's own masks when it has them (else features are triangulated).
    poses: known cameras, as a `Capture` or a capture folder/file the course loads
        (PhotoScan XML, transforms.json, COLMAP); photos are matched to its views by name
        without extension. None: solve for them (structure from motion).
    mapper: "global" (GLOMAP, the default) or "incremental" to try first; the other one is
        tried when the first registers fewer photos.
    mask_features: find features on the object only (needs masks). For a capture where the
        object moved against its surroundings (turned over between two turntable rings, as
        the axe was): there only the object is rigid across all photos. Off by default:
        features on a static, textured surrounding make mapping more reliable.
    deterministic: find and match features on one thread, so the same photos give the same
        cameras on every run. With several threads pycolmap numbers the photos in the order
        its threads finish them and each matching thread draws its own RANSAC samples, and
        mapping depends on both (on the course's synthetic object a few low views, and
        now and then most cameras, land elsewhere from run to run). About 1.5x slower (64 photos at 256 px: 5.8 s, not 3.9).
    verbose: show pycolmap's own log (otherwise only its errors).
    """
    root = Path(photos_dir)
    images = photos_folder(root)
    names = list_photos(images)
    if len(names) < MIN_PHOTOS:
        raise SfmError(
            f"{images}: found {len(names)} photo(s) ({', '.join(names) or 'none'}); structure "
            f"from motion needs at least {MIN_PHOTOS}, and a good capture 30-60 photos all "
            f"round the object (suffixes read: {', '.join(PHOTO_SUFFIXES)})"
        )
    model_dir = root / "sparse" / "0"
    if model_dir.exists() and not overwrite:
        raise FileExistsError(f"{model_dir} already exists: pass overwrite=True (--overwrite)")
    masks_dir = _place_masks(root, masks)
    threads = 1 if deterministic else -1  # pycolmap's -1: every core
    with _quiet_pycolmap(verbose), tempfile.TemporaryDirectory(prefix="splatcourse_sfm_") as tmp:
        if poses is None:
            feature_masks = _feature_masks(names, masks_dir, Path(tmp)) if mask_features else None
            report = _solve_poses(
                images, names, Path(tmp), mapper, model_dir, progress, feature_masks, threads
            )
        else:
            known = poses if isinstance(poses, Capture) else _load_poses(poses)
            report = _points_for_known_poses(
                images, names, known, masks_dir, Path(tmp), model_dir, progress, threads
            )
    print(report.summary())
    return report


def _place_masks(root: Path, masks: str | Path | None) -> Path | None:
    """The masks folder the loader will use (`root/masks`), filled from `masks` if given."""
    target = root / "masks"
    if masks is not None and Path(masks).resolve() != target.resolve():
        if not Path(masks).is_dir():
            raise FileNotFoundError(f"masks folder not found: {masks}")
        shutil.copytree(masks, target, dirs_exist_ok=True)
    return target if target.is_dir() else None


def _feature_masks(names: list[str], masks_dir: Path | None, tmp: Path) -> Path:
    """A folder of the masks under the names pycolmap looks for (`PHOTO.png`)."""
    if masks_dir is None:
        raise SfmError("mask_features needs masks: pass masks=... (--masks) or add PHOTOS/masks")
    folder = tmp / "feature_masks"
    folder.mkdir()
    for name in names:
        mask = find_mask(masks_dir, name)
        assert mask is not None  # masks_dir exists
        shutil.copyfile(mask, folder / f"{name}.png")
    return folder


@contextmanager
def _quiet_pycolmap(verbose: bool) -> Iterator[None]:
    """pycolmap logs every step at INFO; keep only its errors unless asked."""
    logging = import_pycolmap().logging
    before = logging.minloglevel
    logging.minloglevel = before if verbose else int(logging.Level.ERROR)
    try:
        yield
    finally:
        logging.minloglevel = before


class _Stages:
    """One progress bar whose steps are the pipeline's stages, timing each."""

    def __init__(self, stages: list[str], progress: bool) -> None:
        self.bar = tqdm(total=len(stages), disable=not progress, unit="stage")
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, fn: Callable[[], Any]) -> Any:
        self.bar.set_description(stage)
        t0 = time.perf_counter()
        out = fn()
        self.seconds[stage] = time.perf_counter() - t0
        self.bar.update(1)
        return out

    def close(self) -> None:
        self.bar.close()


def _extract_and_match(
    stages: _Stages,
    db_path: Path,
    images: Path,
    names: list[str],
    camera_mode: Any,
    feature_masks: Path | None,
    threads: int,
) -> None:
    """SIFT features of every photo (inside the masks of `feature_masks`, if given),
    exhaustive matching, on `threads` threads (-1: every core); SfmError when no pair
    overlaps."""
    pycolmap = import_pycolmap()
    reader = pycolmap.ImageReaderOptions(camera_model=CAMERA_MODEL)
    if feature_masks is not None:
        reader.mask_path = str(feature_masks)
    extraction = pycolmap.FeatureExtractionOptions(max_image_size=MAX_FEATURE_SIZE)
    extraction.num_threads = threads
    stages.run(
        "features",
        lambda: pycolmap.extract_features(
            db_path,
            images,
            image_names=names,
            camera_mode=camera_mode,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        ),
    )
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = SEED
    stages.run(
        "matching",
        lambda: pycolmap.match_exhaustive(
            db_path,
            matching_options=matching,
            verification_options=verification,
            device=pycolmap.Device.cpu,
        ),
    )
    isolated = _photos_without_partner(db_path)
    if len(isolated) == len(names):
        raise SfmError(
            f"{images}: no overlap: no two of the {len(names)} photos share enough matching "
            "features. Take photos that overlap by at least half, of a textured object, in "
            "steady light, moving a little between shots"
        )
    if isolated:
        print(f"no photo overlaps these (they will not be registered): {', '.join(isolated)}")


def _photos_without_partner(db_path: Path) -> list[str]:
    """The photos that no other photo shares a geometrically verified set of matches with."""
    pycolmap = import_pycolmap()
    with pycolmap.Database.open(db_path) as db:
        names = {im.image_id: im.name for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
    paired: set[int] = set()
    for pair_id, geometry in zip(pair_ids, geometries):
        if len(geometry.inlier_matches) >= MIN_INLIERS:
            paired.update(pycolmap.pair_id_to_image_pair(pair_id))
    return sorted(name for image_id, name in names.items() if image_id not in paired)


def _solve_poses(
    images: Path,
    names: list[str],
    tmp: Path,
    mapper: Mapper,
    model_dir: Path,
    progress: bool,
    feature_masks: Path | None,
    threads: int,
) -> SfmReport:
    db_path = tmp / "database.db"
    stages = _Stages(["features", "matching", "mapping", "writing"], progress)
    try:
        camera_mode = _camera_mode(images, names)
        _extract_and_match(stages, db_path, images, names, camera_mode, feature_masks, threads)
        rec, method = stages.run("mapping", lambda: _map(db_path, images, tmp, mapper))
        registered = sorted(im.name for im in rec.images.values() if im.has_pose)
        unregistered = sorted(set(names) - set(registered))
        if len(registered) < max(MIN_PHOTOS, MIN_REGISTERED_FRACTION * len(names)):
            raise SfmError(
                f"{images}: {method} registered only {len(registered)} of {len(names)} photos; "
                f"these failed: {', '.join(unregistered)}. Add photos between them and their "
                "neighbours (more overlap), or retake them sharp and well lit"
            )
        stages.run("writing", lambda: _write(rec, model_dir))
    finally:
        stages.close()
    return SfmReport(
        model_dir,
        method,
        len(names),
        registered,
        unregistered,
        rec.num_points3D(),
        stages.seconds,
    )


def _camera_mode(images: Path, names: list[str]) -> Any:
    """One shared camera when every photo has the same size (one phone: its focal length is
    then solved once, from every photo, instead of once per photo), else pycolmap's AUTO
    (a camera per size and EXIF focal length)."""
    pycolmap = import_pycolmap()
    sizes = {image_size(images / n) for n in names}
    return pycolmap.CameraMode.SINGLE if len(sizes) == 1 else pycolmap.CameraMode.AUTO


def _map(db_path: Path, images: Path, tmp: Path, first: Mapper) -> tuple[Any, str]:
    """(the reconstruction registering the most photos, the mapper that made it): `first`,
    then the other mapper when `first` left photos out."""
    pycolmap = import_pycolmap()
    global_options = pycolmap.GlobalPipelineOptions()
    global_options.random_seed = SEED
    incremental_options = pycolmap.IncrementalPipelineOptions()
    incremental_options.random_seed = SEED
    run = {
        "global": lambda out: pycolmap.global_mapping(db_path, images, out, global_options),
        "incremental": lambda out: pycolmap.incremental_mapping(
            db_path, images, out, incremental_options
        ),
    }
    order = [first, *(m for m in run if m != first)]
    with pycolmap.Database.open(db_path) as db:
        n_photos = db.num_images()
    best, best_method = None, ""
    for method in order:
        out = tmp / method
        out.mkdir()
        models = run[method](out)
        rec = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        if rec is not None and (best is None or rec.num_reg_images() > best.num_reg_images()):
            best, best_method = rec, f"{method} mapping"
        if best is not None and best.num_reg_images() == n_photos:
            break
    if best is None:
        raise SfmError(
            f"{images}: neither global nor incremental mapping found a consistent set of photos: "
            "they overlap too little or show too little texture"
        )
    return best, best_method


def _write(rec: Any, model_dir: Path) -> None:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    rec.write_text(model_dir)


def _load_poses(path: str | Path) -> Capture:
    from .load import load_folder

    return load_folder(path)


def _known_views(known: Capture, images: Path, names: list[str]) -> dict[str, int]:
    """photo name -> its view in `known` (matched by name without extension); SfmError naming
    the photos without a known camera."""
    index = {Path(n).stem: i for i, n in enumerate(known.image_names)}
    missing = [n for n in names if Path(n).stem not in index]
    if missing:
        raise SfmError(
            f"{images}: {len(missing)} photo(s) have no camera in the known poses "
            f"({known.source or known.name}): {', '.join(missing)}"
        )
    return {n: index[Path(n).stem] for n in names}


def _points_for_known_poses(
    images: Path,
    names: list[str],
    known: Capture,
    masks_dir: Path | None,
    tmp: Path,
    model_dir: Path,
    progress: bool,
    threads: int,
) -> SfmReport:
    """Known cameras: a visual hull when there are masks, else triangulated features."""
    pycolmap = import_pycolmap()
    views = _known_views(known, images, names)
    db_path = tmp / "database.db"
    if masks_dir is not None and known.masks is not None:
        stages = _Stages(["visual hull", "writing"], progress)
        rec = _posed_reconstruction(known, images, views, ids=None)
        points, colours = stages.run("visual hull", lambda: visual_hull(known))
        for xyz, rgb in zip(points.double().numpy(), colours.numpy()):
            rgb8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
            rec.add_point3D(xyz, pycolmap.Track(), rgb8)
        method = "visual hull"
    else:
        stages = _Stages(["features", "matching", "triangulation", "writing"], progress)
        _extract_and_match(
            stages, db_path, images, names, pycolmap.CameraMode.PER_IMAGE, None, threads
        )
        rec = stages.run("triangulation", lambda: _triangulate(db_path, known, images, views, tmp))
        method = "triangulation"
    try:
        stages.run("writing", lambda: _write(rec, model_dir))
    finally:
        stages.close()
    return SfmReport(
        model_dir, method, len(names), sorted(names), [], rec.num_points3D(), stages.seconds
    )


def _camera_at_native_size(known: Capture, i: int, photo: Path, camera_id: int) -> Any:
    """A PINHOLE pycolmap camera for view i of `known`, its K scaled to the photo's own size."""
    pycolmap = import_pycolmap()
    w, h = image_size(photo)
    K = known.Ks[i].double().numpy()
    sx, sy = w / known.width, h / known.height
    return pycolmap.Camera(
        camera_id=camera_id,
        model="PINHOLE",
        width=w,
        height=h,
        params=[K[0, 0] * sx, K[1, 1] * sy, K[0, 2] * sx, K[1, 2] * sy],
    )


def _posed_reconstruction(
    known: Capture, images: Path, views: dict[str, int], ids: dict[str, tuple[int, int]] | None
) -> Any:
    """A pycolmap Reconstruction holding the known cameras, one per photo, all registered.
    ids: photo name -> (image id, camera id) in the feature database (None: 1, 2, ...)."""
    pycolmap = import_pycolmap()
    rec = pycolmap.Reconstruction()
    for k, (name, i) in enumerate(sorted(views.items()), start=1):
        image_id, camera_id = (k, k) if ids is None else ids[name]
        rec.add_camera_with_trivial_rig(
            _camera_at_native_size(known, i, images / name, camera_id=camera_id)
        )
        V = known.viewmats[i].double().numpy()  # [4, 4] world-to-camera
        image = pycolmap.Image(name=name, camera_id=camera_id, image_id=image_id)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(V[:3, :4]))
    return rec


def _triangulate(
    db_path: Path, known: Capture, images: Path, views: dict[str, int], tmp: Path
) -> Any:
    """Triangulate the matched features with the cameras fixed at the known poses."""
    pycolmap = import_pycolmap()
    with pycolmap.Database.open(db_path) as db:
        db_images = {im.name: im for im in db.read_all_images()}
        for name, i in views.items():
            im = db_images[name]
            # the database camera must be the one the reconstruction holds, or
            # triangulate_points stops on "existing_camera.model_id == camera.model_id"
            db.update_camera(_camera_at_native_size(known, i, images / name, im.camera_id))
    rec = _posed_reconstruction(
        known, images, views, ids={n: (im.image_id, im.camera_id) for n, im in db_images.items()}
    )
    out = tmp / "triangulated"
    out.mkdir()
    return pycolmap.triangulate_points(rec, db_path, images, out)


def triangulate_capture(cap: Capture, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(points [M, 3], colours [M, 3] in [0, 1]) triangulated from a capture's own photos and
    cameras: its images are written to a temporary folder and matched there."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="splatcourse_tri_") as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        for name, img in zip(cap.image_names, cap.images):
            pixels = (img.clamp(0, 1).numpy() * 255).round().astype(np.uint8)  # [H, W, 3]
            Image.fromarray(pixels).save(root / "images" / (Path(name).stem + ".png"))
        report = capture(root, poses=cap, progress=progress)
        from .colmap import read_colmap_model

        model = read_colmap_model(report.model_dir)
    return torch.from_numpy(model.points).float(), torch.from_numpy(model.colors / 255.0).float()
