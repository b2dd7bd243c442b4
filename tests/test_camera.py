"""vhakit.geometry.camera against cv2.projectPoints, closed forms and image-space measurements."""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from vhakit.geometry.camera import (
    Camera,
    RigJitter,
    crop_and_resize_image,
    crop_resize_matrix,
    look_at,
    make_rig,
)
from vhakit.geometry.rotations import axis_angle_to_matrix

D64 = torch.float64


def random_camera(g: torch.Generator, batch=(), with_dist=True) -> Camera:
    R = axis_angle_to_matrix(torch.randn(*batch, 3, generator=g, dtype=D64) * 0.3)
    t = torch.tensor([0.1, -0.2, 3.0], dtype=D64) + 0.1 * torch.randn(*batch, 3, generator=g, dtype=D64)
    f = 500 + 100 * torch.rand(*batch, 2, generator=g, dtype=D64)
    K = torch.zeros(*batch, 3, 3, dtype=D64)
    K[..., 0, 0], K[..., 1, 1], K[..., 2, 2] = f[..., 0], f[..., 1], 1
    K[..., 0, 2], K[..., 1, 2] = 320.3, 241.7
    dist = torch.tensor([-0.2, 0.05, 1e-3, -2e-3, 0.01], dtype=D64) if with_dist else None
    if dist is not None:
        dist = dist + 0.01 * torch.randn(*batch, 5, generator=g, dtype=D64)
    return Camera(K=K, R=R, t=t, dist=dist, image_size=(640, 480))


def cv2_project(cam: Camera, pts: torch.Tensor) -> np.ndarray:
    rvec, _ = cv2.Rodrigues(cam.R.numpy())
    out, _ = cv2.projectPoints(pts.numpy(), rvec, cam.t.numpy(), cam.K.numpy(), cam.dist.numpy())
    return out[:, 0]


def test_project_matches_cv2_with_distortion():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        cam = random_camera(g)
        pts = torch.randn(200, 3, generator=g, dtype=D64) * 0.6
        assert np.abs(cam.project(pts).numpy() - cv2_project(cam, pts)).max() < 1e-6


def test_batched_projection_equals_per_camera_loop():
    g = torch.Generator().manual_seed(1)
    rig = random_camera(g, batch=(4,))
    pts = torch.randn(50, 3, generator=g, dtype=D64) * 0.5
    uv = rig.project(pts)  # (4, 50, 2): the rig broadcasts against shared points
    assert uv.shape == (4, 50, 2)
    for k in range(4):
        assert np.abs(uv[k].numpy() - cv2_project(rig[k], pts)).max() < 1e-6
    per_view = torch.randn(4, 50, 3, generator=g, dtype=D64) * 0.5  # one point set per view
    uv2 = rig.project(per_view)
    assert torch.allclose(uv2[2], rig[2].project(per_view[2]), atol=1e-9)


def test_projection_matrix_centre_and_inverse_transform():
    g = torch.Generator().manual_seed(2)
    cam = random_camera(g, batch=(3,), with_dist=False)
    pts = torch.randn(3, 20, 3, generator=g, dtype=D64)
    hom = torch.cat([pts, torch.ones(3, 20, 1, dtype=D64)], -1) @ cam.projection_matrix().transpose(-1, -2)
    assert torch.allclose(hom[..., :2] / hom[..., 2:], cam.project(pts), atol=1e-9)
    assert torch.allclose(cam.world_to_camera(cam.centre.unsqueeze(-2)), torch.zeros(3, 1, 3, dtype=D64), atol=1e-12)
    assert torch.allclose(cam.camera_to_world(cam.world_to_camera(pts)), pts, atol=1e-12)


def test_crop_resize_updates_K_consistently():
    g = torch.Generator().manual_seed(3)
    cam = random_camera(g)
    pts = torch.randn(100, 3, generator=g, dtype=D64) * 0.4
    box = torch.tensor([100.0, 60.0, 484.0, 444.0], dtype=D64)  # 384 x 384 box
    new = cam.crop_and_resize(box, (96, 128))  # anisotropic: x 1/4, y 1/3
    assert new.image_size == (96, 128)
    uv, uv_new = cam.project(pts), new.project(pts)
    expected_u = (uv[:, 0] - 100 + 0.5) * 96 / 384 - 0.5  # pixel-centre convention, closed form
    expected_v = (uv[:, 1] - 60 + 0.5) * 128 / 384 - 0.5
    assert torch.allclose(uv_new, torch.stack([expected_u, expected_v], -1), atol=1e-9)
    A = crop_resize_matrix(box, (96, 128))
    hom = torch.cat([uv, torch.ones(100, 1, dtype=D64)], -1) @ A.T
    assert torch.allclose(uv_new, hom[:, :2], atol=1e-9)


def test_crop_resize_batched_boxes():
    rig = make_rig(dtype=D64, image_size=(200, 200))
    boxes = torch.tensor([[0.0, 0, 100, 100], [50, 50, 150, 150], [10, 0, 210, 200], [0, 0, 200, 200]], dtype=D64)
    new = rig.crop_and_resize(boxes, (64, 64))
    p = torch.tensor([[0.1, 0.2, 0.05]], dtype=D64)
    for k in range(4):
        assert torch.allclose(new[k].project(p), rig[k].crop_and_resize(boxes[k], (64, 64)).project(p))


def blob_image(size_wh, centre_uv, sigma=3.0):
    W, H = size_wh
    xs, ys = np.meshgrid(np.arange(W), np.arange(H))
    img = np.exp(-((xs - centre_uv[0]) ** 2 + (ys - centre_uv[1]) ** 2) / (2 * sigma**2))
    return (img * 60000).astype(np.float32)


def centroid(img):
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()])


@pytest.mark.parametrize("box, out", [
    ((40, 30, 200, 190), (80, 80)),        # integer, inside: slicing + INTER_AREA (shrink x2)
    ((40, 30, 200, 190), (320, 320)),      # integer, inside: slicing + bilinear (enlarge x2)
    ((40.5, 30.25, 200.5, 190.25), (64, 96)),  # fractional: warpAffine
    ((-40, -20, 200, 220), (120, 120)),    # partly outside the image: warpAffine with zero fill
])
def test_image_crop_matches_camera_update(box, out):
    u, v = 117.3, 101.6
    img = blob_image((240, 220), (u, v), sigma=6.0)
    crop = crop_and_resize_image(img, box, out)
    assert crop.shape == (out[1], out[0])
    A = crop_resize_matrix(torch.tensor(box, dtype=D64), out).numpy()
    expected = A[:2] @ np.array([u, v, 1.0])
    assert np.abs(centroid(crop) - expected).max() < 0.05
    crop_t = crop_and_resize_image(torch.from_numpy(img[..., None].repeat(3, -1)), box, out)
    assert isinstance(crop_t, torch.Tensor) and crop_t.shape == (out[1], out[0], 3)


def test_look_at_geometry():
    eye, target = torch.tensor([1.0, 0.5, 2.0], dtype=D64), torch.tensor([0.0, 0.2, 0.0], dtype=D64)
    cam = look_at(eye, target, focal_px=100.0, image_size=(65, 49))
    assert torch.allclose(cam.R @ cam.R.T, torch.eye(3, dtype=D64), atol=1e-12)
    assert torch.det(cam.R) > 0
    assert torch.allclose(cam.centre, eye, atol=1e-12)
    assert torch.allclose(cam.project(target[None]), torch.tensor([[32.0, 24.0]], dtype=D64), atol=1e-9)
    above = cam.project((target + torch.tensor([0, 0.1, 0], dtype=D64))[None])[0]
    assert above[1] < 24.0  # world up is image up (v decreases)
    right = torch.linalg.cross(target - eye, torch.tensor([0.0, 1, 0], dtype=D64))
    assert cam.project((target + 0.1 * right)[None])[0, 0] > 32.0  # camera right is image right


def test_rig_geometry_lightstage_like():
    target = torch.tensor([0.0, 0.1, 0.0], dtype=D64)
    rig = make_rig(num_views=4, distance_m=3.0, height_m=0.4, image_size=(128, 128),
                   target_m=target, dtype=D64)
    assert rig.batch_shape == (4,) and len(rig) == 4
    offs = rig.centre - target
    assert torch.allclose(offs[:, 1], torch.full((4,), 0.4, dtype=D64))
    assert torch.allclose(offs[:, [0, 2]].norm(dim=-1), torch.full((4,), 3.0, dtype=D64))
    yaw = torch.atan2(offs[:, 0], offs[:, 2])
    gaps = torch.rad2deg(torch.remainder(yaw.roll(-1) - yaw, 2 * math.pi))
    assert torch.allclose(gaps, torch.full((4,), 90.0, dtype=D64))
    assert torch.allclose(rig.centre[0], torch.tensor([0.0, 0.5, 3.0], dtype=D64))  # in front (+z)
    forward = rig.R[:, 2]  # optical axes point at the target
    to_target = torch.nn.functional.normalize(target - rig.centre, dim=-1)
    assert torch.allclose(forward, to_target, atol=1e-12)
    assert torch.allclose(rig.project(target[None]), torch.full((4, 1, 2), 63.5, dtype=D64), atol=1e-9)
    # the person's left hand (+x) appears on the image's right in the front view
    assert rig[0].project(torch.tensor([[0.5, 0.1, 0.0]], dtype=D64))[0, 0] > 63.5
    assert torch.allclose(rig.K[:, 0, 0], torch.full((4,), 128 * 3.0 / 2.2, dtype=D64))


def test_rig_jitter_is_seeded_and_bounded():
    jit = RigJitter(distance_m=0.3, height_m=0.2, yaw_deg=10.0)
    a = make_rig(jitter=jit, generator=torch.Generator().manual_seed(5), dtype=D64)
    b = make_rig(jitter=jit, generator=torch.Generator().manual_seed(5), dtype=D64)
    c = make_rig(jitter=jit, generator=torch.Generator().manual_seed(6), dtype=D64)
    base = make_rig(dtype=D64)
    assert torch.equal(a.R, b.R) and torch.equal(a.t, b.t)
    assert not torch.allclose(a.t, c.t)
    horiz = a.centre[:, [0, 2]].norm(dim=-1)
    assert ((horiz - 3.0).abs() <= 0.3 + 1e-9).all() and ((a.centre[:, 1] - 0.3).abs() <= 0.2 + 1e-9).all()
    yaw = torch.atan2(a.centre[:, 0], a.centre[:, 2])
    yaw0 = torch.atan2(base.centre[:, 0], base.centre[:, 2])
    dyaw = torch.remainder(yaw - yaw0 + math.pi, 2 * math.pi) - math.pi
    assert (dyaw.abs() <= math.radians(10) + 1e-9).all() and (dyaw.abs() > 0).all()
    with pytest.raises(ValueError, match="generator"):
        make_rig(jitter=jit)


def test_stack_index_to_round_trip():
    rig = make_rig(num_views=3)
    again = Camera.stack([rig[i] for i in range(3)])
    assert torch.equal(again.K, rig.K) and torch.equal(again.R, rig.R) and torch.equal(again.t, rig.t)
    assert rig[1:].batch_shape == (2,)
    assert rig.to(dtype=D64).K.dtype == D64
    assert rig.project(torch.zeros(1, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match="image_size"):
        Camera.stack([rig[0], replace(rig[1], image_size=(64, 64))])


def test_bad_inputs_name_the_argument():
    cam = make_rig()[0]
    with pytest.raises(ValueError, match="points_world"):
        cam.project(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"points_world.*\(\.\.\., 3\)"):
        cam.project(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="points_world"):
        cam.project(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="K"):
        Camera(K=torch.eye(3)[:2], R=torch.eye(3), t=torch.zeros(3), image_size=(4, 4))
    with pytest.raises(ValueError, match="R"):
        Camera(K=torch.eye(3), R=torch.full((3, 3), float("nan")), t=torch.zeros(3), image_size=(4, 4))
    with pytest.raises(ValueError, match="dist"):
        Camera(K=torch.eye(3), R=torch.eye(3), t=torch.zeros(3), dist=torch.zeros(4), image_size=(4, 4))
    with pytest.raises(ValueError, match="image_size"):
        Camera(K=torch.eye(3), R=torch.eye(3), t=torch.zeros(3), image_size=(0, 4))
    with pytest.raises(ValueError, match="bbox_xyxy"):
        cam.crop_and_resize([10.0, 10.0, 5.0, 20.0], (8, 8))
    with pytest.raises(ValueError, match="up"):
        look_at([0.0, 3.0, 0.0], [0.0, 0.0, 0.0])


def test_cameras_that_are_not_pinhole_cameras_are_rejected_by_name():
    from vhakit.geometry.camera import CameraValueError

    good = random_camera(torch.Generator().manual_seed(3), batch=(4,))
    cases = [  # (parameter, view, change, message)
        ("K", 2, lambda K, R, t: (torch.zeros_like(K), R, t), r"K\[2\]: has focal lengths fx = K\[0, 0\] = 0"),
        ("K", 1, lambda K, R, t: (K * torch.tensor([[1.0], [-1.0], [1.0]], dtype=D64), R, t), r"fy = K\[1, 1\] = -"),
        ("K", 3, lambda K, R, t: (2 * K, R, t), r"K\[3\]: .*last row \(0, 0, 1\)"),
        ("K", 0, lambda K, R, t: (K.transpose(-1, -2), R, t), r"K\[0\]: .*transpose"),
        ("R", 1, lambda K, R, t: (K, 1.01 * R, t), r"R\[1\]: is not a rotation: max \|R R\^T - I\| = 0\.0201"),
        ("R", 2, lambda K, R, t: (K, R * torch.tensor([1.0, 1.0, -1.0], dtype=D64)[:, None], t), r"R\[2\]: has determinant -1"),
        ("t", 3, lambda K, R, t: (K, R, t * float("inf")), r"t\[3\]: contains NaN or inf"),
    ]
    for arg, view, change, message in cases:
        K, R, t = good.K.clone(), good.R.clone(), good.t.clone()
        K[view], R[view], t[view] = (x.clone() for x in change(K[view], R[view], t[view]))
        with pytest.raises(CameraValueError, match=message) as info:
            Camera(K=K, R=R, t=t, dist=good.dist, image_size=(640, 480))
        assert (info.value.arg, info.value.index) == (arg, (view,))
    # a calibration printed with 5 decimals is still a rotation
    noisy = (good.R * 1e5).round() / 1e5
    assert torch.equal(Camera(K=good.K, R=noisy, t=good.t, image_size=(64, 64)).R, noisy)


def test_camera_checks_are_skipped_while_compiling(monkeypatch):
    import vhakit.geometry.camera as camera

    monkeypatch.setattr(camera, "compiling", lambda: True)
    Camera(K=torch.zeros(3, 3), R=2 * torch.eye(3), t=torch.zeros(3), image_size=(4, 4))


def test_project_with_depth_masks_points_at_or_behind_the_camera():
    g = torch.Generator().manual_seed(4)
    rig = random_camera(g, batch=(3,))
    rig = Camera.stack([replace(rig[0], R=torch.eye(3, dtype=D64),  # view 0 looks along +z
                                t=torch.tensor([0.0, 0.0, 3.0], dtype=D64)), rig[1], rig[2]])
    front = torch.randn(50, 3, generator=g, dtype=D64) * 0.5  # around the origin, 3 m ahead
    odd = torch.tensor([[0.0, 0.0, -4.0], [0.5, 0.0, -3.0], [0.0, 0.0, -3.0 + 1e-9]],
                       dtype=D64)  # view 0: behind, on the camera plane, just in front
    pts = torch.cat([front, odd]).requires_grad_()
    uv, depth, in_front = rig.project_with_depth(pts)
    assert uv.shape == (3, 53, 2) and depth.shape == in_front.shape == (3, 53)
    torch.testing.assert_close(depth, rig.world_to_camera(pts)[..., 2], rtol=0, atol=0)
    assert in_front[:, :50].all() and in_front[0, 50:].tolist() == [False, False, True]
    assert torch.equal(uv[in_front], rig.project(pts)[in_front])  # unchanged where visible
    assert uv[~in_front].isnan().all()
    # the plain projection puts the point behind view 0 on a finite (mirrored) pixel
    assert torch.isfinite(rig[0].project(odd[:1])).all()
    uv[in_front].sum().backward()
    assert torch.isfinite(pts.grad).all()
    assert pts.grad[50:52].abs().sum() > 0  # other views see them, so they still learn


def test_a_dataset_with_a_bad_camera_names_the_file_frame_and_view(tmp_path, open_body):
    import dataclasses

    from vhakit.data import store
    from vhakit.data.build import DATA_PRESETS, build_dataset
    from vhakit.data.datasets import MultiViewDataset

    small = dataclasses.replace(DATA_PRESETS["tiny"], image_px=32, chunk=8)
    root = build_dataset(small, "h36m_like", "test", tmp_path / "ds", seed=3, max_frames=3,
                         body=open_body, progress=False)
    assert MultiViewDataset(root).arrays["K"][:, :, 0, 0].min() > 0
    K = np.load(root / "arrays" / "K.npy")
    store.atomic_save_npy(root / "arrays" / "K.npy", np.zeros_like(K))
    with pytest.raises(store.DatasetCorrupt, match=r"arrays/K\.npy: frame 0 \(.+\), view 0: K "
                       r"has focal lengths fx = K\[0, 0\] = 0, fy = K\[1, 1\] = 0 px"):
        MultiViewDataset(root)
    store.atomic_save_npy(root / "arrays" / "K.npy", K)
    R = np.load(root / "arrays" / "R.npy")
    R[2, 3] *= 1.5
    store.atomic_save_npy(root / "arrays" / "R.npy", R)
    with pytest.raises(store.DatasetCorrupt, match=r"arrays/R\.npy: frame 2 \(.+\), view 3: R is "
                       r"not a rotation.*rebuild"):
        MultiViewDataset(root, views=[0, 3, 1])  # a view subset: the stored view is named
