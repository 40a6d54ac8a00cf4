"""The alpha-compositing rules, in one place, with where each number comes from.

Every renderer in the course blends Gaussians front to back with
``alpha_i = min(ALPHA_MAX, opacity_i * exp(-power_i))`` and
``C = sum_i c_i alpha_i T_i``, ``T_i = prod_{j<i} (1 - alpha_j)``. Three thresholds shape
that rule; the fast rasterizer, the dense reference, the hand-written compositing of the
lessons and the projection's screen-box bound must agree on them, so they live here.

``ALPHA_MAX = 0.999``
    One Gaussian never blocks all the light behind it: ``1 - alpha`` stays > 0, so the
    transmittance never hits exactly 0 and the backward pass can divide by ``1 - alpha``.
    The 3D rasterizer follows gsplat 1.5.3, which clamps at 0.999 (the 3DGS paper, Kerbl et
    al. 2023, and its reference CUDA code used 0.99).
``ALPHA_MIN = 1/255``
    A pair fainter than one 8-bit grey level is skipped (3DGS and gsplat). This is what
    makes a Gaussian's footprint finite: the ellipse ``power <= log(255 * opacity)``, whose
    threshold is :data:`POWER_AT_ALPHA_MIN` plus ``log(opacity)``.
``T_MIN = 1e-4``
    Early termination: a pixel stops before the pair that would bring its transmittance
    to ``T_MIN`` or below; the light still to come is invisible (3DGS and gsplat).
``TOY_ALPHA_MAX = 0.99``
    The 2D toy of lesson 1 (``toy2d``) follows the 3DGS paper's clamp; the 3D rasterizer
    follows gsplat's 0.999 (``ALPHA_MAX``).
"""

from __future__ import annotations

import math

__all__ = ["ALPHA_MAX", "ALPHA_MIN", "POWER_AT_ALPHA_MIN", "TOY_ALPHA_MAX", "T_MIN"]

ALPHA_MAX = 0.999  # gsplat 1.5.3's clamp (the 3DGS paper used 0.99)
ALPHA_MIN = 1.0 / 255.0  # skip pairs fainter than one 8-bit level
T_MIN = 1e-4  # stop a pixel before its transmittance falls to this
POWER_AT_ALPHA_MIN = -math.log(ALPHA_MIN)  # log 255: exp(-power) = 1/255 at opacity 1
TOY_ALPHA_MAX = 0.99  # the 2D toy follows the 3DGS paper's clamp
