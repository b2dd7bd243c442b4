"""vhakit.data.render against independent references: a 3D ray test (Moller-Trumbore), a per-pixel
loop z-buffer, OpenCV polygon filling, and the body-part colour semantics."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vhakit.body.model import BodyModel
from vhakit.data.render import (
    PART_COLORS,
    RenderConfig,
    part_colors,
    random_backgrounds,
    rasterize,
    render_views,
    vertex_visibility,
)
from vhakit.geometry.camera import make_rig


@pytest.fixture(scope="module")
def scene():
    body = BodyModel.open()
    rest = body().vertices[0]
    pose = torch.zeros(1, 69)
    pose[0, 3 * 15 + 2] = -1.1  # left shoulder down, in front of the torso
    pose[0, 3 * 15 + 1] = -0.8
    pose[0, 3 * 17 + 2] = 0.9  # right elbow bent
    pose[0, 3 * 0] = -0.7  # left hip flexed
    verts = body(body_pose=pose).vertices[0]
    colors = part_colors(body.part_labels, rest)
    return body, verts, colors


def ray_visible(origin, zaxis, points, faces_np, verts_np, tol):
    """Brute force: is the segment camera -> vertex free of triangles nearer than depth - tol?"""
    tri = verts_np[faces_np]
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    tvec = origin - v0  # (F, 3)
    qvec = np.cross(tvec, e1)
    out = []
    for p in points:
        d = p - origin
        pvec = np.cross(d, e2)
        det = (e1 * pvec).sum(1)
        ok = np.abs(det) > 1e-15
        inv = 1.0 / np.where(ok, det, 1.0)
        u = (tvec * pvec).sum(1) * inv
        v = (qvec @ d) * inv
        t = (e2 * qvec).sum(1) * inv  # hit = origin + t d, so hit depth = t * depth(p)
        depth = zaxis @ d
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t * depth < depth - tol)
        out.append(not hit.any())
    return np.array(out)


@pytest.mark.parametrize("size, dtype", [(128, torch.float32), (64, torch.float64)])
def test_visibility_matches_brute_force_ray_test(scene, size, dtype):
    body, verts, colors = scene
    rig = make_rig(image_size=(size, size), dtype=dtype)
    idx = torch.randperm(body.num_vertices, generator=torch.Generator().manual_seed(0))[:300]
    vis = render_views(verts, body.faces, rig, colors, visibility_index=idx,
                       generator=torch.Generator().manual_seed(0)).visibility
    assert vis.shape == (4, 300) and vis.dtype == torch.bool
    verts_np, faces_np = verts.double().numpy(), body.faces.numpy()
    uv = rig.project(verts[idx].to(dtype)).double().numpy()
    ref = np.zeros((4, 300), bool)
    for k in range(4):
        inside = ((uv[k] >= -0.5) & (uv[k] < size - 0.5)).all(1)
        ref[k] = inside & ray_visible(rig.centre[k].double().numpy(), rig.R[k, 2].double().numpy(),
                                      verts_np[idx.numpy()], faces_np, verts_np, tol=0.01)
    agree = (ref == vis.numpy()).mean()
    assert agree >= (0.995 if dtype == torch.float64 else 0.98), agree
    assert 0.2 < ref.mean() < 0.8  # a meaningful mix of visible and hidden vertices


def test_visibility_all_vertices_default_and_out_of_image(scene):
    body, verts, colors = scene
    rig = make_rig(image_size=(64, 64), focal_px=150.0)  # zoomed in: feet and hands leave the image
    uv, depth = rig.project(verts), rig.world_to_camera(verts)[..., 2]
    vis = vertex_visibility(uv, depth, body.faces, (64, 64))
    assert vis.shape == (4, body.num_vertices)
    outside = ((uv < -0.5) | (uv >= 63.5)).any(-1)
    assert outside.any() and not vis[outside].any()
    sub = vertex_visibility(uv, depth, body.faces, (64, 64), body.subsample_indices)
    assert torch.equal(sub, vis[:, body.subsample_indices])


def loop_zbuffer(uv, depth, faces, W, H):
    """Reference: for every pixel centre, test every triangle (numpy, perspective-correct depth)."""
    tri = uv[faces]  # (F, 3, 2)
    z = depth[faces]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    face_id = np.full((H, W), -1)
    zbuf = np.full((H, W), np.inf)
    for r in range(H):
        for col in range(W):
            def edge(p, q, r=r, col=col):
                return (q[:, 0] - p[:, 0]) * (r - p[:, 1]) - (q[:, 1] - p[:, 1]) * (col - p[:, 0])
            bary = np.stack([edge(b, c), edge(c, a), edge(a, b)], 1) / area[:, None]
            inside = (bary >= 0).all(1) & (np.abs(area) > 1e-9)
            if inside.any():
                zz = 1.0 / (bary[inside] / z[inside]).sum(1)
                j = np.argmin(zz)
                face_id[r, col], zbuf[r, col] = np.nonzero(inside)[0][j], zz[j]
    return face_id, zbuf


def test_rasterizer_matches_per_pixel_loop(scene):
    body, verts, colors = scene
    rig = make_rig(image_size=(128, 128), dtype=torch.float64)
    uv_all = rig.project(verts.double())
    lo, hi = uv_all[1].amin(0).floor(), uv_all[1].amax(0).ceil()  # tight crop on view 1
    cam = rig[1:2].crop_and_resize(torch.cat([lo, hi + 1]), (40, 48))
    uv, depth = cam.project(verts.double()), cam.world_to_camera(verts.double())[..., 2]
    face_id = rasterize(uv, depth, body.faces, (40, 48))[0].numpy()
    out = render_views(verts.double(), body.faces, cam, colors.double(), generator=torch.Generator())
    ref_id, ref_z = loop_zbuffer(uv[0].numpy(), depth[0].numpy(), body.faces.numpy(), 40, 48)
    assert ((face_id >= 0) == (ref_id >= 0)).mean() > 0.995  # seams: tolerance of 1e-6 in bary
    both = (face_id >= 0) & (ref_id >= 0)
    assert (face_id[both] == ref_id[both]).mean() > 0.99
    assert np.abs(out.depth_m[0].numpy()[both] - ref_z[both]).max() < 1e-3
    assert torch.equal(out.face_id[0], torch.from_numpy(face_id))


def test_silhouette_is_union_of_projected_triangles(scene):
    body, verts, colors = scene
    rig = make_rig(image_size=(128, 128))
    out = render_views(verts, body.faces, rig, colors, generator=torch.Generator().manual_seed(1))
    uv = rig.project(verts).numpy()
    up, shift = 5, 4  # 5x finer mask (pixel centre u -> 5u + 2), cv2's fixed-point sub-pixel bits
    for k in range(4):
        mask = np.zeros((128 * up, 128 * up), np.uint8)
        pts = np.round((uv[k][body.faces.numpy()] * up + 2) * (1 << shift)).astype(np.int32)
        for tri in pts:
            cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=shift)
        # cv2 also fills boundary pixels whose centre lies just outside (by up to ~2 fine pixels),
        # so the exact coverage of the coarse pixel centres lies between eroded and full masks
        outer = mask[2::up, 2::up] > 0
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8))[2::up, 2::up] > 0
        sil = out.silhouettes[k].numpy()
        assert not (sil & ~outer).any()
        assert not (inner & ~sil).any()
        assert sil.sum() > 0.9 * outer.sum()
        visible = out.visibility[k].numpy()
        cols, rows = np.round(uv[k][visible]).astype(int).T
        ok = (cols >= 0) & (cols < 128) & (rows >= 0) & (rows < 128)
        near = cv2.dilate(sil.astype(np.uint8), np.ones((3, 3), np.uint8))
        # visible vertices lie on the silhouette, except on sub-pixel parts (finger tips)
        assert near[rows[ok], cols[ok]].mean() > 0.995, near[rows[ok], cols[ok]].mean()


def test_same_seed_byte_identical_and_seed_matters(scene):
    body, verts, colors = scene
    rig = make_rig(image_size=(64, 64))
    a = render_views(verts, body.faces, rig, colors, generator=torch.Generator().manual_seed(7))
    b = render_views(verts, body.faces, rig, colors, generator=torch.Generator().manual_seed(7))
    c = render_views(verts, body.faces, rig, colors, generator=torch.Generator().manual_seed(8))
    assert a.images.dtype == torch.uint8 and a.images.shape == (4, 64, 64, 3)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert not torch.equal(a.images, c.images)
    assert torch.equal(a.silhouettes, c.silhouettes) and torch.equal(a.visibility, c.visibility)


def test_left_right_and_front_back_are_distinguishable(scene):
    body, verts, colors = scene
    table = torch.tensor(PART_COLORS, dtype=torch.float32)
    for left, right in [(1, 2), (4, 5), (7, 8), (13, 14), (16, 17), (18, 19), (20, 21)]:
        assert (table[left] - table[right]).abs().max() > 80  # distinct hues for mirror parts
    rest = body().vertices[0]
    rig = make_rig(image_size=(96, 96))
    config = RenderConfig(noise_std=0.0, background="solid")
    out = render_views(rest, body.faces, rig, colors, config=config,
                       generator=torch.Generator().manual_seed(0))
    img, sil = out.images.float(), out.silhouettes
    front, back = img[0][sil[0]], img[2][sil[2]]
    # front view: the person's left (+x, warm colours) is on the image's right half
    right_half = sil[0].clone()
    right_half[:, :48] = False
    left_half = sil[0] & ~right_half
    warm = img[0][..., 0] - img[0][..., 2]  # red minus blue
    assert warm[right_half].mean() > warm[left_half].mean() + 40
    assert front.mean() > back.mean() + 10  # the back of the trunk is darker, the front striped
    # mirror image of the back view is not the front view
    assert (img[0] - img[2].flip(1)).abs().mean() > 10


def test_backgrounds_and_shapes():
    g = torch.Generator().manual_seed(0)
    for kind in ("solid", "gradient", "noise"):
        bg = random_backgrounds(2, (32, 24), kind, generator=g)
        assert bg.shape == (2, 24, 32, 3) and bg.min() >= 0 and bg.max() <= 1
        if kind == "solid":
            assert torch.equal(bg[0], bg[0, :1, :1].expand(24, 32, 3))
        else:
            assert bg[0].std() > 0.01
    with pytest.raises(ValueError, match="background"):
        random_backgrounds(1, (8, 8), "checker")


def test_bad_inputs_name_the_argument(scene):
    body, verts, colors = scene
    rig = make_rig(image_size=(32, 32))
    with pytest.raises(ValueError, match="verts_world_m"):
        render_views(verts[None], body.faces, rig, colors)
    with pytest.raises(ValueError, match="verts_world_m"):
        render_views(torch.full_like(verts, float("nan")), body.faces, rig, colors)
    with pytest.raises(ValueError, match="faces"):
        render_views(verts, body.faces.int(), rig, colors)
    with pytest.raises(ValueError, match="faces"):
        render_views(verts, body.faces + verts.shape[0], rig, colors)
    with pytest.raises(ValueError, match="vertex_colors"):
        render_views(verts, body.faces, rig, colors[:10])
    with pytest.raises(ValueError, match="cameras"):
        render_views(verts, body.faces, rig[0], colors)
    with pytest.raises(ValueError, match="part_labels"):
        part_colors(torch.full((5,), 24))
