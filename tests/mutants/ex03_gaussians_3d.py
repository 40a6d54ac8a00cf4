from splatcourse.grading.harness import Mutant

MUTANTS = [
    # used the quaternion as it came: an unnormalised one scales the "rotation"
    Mutant(
        "unnormalised-quaternion",
        "rotation",
        "q = quats / quats.norm(dim=-1, keepdim=True)",
        "q = quats",
        fails={"test_rotation_visible", "test_rotation_hidden"},
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
        fails={"test_rotation_visible", "test_rotation_hidden"},
    ),
    # R S R^T: the scales are not squared
    Mutant(
        "scales-not-squared",
        "covariance",
        "return M @ M.transpose(-1, -2)",
        "return M @ R.transpose(-1, -2)",
        fails={"test_covariance_visible", "test_covariance_hidden"},
    ),
    # forgot the 0.3 px low-pass filter
    Mutant(
        "no-dilation",
        "projection",
        "covs2d = J @ cov_cam @ J.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=covs.dtype)",
        "covs2d = J @ cov_cam @ J.transpose(-1, -2)",
        fails={"test_projection_visible", "test_projection_hidden"},
    ),
    # wrong sign of the x/z^2 term of the Jacobian (invisible on the optical axis)
    Mutant(
        "jacobian-sign",
        "projection",
        "-fx * x / z**2",
        "fx * x / z**2",
        fails={"test_projection_hidden"},
    ),
    # projected the world-space covariance (forgot to rotate it into the camera frame)
    Mutant(
        "world-covariance",
        "projection",
        "cov_cam = W @ covs @ W.T",
        "cov_cam = covs",
        fails={"test_projection_hidden"},
    ),
    # transmittance including the item itself: every layer is dimmed by its own alpha
    Mutant(
        "inclusive-transmittance",
        "composite",
        "weights = alphas * T_before",
        "weights = alphas * T",
        fails={"test_composite_visible", "test_composite_hidden"},
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
