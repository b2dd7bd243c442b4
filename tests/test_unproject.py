"""Unprojection into the cuboid and aggregation over views, against per-view loop references."""
from __future__ import annotations

import math

import pytest
import torch

from vhakit.geometry.camera import Camera, make_rig
from vhakit.heatmaps.core import Cuboid
from vhakit.models.backbone import (
    FEATURE_PIXEL_CENTRE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BasicBlock,
    ResNetBackbone,
    upsample2_aligned,
)
from vhakit.models.unproject import (
    AGGREGATIONS,
    aggregate_views,
    unproject_and_aggregate,
    unproject_features,
)


def rig_batch(B: int, V: int, image_size=(40, 32), seed=0, dtype=torch.float64):
    """Cameras ``(B, V, ...)``: jittered rings with a little distortion."""
    from vhakit.geometry.camera import RigJitter

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


def loop_unproject(features, points, K, R, t, dist, image_size, pixel_centre=None):
    """Per sample, per view, per point: project with a single Camera, sample bilinearly.
    ``pixel_centre = (s, o)``: feature pixel j is centred on image pixel s j + o; None: the map
    tiles the image (feature pixel j covers image pixels [s j - 0.5, s (j + 1) - 0.5])."""
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
                if pixel_centre is None:  # image pixel u -> feature pixel (u + 0.5) w / W - 0.5
                    x, y = (u + 0.5) * w / W - 0.5, (vv + 0.5) * h / H - 0.5
                else:  # u = s x + o
                    x, y = ((u - pixel_centre[1]) / pixel_centre[0],
                            (vv - pixel_centre[1]) / pixel_centre[0])
                vols[b, v, :, p] = bilinear_zero_pad(features[b, v], x, y)
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


@pytest.mark.parametrize("pixel_centre", [(4, 0.0), (4, -0.75), (4, 2.25)])
def test_unprojection_with_a_pixel_centre_matches_the_loop(scene, pixel_centre):
    feats, points, K, R, t, dist, size = scene  # stride-4 maps of the 40 x 32 images
    vols, valid = unproject_features(feats, points, K, R, t, dist, size, pixel_centre)
    ref, ref_valid = loop_unproject(feats, points, K, R, t, dist, size, pixel_centre)
    assert torch.equal(valid, ref_valid)
    torch.testing.assert_close(vols, ref, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match=r"pixel_centre=\(2, 0.0\) has stride 2"):
        unproject_features(feats, points, K, R, t, dist, size, (2, 0.0))


def test_pixel_convention_pin():
    """A ramp feature map (value = feature column index) read back at known image pixels: by
    default (a map that tiles the image) and with the backbone's pixel_centre."""
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
    # the kit's backbone: feature column j is centred on image pixel 4 j
    for j in (0.0, 5.0, 17.5, 31.0):
        point = torch.tensor([[[(4 * j - 63.5) / 100.0, 0.0, 1.0]]])
        vol, valid = unproject_features(ramp, point, K, R, t, None, (128, 128),
                                        FEATURE_PIXEL_CENTRE)
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


# ------------------------------------------------------------- the backbone's feature geometry
def linear_backbone() -> ResNetBackbone:
    """The real :class:`ResNetBackbone` (float64) with its normalisations removed and every
    convolution an all-positive box filter (weights 1 / fan-in, no bias): on positive images
    every ReLU passes its input, so the network is linear and its kernels are symmetric about
    their centres."""
    torch.manual_seed(0)
    net = ResNetBackbone(out_channels=1, channels=(4, 4, 4))
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, (torch.nn.GroupNorm, torch.nn.BatchNorm2d)):
                setattr(module, name, torch.nn.Identity())
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    return net.double().eval()


def _images(normalised: torch.Tensor) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` whose ImageNet normalisation inside the backbone is ``normalised``."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return mean + std * normalised


def _chain(layers) -> tuple[float, float]:
    """``(stride, offset)`` of a chain of convolutions/poolings ``[(kernel, stride, padding)]``:
    output pixel j is centred on input pixel ``stride j + offset``; each layer centres its
    output pixel j on its input pixel ``s j + (k - 1) / 2 - p``."""
    stride, offset = 1, 0.0
    for k, s, p in layers:
        offset += stride * ((k - 1) / 2 - p)
        stride *= s
    return stride, offset


def _convs(module) -> list[tuple[int, int, int]]:
    return [(m.kernel_size[0], m.stride[0], m.padding[0]) for m in module.modules()
            if isinstance(m, torch.nn.Conv2d)]


def test_upsample2_aligned_samples_the_input_at_half_the_output_index():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    up = upsample2_aligned(x)
    assert up.shape == (2, 3, 8, 10)
    ref = torch.zeros_like(up)
    for i in range(8):
        for j in range(10):
            y, xx = i / 2, j / 2  # the edge row / column repeats beyond the last pixel
            y0, x0 = math.floor(y), math.floor(xx)
            y1, x1 = min(y0 + 1, 3), min(x0 + 1, 4)
            wy, wx = y - y0, xx - x0
            ref[..., i, j] = ((1 - wy) * (1 - wx) * x[..., y0, x0] + (1 - wy) * wx * x[..., y0, x1]
                              + wy * (1 - wx) * x[..., y1, x0] + wy * wx * x[..., y1, x1])
    torch.testing.assert_close(up, ref, atol=1e-12, rtol=0)


def test_backbone_feature_pixel_centre_is_the_receptive_field_centre():
    """Analytically from the layers, and measured: the centroid of the receptive field (the
    Jacobian of one feature pixel with respect to the image) of the linearised real network."""
    net = linear_backbone()
    path = _convs(net.stem)
    # H/4 pixel j: image pixel 4 j; H/8 pixel m: image pixel 8 m (upsampled at i / 2: 4 i)
    for stage, expected in ((net.stage4, (4, 0.0)), (net.stage8, (8, 0.0))):
        for block in stage:
            assert isinstance(block, BasicBlock)
            body = _convs(block.body)
            if not isinstance(block.skip, torch.nn.Identity):  # the parallel path agrees
                assert _chain(_convs(block.skip)) == _chain(body), block
            path = path + body
        assert _chain(path) == expected
    assert _chain(_convs(net.head)) == (1, 0.0)
    assert net.pixel_centre == FEATURE_PIXEL_CENTRE == (4, 0.0)

    H = W = 256  # large enough for the receptive fields (radius ~51 px) of central pixels
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                          torch.arange(W, dtype=torch.float64), indexing="ij")
    for ky, kx in ((31, 32), (32, 33), (30, 29)):  # both parities: odd pixels interpolate
        x = torch.zeros(1, 3, H, W, dtype=torch.float64, requires_grad=True)
        net(_images(1 + x))[0, 0, ky, kx].backward()  # 1 +: ReLUs pass everything
        jac = x.grad[0].sum(0)  # (H, W) receptive field of feature pixel (kx, ky)
        assert bool((jac >= 0).all())
        centroid = (float((jac * u).sum() / jac.sum()), float((jac * v).sum() / jac.sum()))
        expected = (net.feature_pixel_centre(kx), net.feature_pixel_centre(ky))
        assert centroid == pytest.approx(expected, abs=1e-6), (kx, ky, centroid)


def test_an_image_impulse_unprojects_onto_its_pixel():
    """An impulse at image pixel p through the linearised real backbone gives a feature
    response centred on the feature pixel whose receptive field is centred on p; unprojecting
    that response onto a fine grid of 3D points on a plane in front of the camera and taking
    the centroid gives a 3D point that projects back onto p (the old 4k + 1.5 convention missed
    by 1.5 px, plus the upsampling's shift)."""
    net = linear_backbone()
    H = W = 128
    px, py = 64, 56  # feature pixel (16, 14): interior, so the receptive field is whole
    impulse = torch.zeros(1, 3, H, W, dtype=torch.float64)
    impulse[0, :, py, px] = 1.0
    with torch.no_grad():
        response = net(_images(1 + impulse)) - net(_images(torch.ones_like(impulse)))  # (1, 1, 32, 32)
    assert response.shape == (1, 1, H // 4, W // 4) and float(response.min()) > -1e-12
    # A camera at (0.1, -0.2, 0.5) m looking along +z; points on the plane z = 3 m whose
    # projections form a 0.25 px grid over the response's support (+- 40 px around p).
    f, c = 150.0, (W - 1) / 2
    K = torch.tensor([[f, 0, c], [0, f, c], [0, 0, 1]], dtype=torch.float64)
    t = torch.tensor([-0.1, 0.2, -0.5], dtype=torch.float64)  # x_cam = x_world + t
    cam = Camera(K=K, R=torch.eye(3, dtype=torch.float64), t=t, image_size=(W, H))
    grid = torch.arange(-40, 40.25, 0.25, dtype=torch.float64)
    uu, vv = torch.meshgrid(px + grid, py + grid, indexing="xy")
    depth = 3.0
    cam_pts = torch.stack([(uu - c) * depth / f, (vv - c) * depth / f,
                           torch.full_like(uu, depth)], -1).view(-1, 3)
    points = cam_pts - t
    vols, valid = unproject_features(response[None], points[None], K.view(1, 1, 3, 3),
                                     torch.eye(3, dtype=torch.float64).view(1, 1, 3, 3),
                                     t.view(1, 1, 3), None, (W, H), net.pixel_centre)
    assert bool(valid.all())
    weight = vols.view(-1).clamp_min(0)
    centre = (weight[:, None] * points).sum(0) / weight.sum()  # (3,) metres
    uv = cam.project(centre[None])[0]
    assert uv.tolist() == pytest.approx([px, py], abs=0.05), uv.tolist()
