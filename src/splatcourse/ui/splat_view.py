"""Fitted splats in real 3D, in the browser: viser's WebGL viewer inside JupyterLab.

`SplatViewer` (viewer.py) re-renders on the CPU from fixed orbit angles, which is what a
pixel-exact photo-vs-render comparison needs. This viewer is the other half: viser's web client
sorts and draws the splats on the student's own GPU with a free camera (drag to orbit, scroll to
zoom), the viewer gsplat's and nerfstudio's users know. The capture's cameras are drawn as
frusta with their photos, held-out ones in another colour, and the view starts at a held-out
camera. The whole web client ships inside viser's wheel, so nothing is fetched from the internet
(the share-link button, which would need it, is hidden).

Two ways to show it (``view_splats``):
- a snapshot (the default): a self-contained page in an iframe whose camera still moves and
  which needs no server once drawn: 0.8 MB of viewer code plus about 40 bytes per splat (1 MB
  for the 4,565 splats of exercise 3's axe, 1.8 MB for the 25,000 of exercise 4's);
- a live server (``live=True``): an iframe on viser's own port, which Python can keep changing.
  Behind JupyterHub the browser cannot reach that port; jupyter-server-proxy forwards
  ``/user/<name>/proxy/<port>/`` to it, and that is the address used there.

A notebook opened untrusted (e.g. handed out with its outputs) has its iframes stripped: the
cell must be re-run to see the viewer again.

Used by: lessons 4 and 5, exercise 4 and ``splatcourse view``.
"""

from __future__ import annotations

import contextlib
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import viser
import viser.transforms as vtf
from torch import Tensor

from ..capture import Capture
from ..splat3d import covariance_from_quat_scale, sh_to_rgb
from ..splat3d.scenes import GaussianScene
from ..train.export import load_ply

__all__ = [
    "HELD_OUT_COLOUR",
    "TRAIN_COLOUR",
    "SplatView",
    "ViserSplats",
    "course_params",
    "live_url",
    "serve_ply",
    "splats_for_viser",
    "view_splats",
    "viewer_scale",
]

#: Frustum colours (0-255 RGB): training cameras dark grey, held-out cameras orange.
TRAIN_COLOUR = (60, 60, 60)
HELD_OUT_COLOUR = (240, 120, 0)
#: The median splat size (standard deviation) in the viewer's units; see `viewer_scale`.
VIEWER_SPLAT_STD = 0.1
THUMBNAIL_WIDTH = 96  # pixels of the photo drawn on each frustum
FRUSTUM_DEPTH = 0.05  # of the cameras' mean distance to the object
ENV_GRADING = "NBGRADER_EXECUTION"


@dataclass(frozen=True)
class ViserSplats:
    """The arrays ``scene.add_gaussian_splats`` takes, for N Gaussians."""

    centers: np.ndarray  # [N, 3] float32
    covariances: np.ndarray  # [N, 3, 3] float32, R diag(s^2) R^T
    rgbs: np.ndarray  # [N, 3] float32 in [0, 1]
    opacities: np.ndarray  # [N, 1] float32 in [0, 1], after the sigmoid


def viewer_scale(params: dict[str, Tensor]) -> float:
    """The factor the whole scene is multiplied by in the viewer, so small splats stay sharp.

    viser sends covariances as float16, whose normal range starts at 6e-5: a 1 mm splat in a
    scene measured in metres has variances of 1e-6, which float16 holds only as a subnormal
    with about four significant bits, and a 0.1 mm one rounds to zero. Multiplying every length (splat centres, cameras) by one factor
    changes nothing in the picture but moves the variances into float16's range: the factor
    makes the median splat standard deviation `VIEWER_SPLAT_STD`, so splats 10x smaller than
    the median and 1000x larger keep three significant digits.
    """
    stds = params["scales"].detach().float().exp()  # [N, 3]
    if stds.numel() == 0:
        return 1.0
    median = float(stds.median())
    return VIEWER_SPLAT_STD / median if median > 0 else 1.0


@torch.no_grad()
def splats_for_viser(params: dict[str, Tensor], scale: float = 1.0) -> ViserSplats:
    """Convert the course's Gaussians to viser's arrays, every length multiplied by `scale`.

    The course stores what Adam optimises (log-scales, raw quaternions, opacity logits, SH
    coefficients); viser wants what the rasterizer computes from them. viser 1.1.1 has no
    spherical harmonics, so the colour is the DC band's (view-independent) colour, clamped.
    """
    means = params["means"].detach().float()  # [N, 3]
    stds = params["scales"].detach().float().exp() * scale  # [N, 3]
    covariances = covariance_from_quat_scale(params["quats"].detach().float(), stds)  # [N, 3, 3]
    rgbs = sh_to_rgb(params["sh0"].detach().float().reshape(-1, 3)).clamp(0, 1)  # [N, 3]
    opacities = torch.sigmoid(params["opacities"].detach().float().reshape(-1, 1))  # [N, 1]
    return ViserSplats(
        centers=(means * scale).numpy(),
        covariances=covariances.numpy(),
        rgbs=rgbs.numpy(),
        opacities=opacities.numpy(),
    )


def live_url(port: int) -> str:
    """Where the browser finds a live server on `port` of the kernel's machine.

    Under JupyterHub ($JUPYTERHUB_SERVICE_PREFIX, e.g. ``/user/ada/``) the browser is
    elsewhere and only reaches the user's server, so the path goes through
    jupyter-server-proxy; otherwise the browser runs on the kernel's machine.
    """
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return f"{prefix.rstrip('/')}/proxy/{port}/"
    return f"http://localhost:{port}/"


def _thumbnail(image: Tensor) -> np.ndarray:
    """[h, w, 3] uint8 copy of a photo [H, W, 3] in [0, 1], THUMBNAIL_WIDTH pixels wide."""
    height = max(1, round(image.shape[0] * THUMBNAIL_WIDTH / image.shape[1]))
    small = F.interpolate(image.permute(2, 0, 1)[None], size=(height, THUMBNAIL_WIDTH), mode="area")
    return (small[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _camera_pose(viewmat: Tensor, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of a world-to-camera matrix's camera in the viewer's units (viser's
    cameras follow OpenCV's convention, as the captures do)."""
    R = viewmat[:3, :3].double()  # world -> camera
    centre = -(R.T @ viewmat[:3, 3].double()) * scale  # [3]
    return vtf.SO3.from_matrix(R.T.numpy()).wxyz, centre.numpy()


def _vertical_fov(K: Tensor, height: int) -> float:
    return float(2 * torch.atan(height / (2 * K[1, 1])))


class SplatView:
    """The viser server holding the splats (and cameras), shown as an iframe when displayed.

    Put it last in a cell. ``splats`` is viser's handle to the splats (``.visible`` hides
    them), ``cameras`` the frusta's handles (one per view, in the capture's order), ``server``
    the viser server itself. The server listens on loopback until ``stop()`` or the kernel
    ends, for a snapshot too: changing the scene and displaying the view again shows the change.
    """

    def __init__(
        self, params: dict[str, Tensor], live: bool, height: int = 500, port: int = 0
    ) -> None:
        self.live, self.height = live, height
        self.scale = viewer_scale(params)
        arrays = splats_for_viser(params, self.scale)
        self.centers = arrays.centers  # [N, 3] in the viewer's units
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints its address box
            self.server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
        self.server.gui.configure_theme(show_share_button=False)  # it needs the internet
        self.splats = self.server.scene.add_gaussian_splats(
            "/splats", arrays.centers, arrays.covariances, arrays.rgbs, arrays.opacities
        )
        self.cameras: list[viser.CameraFrustumHandle] = []

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        return live_url(self.port)

    def add_capture(self, capture: Capture) -> None:
        """The capture's cameras as frusta with their photos; the view starts at a held-out
        camera (the first training one if none is held out), whose frustum starts hidden: its
        photo would fill the view. Tick it in the scene tree to hold the photo over the splats."""
        distance = float((capture.camera_centers() - capture.scene_center()).norm(dim=-1).mean())
        held_out = set(capture.test_idx)
        start = min(held_out) if held_out else 0
        for i in range(len(capture)):
            wxyz, position = _camera_pose(capture.viewmats[i], self.scale)
            frustum = self.server.scene.add_camera_frustum(
                f"/cameras/{i:03d}",
                fov=_vertical_fov(capture.Ks[i], capture.height),
                aspect=capture.width / capture.height,
                scale=FRUSTUM_DEPTH * distance * self.scale,
                thickness=1.5,
                thickness_units="screen",
                color=HELD_OUT_COLOUR if i in held_out else TRAIN_COLOUR,
                image=_thumbnail(capture.images[i]),
                wxyz=wxyz,
                position=position,
                visible=i != start,
            )
            self.cameras.append(frustum)
        self.start_at(capture, start)

    def start_at(self, capture: Capture, index: int) -> None:
        """Put the initial camera (and "Reset View") where view `index` of `capture` was."""
        viewmat = capture.viewmats[index].double()
        _, position = _camera_pose(viewmat, self.scale)
        forward, down = viewmat[2, :3].numpy(), viewmat[1, :3].numpy()  # camera z, y in world
        centre = capture.scene_center().double().numpy() * self.scale
        reach = max(float(np.dot(centre - position, forward)), 1e-6)
        camera = self.server.initial_camera
        camera.position = position
        camera.look_at = position + reach * forward
        camera.up = -down
        camera.fov = _vertical_fov(capture.Ks[index], capture.height)
        self.server.scene.set_up_direction(-down)

    def frame_splats(self) -> None:
        """With no capture: look at the splats' median from 2.5 times their spread away."""
        if len(self.centers) == 0:
            return
        middle = np.median(self.centers, axis=0)  # [3]
        spread = float(np.percentile(np.linalg.norm(self.centers - middle, axis=1), 90))
        self.server.initial_camera.look_at = middle
        self.server.initial_camera.position = middle + 2.5 * max(spread, 1e-6) / np.sqrt(3)

    def snapshot_html(self) -> str:
        """The scene as it is now, as one self-contained page."""
        return self.server.get_scene_serializer().as_html()

    def _repr_html_(self) -> str:
        if self.live:
            source = f'src="{html.escape(self.url, quote=True)}"'
        else:
            source = f'srcdoc="{html.escape(self.snapshot_html(), quote=True)}"'
        return (
            f'<iframe class="splatcourse-splat-view" {source} width="100%" '
            f'height="{self.height}" style="border:1px solid #ddd"></iframe>'
        )

    def stop(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # viser says it stopped
            self.server.stop()


def course_params(splats: dict[str, Tensor] | GaussianScene | str | Path) -> dict[str, Tensor]:
    """The trainer's parameter dict (log-scales, opacity logits, ``sh0``) for any of the
    three ways the course holds splats: that dict, a lesson scene (activated values) or a
    3DGS .ply file."""
    if isinstance(splats, str | Path):
        return load_ply(splats)
    if isinstance(splats, GaussianScene):
        return {
            "means": splats.means,
            "scales": splats.scales.log(),
            "quats": splats.quats,
            "opacities": torch.logit(splats.opacities),  # sigmoid(logit(1)) is still 1
            "sh0": splats.sh[:, :1],
        }
    return splats


def serve_ply(path: str | Path, port: int = 0) -> SplatView:
    """A live viewer of any 3DGS .ply (``splatcourse view``); port 0 picks a free one."""
    view = SplatView(load_ply(path), live=True, port=port)
    view.frame_splats()
    return view


class _NotShownWhileGrading:
    """What `view_splats` returns under nbgrader: a line of text, no server."""

    def _repr_html_(self) -> str:
        return "<p>(The 3D viewer is not started while nbgrader grades.)</p>"


def view_splats(
    splats: dict[str, Tensor] | GaussianScene | str | Path,
    capture: Capture | None = None,
    live: bool = False,
    height: int = 500,
) -> SplatView | _NotShownWhileGrading:
    """Show splats (a parameter dict, a lesson scene or a 3DGS .ply path) in viser's viewer.

    capture: draws its cameras with their photos (held-out ones orange) and starts the view
    at a held-out camera. live: serve the viewer from the kernel instead of embedding a
    snapshot (see the module docstring). height: of the iframe, in pixels. Under nbgrader
    ($NBGRADER_EXECUTION) nothing is started: grading runs headless.
    """
    if os.environ.get(ENV_GRADING):
        return _NotShownWhileGrading()
    view = SplatView(course_params(splats), live=live, height=height)
    if capture is not None:
        view.add_capture(capture)
    else:
        view.frame_splats()
    return view
