"""Agisoft PhotoScan / Metashape camera XML, and capture folders built around one.

The XML stores, per sensor, the calibrated intrinsics in full-resolution pixels plus radial
distortion, and per camera a 4x4 camera-to-chunk transform. PhotoScan's camera axes are
x right, y down, z forward: already the OpenCV convention, so a pose only needs inverting.
The chunk may carry its own transform (here only a scale, the chunk's size in metres per
unit); applying it puts the scene in metres.

A *PhotoScan capture folder* (the layout of the shared MicroPasts captures) holds
`images/`, optionally `masks/` (`NAME_mask.png`, white = object; the other accepted names are
in `splatcourse.capture.frames`) and, anywhere below the folder, the camera XML and optionally
a Bundler `.out` export with the sparse points. This module only parses those files into
`Frame`s; `frames.assemble` reads the photos.

Lens distortion is ignored (pinhole cameras). For the socketed axe this was measured: at
512x341 the PhotoScan radial terms move a pixel at most 2.2 px in the image corners but at most
0.45 px (mean 0.08 px) anywhere inside the object masks, below what the splats can resolve.

Used by: the axe (lesson 5, exercise 4): its cameras come from a PhotoScan export.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundler import BundlerModel, read_bundler
from .dataset import Capture, points_inside_masks
from .frames import Frame, assemble, find_mask, masks_folder_in


@dataclass
class PhotoScanSensor:
    id: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float  # absolute pixels at width x height, origin at the image's top-left corner
    cy: float
    dist: dict[str, float] = field(default_factory=dict)  # k1, k2, k3, p1, p2 when present

    def K(self, width: int, height: int) -> np.ndarray:
        """Intrinsics for the same image resampled to width x height."""
        sx, sy = width / self.width, height / self.height
        return np.array(
            [[self.fx * sx, 0, self.cx * sx], [0, self.fy * sy, self.cy * sy], [0, 0, 1.0]]
        )


@dataclass
class PhotoScanCamera:
    id: str
    label: str  # the photo's file name
    sensor_id: str
    transform: np.ndarray | None  # [4, 4] camera-to-chunk, None when the camera is not aligned
    enabled: bool = True


@dataclass
class PhotoScanDocument:
    sensors: dict[str, PhotoScanSensor]
    cameras: list[PhotoScanCamera]
    chunk_to_world: np.ndarray  # [4, 4] similarity (rotation * scale, translation)
    region_center: np.ndarray | None = None  # chunk coordinates
    region_size: np.ndarray | None = None  # chunk units
    region_R: np.ndarray | None = None  # local box axes: local = R @ (x - center)

    @property
    def scale(self) -> float:
        return float(np.linalg.norm(self.chunk_to_world[:3, 0]))

    def viewmat(self, cam: PhotoScanCamera) -> np.ndarray:
        """World-to-camera (OpenCV) with world = chunk transform applied (metres if scaled)."""
        if cam.transform is None:
            raise ValueError(f"camera {cam.label!r} has no transform (not aligned)")
        c2w = self.chunk_to_world @ cam.transform
        R = c2w[:3, :3] / self.scale  # drop the scale: camera axes stay unit length
        V = np.eye(4)
        V[:3, :3] = R.T
        V[:3, 3] = -R.T @ c2w[:3, 3]
        return V


def _floats(text: str | None, n: int, where: str) -> np.ndarray:
    try:
        v = np.array((text or "").split(), dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: not a list of numbers: {text!r}") from None
    if v.size != n:
        raise ValueError(f"{where}: expected {n} numbers, got {v.size}")
    return v


def _child(parent: ET.Element, tag: str, where: str) -> ET.Element:
    """`parent`'s <tag>, which the export must have; `where` names the file and the parent."""
    el = parent.find(tag)
    if el is None:
        raise ValueError(f"{where} without <{tag}>")
    return el


def _attribute(el: ET.Element, name: str, where: str) -> str:
    value = el.get(name)
    if value is None:
        raise ValueError(f"{where} without the {name} attribute")
    return value


def _number(el: ET.Element, where: str) -> float:
    if el.text is None:
        raise ValueError(f"{where}: <{el.tag}> is empty")
    try:
        return float(el.text)
    except ValueError:
        raise ValueError(f"{where}: <{el.tag}> is not a number: {el.text!r}") from None


def _size(resolution: ET.Element, where: str) -> tuple[int, int]:
    """(width, height) of a <resolution width=.. height=..> element."""
    where = f"{where} <resolution>"
    return int(_attribute(resolution, "width", where)), int(_attribute(resolution, "height", where))


def _read_sensor(sensor: ET.Element, path: Path) -> PhotoScanSensor:
    sensor_id = _attribute(sensor, "id", f"camera XML {path}: <sensor>")
    where = f'camera XML {path}: <sensor id="{sensor_id}">'
    w, h = _size(_child(sensor, "resolution", where), where)
    cal = _child(sensor, "calibration", where)
    where = f"{where} <calibration>"
    calibrated_at = cal.find("resolution")
    if calibrated_at is not None:
        w, h = _size(calibrated_at, where)

    def number(tag: str, default: float | None = None) -> float:
        """The calibration's <tag>; `default` when it is absent (an error without one)."""
        el = cal.find(tag)
        if el is not None:
            return _number(el, where)
        if default is None:
            raise ValueError(f"{where} without <{tag}>")
        return default

    if cal.find("fx") is not None:  # PhotoScan 1.x: fx, fy and absolute cx, cy
        fx = number("fx")
        fy, cx, cy = number("fy", fx), number("cx"), number("cy")
    elif cal.find("f") is not None:  # Metashape: f, and cx, cy as offsets from the centre
        fx = fy = number("f")
        cx, cy = w / 2 + number("cx", 0.0), h / 2 + number("cy", 0.0)
    else:
        raise ValueError(f"{where} without a focal length (<fx> or <f>)")
    dist = {k: number(k) for k in ("k1", "k2", "k3", "k4", "p1", "p2") if cal.find(k) is not None}
    return PhotoScanSensor(sensor_id, w, h, fx, fy, cx, cy, dist)


def _read_camera(
    camera: ET.Element, path: Path, sensors: dict[str, PhotoScanSensor]
) -> PhotoScanCamera:
    label = _attribute(camera, "label", f"camera XML {path}: <camera>")
    where = f'camera XML {path}: <camera label="{label}">'
    t = camera.find("transform")
    T = None if t is None else _floats(t.text, 16, f"{path}: camera {label}").reshape(4, 4)
    sensor_id = _attribute(camera, "sensor_id", where)
    if sensor_id not in sensors:
        raise ValueError(f"{path}: camera {label} uses unknown sensor {sensor_id}")
    return PhotoScanCamera(
        _attribute(camera, "id", where),
        label,
        sensor_id,
        T,
        camera.get("enabled", "true") != "false",
    )


def _chunk_to_world(chunk: ET.Element, path: Path) -> np.ndarray:
    """[4, 4] the chunk's <transform> (rotation, scale, translation); the identity without one."""
    M = np.eye(4)
    ct = chunk.find("transform")
    if ct is None:
        return M
    rotation, scale, translation = ct.find("rotation"), ct.find("scale"), ct.find("translation")
    R = (
        np.eye(3)
        if rotation is None
        else _floats(rotation.text, 9, f"{path}: chunk rotation").reshape(3, 3)
    )
    s = 1.0 if scale is None else _number(scale, f"camera XML {path}: chunk <transform>")
    T = (
        np.zeros(3)
        if translation is None
        else _floats(translation.text, 3, f"{path}: chunk translation")
    )
    M[:3, :3], M[:3, 3] = s * R, T
    return M


def _read_region(chunk: ET.Element, doc: PhotoScanDocument, path: Path) -> None:
    """The chunk's <region> box, when it has one, into `doc` (all three fields or none)."""
    reg = chunk.find("region")
    if reg is None or reg.find("center") is None:
        return
    where = f"camera XML {path}: <region>"
    doc.region_center = _floats(_child(reg, "center", where).text, 3, f"{path}: region center")
    doc.region_size = _floats(_child(reg, "size", where).text, 3, f"{path}: region size")
    doc.region_R = _floats(_child(reg, "R", where).text, 9, f"{path}: region R").reshape(3, 3)


def read_photoscan_xml(path: str | Path) -> PhotoScanDocument:
    """Parse a PhotoScan (1.x) or Metashape camera export."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"PhotoScan XML not found: {path}") from None
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid XML ({e})") from None
    chunk = root.find("chunk")
    sensors_el = None if chunk is None else chunk.find("sensors")
    cameras_el = None if chunk is None else chunk.find("cameras")
    if chunk is None or sensors_el is None or cameras_el is None:
        raise ValueError(f"{path}: not a PhotoScan camera export (no chunk/sensors/cameras)")

    sensors = {}
    for s in sensors_el:
        sensor = _read_sensor(s, path)
        sensors[sensor.id] = sensor
    cameras = [
        _read_camera(c, path, sensors)
        for c in cameras_el
        if c.tag == "camera"  # camera groups are not used by the exports we read
    ]
    doc = PhotoScanDocument(sensors, cameras, _chunk_to_world(chunk, path))
    _read_region(chunk, doc, path)
    return doc


def bundler_agreement(doc: PhotoScanDocument, model: BundlerModel) -> float:
    """Largest difference between the PhotoScan poses and the Bundler export of the same
    cameras (rotation entries, and translations in world units); ~1e-10 when they agree."""
    if len(model.cameras) != len(doc.cameras):
        return float("inf")
    err = 0.0
    for cam, bc in zip(doc.cameras, model.cameras):
        if cam.transform is None or not bc.is_posed:
            continue
        err = max(err, float(np.abs(doc.viewmat(cam) - bc.viewmat_opencv()).max()))
    return err


def _find_camera_xml(folder: Path) -> Path:
    candidates = sorted(folder.glob("*.xml")) + sorted(folder.glob("*/*.xml"))
    for p in sorted(candidates, key=lambda p: "camera" not in p.name.lower()):
        try:
            root = ET.parse(p).getroot()
        except ET.ParseError:
            continue
        if root.find("chunk/sensors/sensor/calibration") is not None:
            return p
    raise FileNotFoundError(f"{folder}: no PhotoScan camera XML (with sensor calibration) found")


def _find_images_dir(folder: Path) -> Path:
    for d in ("images", "photos"):
        if (folder / d).is_dir():
            return folder / d
    raise FileNotFoundError(f"{folder}: no images/ (or photos/) folder")


def _cameras_with_photos(
    doc: PhotoScanDocument, images_dir: Path, xml_path: Path
) -> tuple[list[PhotoScanCamera], list[str]]:
    """(enabled cameras with both a pose and a photo, sorted by photo name; notes on the rest)."""
    photos = {p.name for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    posed = sorted(
        (c for c in doc.cameras if c.transform is not None and c.enabled), key=lambda c: c.label
    )
    used = [c for c in posed if c.label in photos]
    if not used:
        raise ValueError(
            f"{images_dir.parent}: no camera in {xml_path.name} has a photo in {images_dir}"
        )
    no_photo = [c.label for c in posed if c.label not in photos]
    no_pose = sorted(photos - {c.label for c in posed})
    notes = []
    if no_photo:
        notes.append(f"{len(no_photo)} posed cameras have no photo, skipped: {', '.join(no_photo)}")
    if no_pose:
        notes.append(
            f"{len(no_pose)} photos have no pose in {xml_path.name}, skipped: {', '.join(no_pose)}"
        )
    return used, notes


def _world_to_region(doc: PhotoScanDocument) -> np.ndarray:
    """4x4 map from PhotoScan world to a frame centred on the region box, axes along its
    edges (metric scale kept); the identity when the XML has no region."""
    if doc.region_center is None:
        return np.eye(4)
    # read_photoscan_xml sets the region's centre, size and axes together.
    assert doc.region_R is not None, "a region with a centre but no axes (region_R)"
    s = doc.scale
    c_world = (doc.chunk_to_world @ np.append(doc.region_center, 1.0))[:3]
    R_chunk = doc.chunk_to_world[:3, :3] / s
    R = doc.region_R @ R_chunk.T  # world directions -> box axes
    A = np.eye(4)
    A[:3, :3] = R
    A[:3, 3] = -R @ c_world
    return A


def _region_bbox(doc: PhotoScanDocument) -> np.ndarray | None:
    """[2, 3] the region box in the region frame (+-size/2, in metres when scaled), if any."""
    if doc.region_size is None:
        return None
    half = doc.region_size * doc.scale / 2
    return np.stack([-half, half])


def _frames(
    doc: PhotoScanDocument,
    cameras: list[PhotoScanCamera],
    images_dir: Path,
    world_to_region: np.ndarray,
) -> list[Frame]:
    region_to_world = np.linalg.inv(world_to_region)
    masks_dir = masks_folder_in(images_dir.parent)
    frames = []
    for cam in cameras:
        sensor = doc.sensors[cam.sensor_id]
        frames.append(
            Frame(
                name=cam.label,
                image_path=images_dir / cam.label,
                viewmat=doc.viewmat(cam) @ region_to_world,
                K=sensor.K(sensor.width, sensor.height),
                K_size=(sensor.width, sensor.height),
                mask_path=find_mask(masks_dir, cam.label),
            )
        )
    return frames


def _bundler_points(
    folder: Path, doc: PhotoScanDocument, xml_path: Path, world_to_region: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(points [M, 3] in the region frame, colours [M, 3] in [0, 1], notes) from the first
    Bundler `.out` below the folder, if it has the XML's poses (else no points)."""
    none = np.zeros((0, 3))
    outs = sorted(folder.glob("*.out")) + sorted(folder.glob("*/*.out"))
    if not outs:
        note = "no Bundler .out file: no SfM points (initialise at random in the bbox)"
        return none, none, [note]
    model = read_bundler(outs[0])
    err = bundler_agreement(doc, model)
    if err > 1e-6 * max(1.0, doc.scale):
        note = (
            f"{outs[0].name} does not match {xml_path.name} (max pose difference "
            f"{err:.3g}); its points are not used"
        )
        return none, none, [note]
    A = world_to_region
    return model.points @ A[:3, :3].T + A[:3, 3], model.colors / 255.0, []


def _drop_points_outside_region(cap: Capture) -> None:
    """SfM points more than 5% outside the region box are background or outliers."""
    if cap.bbox is None or not len(cap.points):
        return
    inside = (cap.points.abs() <= cap.bbox[1] * 1.05).all(-1)
    if (~inside).any():
        cap.notes.append(
            f"dropped {int((~inside).sum())} of {len(inside)} SfM points "
            f"outside the reconstruction region"
        )
    cap.points, cap.point_colors = cap.points[inside], cap.point_colors[inside]


def _drop_points_outside_masks(cap: Capture, min_fraction: float) -> None:
    if cap.masks is None or not len(cap.points):
        return
    keep = points_inside_masks(cap, min_fraction)
    if (~keep).any():
        cap.notes.append(
            f"dropped {int((~keep).sum())} of {len(keep)} SfM points that fall "
            f"outside the object masks"
        )
    cap.points, cap.point_colors = cap.points[keep], cap.point_colors[keep]


def load_photoscan_folder(
    folder: str | Path,
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str | None = None,
    attribution: str = "",
    point_mask_fraction: float = 0.5,
) -> Capture:
    """Load a PhotoScan capture folder (see module docstring) into a `Capture`.

    Only cameras with both a pose and a photo are used; the others are listed in `notes`.
    With a region box in the XML, the world frame is re-centred on the box and its axes turned
    to the box edges (still in metres when the chunk is scaled), so the object's bounding box
    is simply +-size/2. With masks, pixels outside the object are set to `background`, and
    SfM points that land outside the masks in more than (1 - point_mask_fraction) of the
    views that see them are dropped (background and outlier points). Mask names and photos
    of different sizes follow `splatcourse.capture.frames`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"capture folder not found: {folder}")
    xml_path = _find_camera_xml(folder)
    doc = read_photoscan_xml(xml_path)
    images_dir = _find_images_dir(folder)
    cameras, notes = _cameras_with_photos(doc, images_dir, xml_path)
    world_to_region = _world_to_region(doc)
    points, colors, point_notes = _bundler_points(folder, doc, xml_path, world_to_region)
    cap = assemble(
        _frames(doc, cameras, images_dir, world_to_region),
        name=name or folder.name,
        source=str(folder),
        width=width,
        background=background,
        points=points,
        point_colors=colors,
        bbox=_region_bbox(doc),
        attribution=attribution,
        notes=notes + point_notes,
    )
    _drop_points_outside_region(cap)
    _drop_points_outside_masks(cap, point_mask_fraction)
    cap.notes.append("lens distortion ignored (pinhole model); see splatcourse.capture.photoscan")
    return cap
