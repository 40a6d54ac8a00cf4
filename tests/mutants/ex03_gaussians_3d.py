from splatcourse.grading.harness import Mutant

# The end-to-end cells: they run the student's whole pipeline, so every wrong stage that shows
# on the random scenes loses them too.
END_TO_END = {
    "test_render_visible",
    "test_render_hidden",
    "test_gradients_hidden",
    "test_real_scene",
}

MUTANTS = [
    # used the quaternion as it came: an unnormalised one scales the "rotation"
    Mutant(
        "unnormalised-quaternion",
        "rotation",
        "q = quats / quats.norm(dim=-1, keepdim=True)",
        "q = quats",
        fails={
            "test_rotation_visible",
            "test_rotation_hidden",
            "test_render_hidden",
            "test_gradients_hidden",
            "test_real_scene",
        },
    ),
    # built R^T (the signs of the w terms flipped): rotates the wrong way
    Mutant(
        "transposed-rotation",
        "rotation",
        "        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),\n"
        "        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),\n"
        "        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),",
        "        1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),\n"
        "        2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x),\n"
        "        2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y),",
        fails={"test_rotation_visible", "test_rotation_hidden"} | END_TO_END,
    ),
    # R S R^T: the scales are not squared
    Mutant(
        "scales-not-squared",
        "covariance",
        "return M @ M.transpose(-1, -2)",
        "return M @ R.transpose(-1, -2)",
        fails={"test_covariance_visible", "test_covariance_hidden"} | END_TO_END,
    ),
    # forgot the 0.3 px low-pass filter
    Mutant(
        "no-dilation",
        "projection",
        "covs2d = J @ cov_cam @ J.transpose(-1, -2) + EPS2D * torch.eye(2, dtype=covs.dtype)",
        "covs2d = J @ cov_cam @ J.transpose(-1, -2)",
        fails={"test_projection_visible", "test_projection_hidden"} | END_TO_END,
    ),
    # the low-pass filter added to the conic (the inverse) instead of the covariance: one span
    # from the covariance's last line to the conic's, edited at both ends
    Mutant(
        "dilation-on-conic",
        "projection",
        " + EPS2D * torch.eye(2, dtype=covs.dtype)\n"
        "    return means2d, covs2d, z\n\n\n"
        "def conic(covs2d):\n"
        "    a, b, c = covs2d[:, 0, 0], covs2d[:, 0, 1], covs2d[:, 1, 1]\n"
        "    det = a * c - b * b\n"
        "    return torch.stack([c / det, -b / det, a / det], dim=-1)",
        "\n"
        "    return means2d, covs2d, z\n\n\n"
        "def conic(covs2d):\n"
        "    a, b, c = covs2d[:, 0, 0], covs2d[:, 0, 1], covs2d[:, 1, 1]\n"
        "    det = a * c - b * b\n"
        "    return torch.stack([c / det + EPS2D, -b / det, a / det + EPS2D], dim=-1)",
        fails={"test_projection_visible", "test_projection_hidden"} | END_TO_END,
    ),
    # wrong sign of the u term of the Jacobian (invisible on the optical axis)
    Mutant(
        "jacobian-sign",
        "projection",
        "-fx * u / z",
        "fx * u / z",
        fails={"test_projection_hidden"} | END_TO_END,
    ),
    # projected the world-space covariance (forgot to rotate it into the camera frame)
    Mutant(
        "world-covariance",
        "projection",
        "cov_cam = W @ covs @ W.T",
        "cov_cam = covs",
        fails={"test_projection_hidden"} | END_TO_END,
    ),
    # no clamp of x/z, y/z before the Jacobian: only Gaussians far off screen change
    Mutant(
        "no-jacobian-clamp",
        "projection",
        "    u = torch.clamp(x / z, -cx / fx - slack_x, (width - cx) / fx + slack_x)  # [N]\n"
        "    v = torch.clamp(y / z, -cy / fy - slack_y, (height - cy) / fy + slack_y)\n",
        "    u, v = x / z, y / z\n",
        fails={"test_projection_hidden", "test_render_hidden", "test_gradients_hidden"},
    ),
    # band 1 without its minus signs
    Mutant(
        "sh-band1-signs",
        "sh",
        "basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]",
        "basis += [SH_C1 * y, SH_C1 * z, SH_C1 * x]",
        fails={"test_sh_visible", "test_sh_hidden"} | END_TO_END,
    ),
    # band 3 in the wrong order (x- and y-flavoured functions swapped)
    Mutant(
        "sh-band3-order",
        "sh",
        "        basis += [-SH_C3a * y * (3 * xx - yy), SH_C3b * x * y * z,",
        "        basis += [-SH_C3a * x * (xx - 3 * yy), SH_C3b * x * y * z,",
        fails={
            "test_sh_hidden",
            "test_render_visible",
            "test_render_hidden",
            "test_gradients_hidden",
        },
    ),
    # the direction from the Gaussian to the camera (the reverse of 3DGS's)
    Mutant(
        "sh-direction-reversed",
        "sh",
        "d = means - (-W.T @ t)",
        "d = (-W.T @ t) - means",
        fails={"test_sh_visible", "test_sh_hidden"} | END_TO_END,
    ),
    # no +0.5 / clamp
    Mutant(
        "sh-no-clamp",
        "sh",
        "return torch.clamp(rgb + 0.5, min=0.0)",
        "return rgb + 0.5",
        fails={
            "test_sh_visible",
            "test_sh_hidden",
            "test_render_visible",
            "test_render_hidden",
            "test_gradients_hidden",
        },
    ),
    # Gaussians behind the camera are drawn too (mirrored in front of it)
    Mutant(
        "no-near-plane-cull",
        "cull",
        "keep = (depths >= NEAR_PLANE) & on_screen & (opacities >= ALPHA_MIN)",
        "keep = on_screen & (opacities >= ALPHA_MIN)",
        fails={
            "test_cull_visible",
            "test_cull_hidden",
            "test_render_hidden",
            "test_gradients_hidden",
        },
    ),
    # sorted back to front
    Mutant(
        "back-to-front",
        "cull",
        "return idx[torch.argsort(depths[idx])]",
        "return idx[torch.argsort(depths[idx], descending=True)]",
        fails={"test_cull_visible", "test_cull_hidden"} | END_TO_END,
    ),
    # d^T conic d without the 1/2: every footprint shrinks by sqrt(2)
    Mutant(
        "missing-half",
        "alphas",
        "power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy",
        "power = a * dx * dx + c * dy * dy + 2 * b * dx * dy",
        fails={"test_alphas_visible", "test_alphas_hidden"} | END_TO_END,
    ),
    # pairs fainter than 1/255 kept
    Mutant(
        "no-alpha-skip",
        "alphas",
        "return torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))",
        "return alpha",
        fails={"test_alphas_hidden"} | END_TO_END,
    ),
    # the pixel never stops: everything behind a saturated pixel still adds its bit
    Mutant(
        "no-early-stop",
        "composite",
        "    alphas = alphas * alive\n",
        "",
        fails={"test_composite_visible", "test_composite_hidden", "test_render_hidden"},
    ),
    # transmittance including the item itself: every layer is dimmed by its own alpha
    Mutant(
        "inclusive-transmittance",
        "composite",
        "weights = alphas * T[:, :-1]",
        "weights = alphas * T[:, 1:]",
        fails={"test_composite_visible", "test_composite_hidden"} | END_TO_END,
    ),
    # honest: a loop over the Gaussians, pixel state carried along (gsplat's kernel, in Python)
    Mutant(
        "honest-loop-compositor",
        "composite",
        "    with torch.no_grad():  # which pairs come before the early stop\n"
        "        alive = torch.cumprod(1 - alphas, dim=1) > T_MIN  # [P, G]\n"
        "    alphas = alphas * alive\n"
        "    ones = alphas.new_ones(alphas.shape[0], 1)\n"
        "    T = torch.cumprod(torch.cat([ones, 1 - alphas], dim=1), dim=1)  # [P, G + 1]\n"
        "    weights = alphas * T[:, :-1]  # alpha_i T_i\n"
        "    return weights @ values, 1 - T[:, -1]\n",
        "    P, G = alphas.shape\n"
        "    out = values.new_zeros(P, values.shape[1])\n"
        "    T = alphas.new_ones(P)\n"
        "    stopped = torch.zeros(P, dtype=torch.bool)\n"
        "    for i in range(G):\n"
        "        a = alphas[:, i]\n"
        "        with torch.no_grad():\n"
        "            stopped = stopped | (T * (1 - a) <= T_MIN)\n"
        "        a = torch.where(stopped, torch.zeros_like(a), a)\n"
        "        out = out + (a * T)[:, None] * values[i]\n"
        "        T = T * (1 - a)\n"
        "    return out, 1 - T\n",
    ),
    # honest: transmittance in log space, the quadratic form as a matrix product, the camera
    # centre from the inverse view matrix
    Mutant(
        "honest-log-space",
        "composite",
        "    ones = alphas.new_ones(alphas.shape[0], 1)\n"
        "    T = torch.cumprod(torch.cat([ones, 1 - alphas], dim=1), dim=1)  # [P, G + 1]\n"
        "    weights = alphas * T[:, :-1]  # alpha_i T_i\n"
        "    return weights @ values, 1 - T[:, -1]\n",
        "    log_T = torch.cumsum(torch.log1p(-alphas), dim=1)  # [P, G] after each pair\n"
        "    T_before = torch.exp(log_T - torch.log1p(-alphas))\n"
        "    out = torch.einsum('pg,gd->pd', alphas * T_before, values)\n"
        "    T_final = torch.exp(log_T[:, -1]) if alphas.shape[1] else alphas.new_ones(len(alphas))\n"
        "    return out, 1 - T_final\n",
    ),
    Mutant(
        "honest-quadratic-form",
        "alphas",
        "    a, b, c = conics.unbind(-1)  # [G] each\n"
        "    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy\n",
        "    d = torch.stack([dx, dy], dim=-1)  # [P, G, 2]\n"
        "    Q = torch.stack([conics[:, 0], conics[:, 1], conics[:, 1], conics[:, 2]], -1)\n"
        "    Q = Q.reshape(-1, 2, 2)  # [G, 2, 2]\n"
        "    power = 0.5 * torch.einsum('pgi,gij,pgj->pg', d, Q, d)\n",
    ),
    Mutant(
        "honest-inverse-viewmat",
        "sh",
        "d = means - (-W.T @ t)",
        "d = means - torch.linalg.inv(viewmat)[:3, 3]",
    ),
    # honest but sloppy with dtypes: float32 constants in a float64 computation (rounding at
    # 1e-8, far inside the bars)
    Mutant(
        "honest-float32-constants",
        "alphas",
        "alpha = torch.clamp(opacities * torch.exp(-power), max=ALPHA_MAX)",
        "alpha = torch.minimum(opacities * torch.exp(-power), torch.tensor(0.999))",
    ),
    Mutant(
        "honest-float32-filter",
        "projection",
        "EPS2D * torch.eye(2, dtype=covs.dtype)",
        "torch.tensor([[0.3, 0.0], [0.0, 0.3]])",
    ),
    # honest: a UserWarning on stderr while the tests call it costs nothing
    Mutant(
        "honest-user-warning",
        "rotation",
        "    q = quats / quats.norm(dim=-1, keepdim=True)\n",
        "    import warnings\n\n"
        '    warnings.warn("normalising the quaternions", UserWarning, stacklevel=2)\n'
        "    q = quats / quats.norm(dim=-1, keepdim=True)\n",
        fails=set(),
    ),
]
