"""Capture container: the held-out split rule, subsets, resizing and geometry helpers."""

import pytest
import torch

from splatcourse.capture import TEST_EVERY, Capture, split_indices


def tiny_capture(n=10, h=8, w=12) -> Capture:
    g = torch.Generator().manual_seed(0)
    V = torch.eye(4).repeat(n, 1, 1)
    V[:, 2, 3] = 5.0  # cameras at z = -5 looking along +z at the origin
    V[:, 0, 3] = torch.arange(n, dtype=torch.float32) * 0.1
    K = torch.tensor([[10.0, 0, w / 2], [0, 10.0, h / 2], [0, 0, 1]]).repeat(n, 1, 1)
    return Capture(
        name="tiny",
        images=torch.rand(n, h, w, 3, generator=g),
        masks=torch.rand(n, h, w, generator=g) > 0.5,
        viewmats=V,
        Ks=K,
        image_names=[f"{i:02d}.png" for i in range(n)],
        points=torch.zeros(0, 3),
        point_colors=torch.zeros(0, 3),
    )


def test_split_rule_every_8th_view_is_held_out():
    assert TEST_EVERY == 8
    train, test = split_indices(50)
    assert test == [0, 8, 16, 24, 32, 40, 48]
    assert sorted(train + test) == list(range(50)) and not set(train) & set(test)
    train, test = split_indices(48)
    assert test == [0, 8, 16, 24, 32, 40] and len(train) == 42
    with pytest.raises(ValueError):
        split_indices(0)


def test_train_test_subsets_follow_the_full_capture_split():
    cap = tiny_capture(n=17)
    assert cap.test_idx == [0, 8, 16]
    test = cap.test()
    assert test.image_names == ["00.png", "08.png", "16.png"]
    assert torch.equal(test.images[1], cap.images[8])
    assert len(cap.train()) == 14 and "08.png" not in cap.train().image_names
    v = cap.view(3)
    assert v.name == "03.png" and torch.equal(v.K, cap.Ks[3])


def test_shape_errors_name_the_field():
    cap = tiny_capture()
    with pytest.raises(ValueError, match="Ks"):
        Capture(
            name="bad",
            images=cap.images,
            masks=None,
            viewmats=cap.viewmats,
            Ks=cap.Ks[:3],
            image_names=cap.image_names,
            points=cap.points,
            point_colors=cap.point_colors,
        )
    with pytest.raises(ValueError, match="image names"):
        Capture(
            name="bad",
            images=cap.images,
            masks=None,
            viewmats=cap.viewmats,
            Ks=cap.Ks,
            image_names=["a"],
            points=cap.points,
            point_colors=cap.point_colors,
        )


def test_downscale_scales_intrinsics_and_keeps_projection_consistent():
    cap = tiny_capture(h=40, w=60)
    small = cap.downscale(2)
    assert (small.height, small.width) == (20, 30)
    assert torch.allclose(small.Ks[:, 0, 0], cap.Ks[:, 0, 0] / 2)
    assert torch.allclose(small.Ks[:, :2, 2], cap.Ks[:, :2, 2] / 2)
    # a world point lands at half the pixel coordinates
    x = torch.tensor([[0.3, -0.2, 1.0]])
    assert torch.allclose(small.project(x)[0], cap.project(x)[0] / 2, atol=1e-5)
    # area averaging: the mean colour is preserved
    assert torch.allclose(small.images.mean(), cap.images.mean(), atol=1e-4)
    assert small.masks.shape == (10, 20, 30)


def test_camera_centres_and_scene_scale():
    cap = tiny_capture(n=5)
    c = cap.camera_centers()
    assert torch.allclose(c[:, 2], torch.full((5,), -5.0))
    assert torch.allclose(c[:, 0], -torch.arange(5) * 0.1)
    assert cap.scene_scale() == pytest.approx(1.1 * 0.2, rel=1e-5)
    box = cap.object_bbox()
    assert box.shape == (2, 3) and (box[1] > box[0]).all()


def test_crop_shifts_principal_point_and_keeps_projection_consistent():
    cap = tiny_capture(h=40, w=60)
    cap.masks[:] = False
    cap.masks[:, 10:20, 30:35] = True
    box = cap.mask_bbox(margin=0.0)
    assert box == (30, 10, 35, 20)
    assert cap.mask_bbox(margin=0.1) == (24, 6, 41, 24)
    crop = cap.crop(*box)
    assert (crop.width, crop.height) == (5, 10) and crop.masks.all()
    assert torch.equal(crop.images[2], cap.images[2, 10:20, 30:35])
    x = torch.tensor([[0.3, -0.2, 1.0]])
    assert torch.allclose(crop.project(x)[0], cap.project(x)[0] - torch.tensor([30.0, 10.0]))
    with pytest.raises(ValueError, match="outside"):
        cap.crop(0, 0, 61, 10)
