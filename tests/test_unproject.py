"""Unprojection into the cuboid and aggregation over views, against per-view loop references."""
from __future__ import annotations

import math

import pytest
import torch

from vhakit.camera import Camera, make_rig
from vhakit.heatmaps import Cuboid
from vhakit.models.unproject import (
    AGGREGATIONS,
    aggregate_views,
    unproject_and_aggregate,
    unproject_features,
)


def rig_batch(B: int, V: int, image_size=(40, 32), seed=0, dtype=torch.float64):
    """Cameras ``(B, V, ...)``: jittered rings with a little distortion."""
    from vhakit.camera import RigJitter

    g = torch.Generator().manual_seed(seed)
    rigs = [make_rig(V, distance_m=3.0, image_size=image_size, jitter=RigJitter(), generator=g,
                     dist=torch.tensor([0.02, -0.01, 0.001, 0.0, 0.0]), dtype=dtype)
            for _ in range(B)]
    return (torch.stack([r.K for r in rigs]), torch.stack([r.R for r in rigs]),
            torch.stack([r.t for r in rigs]), torch.stack([r.dist for r in rigs]))


def bilinear_zero_pad(fmap: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Bilinear sample of ``fmap (C, h, w)`` at feature-pixel coordinates (x, y) (pixel centres
    at integers), zero outside."""
    C, h, w = fmap.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = torch.zeros(C, dtype=fmap.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= xx < w and 0 <= yy < h:
                out += (1 - abs(x - xx)) * (1 - abs(y - yy)) * fmap[:, yy, xx]
    return out


def loop_unproject(features, points, K, R, t, dist, image_size):
    """Per sample, per view, per point: project with a single Camera, sample bilinearly."""
    B, V, C, h, w = features.shape
    W, H = image_size
    vols = torch.zeros(B, V, C, points.shape[1], dtype=features.dtype)
    valid = torch.zeros(B, V, points.shape[1], dtype=torch.bool)
    for b in range(B):
        for v in range(V):
            cam = Camera(K=K[b, v], R=R[b, v], t=t[b, v], dist=dist[b, v], image_size=(W, H))
            depth = cam.world_to_camera(points[b])[:, 2]
            uv = cam.project(points[b])
            for p in range(points.shape[1]):
                u, vv = uv[p].tolist()
                ok = depth[p] > 1e-3 and -0.5 <= u <= W - 0.5 and -0.5 <= vv <= H - 0.5
                if not ok:
                    continue
                valid[b, v, p] = True
                # image pixel u -> feature pixel (u + 0.5) * w / W - 0.5
                vols[b, v, :, p] = bilinear_zero_pad(features[b, v], (u + 0.5) * w / W - 0.5,
                                                     (vv + 0.5) * h / H - 0.5)
    return vols, valid


def loop_aggregate(vols, valid, weights, method):
    B, V, C, P = vols.shape
    out = torch.zeros(B, C, P, dtype=vols.dtype)
    for b in range(B):
        for c in range(C):
            for p in range(P):
                a = [float(weights[b, v, c]) * float(valid[b, v, p]) for v in range(V)]
                f = [float(vols[b, v, c, p]) for v in range(V)]
                if method == "sum":
                    out[b, c, p] = sum(ai * fi for ai, fi in zip(a, f, strict=True))
                elif method == "mean":
                    out[b, c, p] = sum(ai * fi for ai, fi in zip(a, f, strict=True)) / (sum(a) + 1e-6)
                else:
                    e = [ai * math.exp(fi) for ai, fi in zip(a, f, strict=True)]
                    out[b, c, p] = sum(ei * fi for ei, fi in zip(e, f, strict=True)) / sum(e) if sum(e) else 0.0
    return out


@pytest.fixture(scope="module")
def scene():
    torch.manual_seed(0)
    B, V, C, h, w = 2, 3, 4, 8, 10  # non-square maps, stride 4 of a 40 x 32 image
    K, R, t, dist = rig_batch(B, V)
    feats = torch.randn(B, V, C, h, w, dtype=torch.float64)
    # A large cuboid: some voxels lie behind cameras or project outside the images.
    cub = Cuboid(torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.1, 0.2]], dtype=torch.float64), 7.0, 5)
    points = cub.voxel_centres().flatten(1, 3)
    return feats, points, K, R, t, dist, (40, 32)


def test_unprojection_matches_the_per_view_loop(scene):
    feats, points, K, R, t, dist, size = scene
    vols, valid = unproject_features(feats, points, K, R, t, dist, size)
    ref, ref_valid = loop_unproject(feats, points, K, R, t, dist, size)
    assert torch.equal(valid, ref_valid)
    assert 0 < valid.float().mean() < 1  # the scene has both seen and unseen voxels
    behind = [(R[b, v] @ points[b].T + t[b, v, :, None])[2] <= 0 for b in range(2) for v in range(3)]
    assert any(bool(x.any()) for x in behind)  # ... including voxels behind a camera
    torch.testing.assert_close(vols, ref, atol=1e-10, rtol=0)


def test_pixel_convention_pin():
    """A ramp feature map (value = feature column index) read back at known image pixels."""
    K = torch.tensor([[100.0, 0, 63.5], [0, 100.0, 63.5], [0, 0, 1]]).view(1, 1, 3, 3)
    R, t = torch.eye(3).view(1, 1, 3, 3), torch.zeros(1, 1, 3)
    ramp = torch.arange(32.0).view(1, 1, 1, 1, 32).expand(1, 1, 1, 32, 32)  # stride 4 of 128 px
    # image pixel u = 4 j + 1.5 is the centre of feature column j
    for j in (0.0, 5.0, 17.5, 31.0):
        u = 4 * j + 1.5
        point = torch.tensor([[[(u - 63.5) / 100.0, 0.0, 1.0]]])  # at depth 1 m
        vol, valid = unproject_features(ramp, point, K, R, t, None, (128, 128))
        assert bool(valid.all())
        torch.testing.assert_close(vol.view(()), torch.tensor(j))


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_aggregation_matches_the_loop(scene, method):
    feats, points, K, R, t, dist, size = scene
    vols, valid = unproject_features(feats, points, K, R, t, dist, size)
    weights = torch.rand(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.1
    got = aggregate_views(vols, valid, weights, method)
    torch.testing.assert_close(got, loop_aggregate(vols, valid, weights, method), atol=1e-9, rtol=1e-9)
    unseen = ~valid.any(1)  # (B, P)
    assert bool(unseen.any()) and bool((got.permute(0, 2, 1)[unseen] == 0).all())


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_view_permutation_invariance(scene, method):
    feats, points, K, R, t, dist, size = scene
    weights = torch.rand(2, 3, 4, dtype=torch.float64) + 0.1
    perm = torch.tensor([2, 0, 1])
    a = unproject_and_aggregate(feats, points, K, R, t, dist, size, weights, method)
    b = unproject_and_aggregate(feats[:, perm], points, K[:, perm], R[:, perm], t[:, perm],
                                dist[:, perm], size, weights[:, perm], method)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_gradcheck(scene, method):
    feats, points, K, R, t, dist, size = scene
    f = feats[:1, :, :2].clone().requires_grad_()
    w = (torch.rand(1, 3, 2, dtype=torch.float64) + 0.5).requires_grad_()
    pts = points[:1, ::7]
    fn = lambda f, w: unproject_and_aggregate(f, pts, K[:1], R[:1], t[:1], dist[:1], size, w, method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (f, w), eps=1e-6, atol=1e-6)


def test_bad_inputs_name_the_argument(scene):
    feats, points, K, R, t, dist, size = scene
    with pytest.raises(ValueError, match=r"K must have shape \(2, 3, 3, 3\)"):
        unproject_features(feats, points, K[:, :2], R, t, dist, size)
    with pytest.raises(ValueError, match="method must be one of"):
        aggregate_views(torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 4, dtype=torch.bool), method="max")
    with pytest.raises(ValueError, match="features must have shape"):
        unproject_features(feats[0], points, K, R, t, dist, size)
