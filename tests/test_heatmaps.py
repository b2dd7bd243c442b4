"""vhakit.heatmaps against slow loop references, gradcheck, round trips and convention pins.

Every statement in docs/conventions.md ("Cuboid and vertex heatmaps") is pinned by a test here.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from vhakit.heatmaps.core import (
    Cuboid,
    SoftArgmax3d,
    encode_gaussian,
    encode_onehot,
    encode_trilinear,
    expected_coordinates,
    soft_argmax,
    voxel_index,
)

F64 = torch.float64


def _cuboid(B=2, res=(5, 6, 7), side=2.0, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return Cuboid(torch.randn(B, 3, generator=g, dtype=dtype), side, res)


def _inside(cub, N, seed=1, spread=0.98):
    """Random vertices well inside ``cub`` (B, N, 3)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(cub.batch_size, N, 3, generator=g, dtype=cub.center.dtype) - 0.5
    return cub.center[:, None] + r * cub.side * spread


# ---------------------------------------------------------------- slow loop references (float64)
def _ref_centre(cub, b, i, axis):
    """c - s/2 + (i + 1/2) s/G, written out."""
    c, s, G = float(cub.center[b, axis]), cub.side, cub.resolution[axis]
    return c - s / 2 + (i + 0.5) * s / G


def _ref_index(cub, v):
    B, N, _ = v.shape
    out = torch.empty(B, N, 3, dtype=torch.long)
    for b, n, a in itertools.product(range(B), range(N), range(3)):
        c, s, G = float(cub.center[b, a]), cub.side, cub.resolution[a]
        hits = [i for i in range(G) if c - s / 2 + i * s / G <= float(v[b, n, a]) < c - s / 2 + (i + 1) * s / G]
        assert len(hits) == 1
        out[b, n, a] = hits[0]
    return out


def _ref_soft_argmax(logits, cub, beta):
    B, N = logits.shape[:2]
    out = torch.zeros(B, N, 3, dtype=F64)
    for b, n in itertools.product(range(B), range(N)):
        z = beta * logits[b, n].double()
        w = torch.exp(z - z.max())
        total, acc = 0.0, [0.0, 0.0, 0.0]
        for idx in itertools.product(*[range(g) for g in cub.resolution]):
            total += float(w[idx])
            for a in range(3):
                acc[a] += float(w[idx]) * _ref_centre(cub, b, idx[a], a)
        out[b, n] = torch.tensor(acc, dtype=F64) / total
    return out


def _ref_gaussian(cub, v, sigma):
    B, N, _ = v.shape
    out = torch.zeros(B, N, *cub.resolution, dtype=F64)
    vs = [cub.side / g for g in cub.resolution]
    for b, n in itertools.product(range(B), range(N)):
        for idx in itertools.product(*[range(g) for g in cub.resolution]):
            d2 = sum(((_ref_centre(cub, b, idx[a], a) - float(v[b, n, a])) / vs[a]) ** 2 for a in range(3))
            out[(b, n, *idx)] = math.exp(-d2 / (2 * sigma**2))
        out[b, n] /= out[b, n].sum()
    return out


def _ref_trilinear(cub, v):
    B, N, _ = v.shape
    out = torch.zeros(B, N, *cub.resolution, dtype=F64)
    for b, n in itertools.product(range(B), range(N)):
        lo, w = [], []
        for a in range(3):
            G, vs = cub.resolution[a], cub.side / cub.resolution[a]
            t = (float(v[b, n, a]) - _ref_centre(cub, b, 0, a)) / vs  # 0 at the first centre
            t = min(max(t, 0.0), G - 1.0)
            i = min(int(math.floor(t)), G - 2) if G > 1 else 0
            lo.append(i)
            w.append((1 - (t - i), t - i))
        for corner in itertools.product((0, 1), repeat=3):
            idx = tuple(min(lo[a] + corner[a], cub.resolution[a] - 1) for a in range(3))
            out[(b, n, *idx)] += w[0][corner[0]] * w[1][corner[1]] * w[2][corner[2]]
    return out


# ------------------------------------------------------------------------------------ Cuboid
def test_axis_coords_and_centres_match_the_formula():
    cub = _cuboid(res=(3, 4, 5))
    for axis in range(3):
        ref = torch.tensor([[_ref_centre(cub, b, i, axis) for i in range(cub.resolution[axis])]
                            for b in range(2)], dtype=F64)
        assert torch.allclose(cub.axis_coords(axis), ref, atol=1e-12)
    centres = cub.voxel_centres()
    assert centres.shape == (2, 3, 4, 5, 3)
    assert torch.allclose(centres[1, 2, 0, 4], torch.tensor(
        [_ref_centre(cub, 1, 2, 0), _ref_centre(cub, 1, 0, 1), _ref_centre(cub, 1, 4, 2)], dtype=F64))
    assert torch.allclose(cub.voxel_size, torch.tensor([2 / 3, 2 / 4, 2 / 5], dtype=F64))
    assert cub.voxel_size.dtype == F64 and Cuboid(torch.zeros(1, 3)).voxel_size.dtype == torch.float32


def test_paper_defaults_and_int_resolution():
    cub = Cuboid(torch.zeros(1, 3))
    assert cub.side == 2.0 and cub.resolution == (64, 64, 64)
    assert torch.allclose(cub.voxel_size, torch.full((3,), 2.0 / 64))


def test_contains_is_half_open():
    cub = Cuboid(torch.zeros(1, 3, dtype=F64), 2.0, 4)
    pts = torch.tensor([[[-1.0, -1.0, -1.0], [1.0, 0.0, 0.0], [1 - 1e-9, 0.0, 0.0],
                         [0.0, -1.0 - 1e-9, 0.0]]], dtype=F64)
    assert cub.contains(pts).tolist() == [[True, False, True, False]]


def test_to_changes_dtype_and_keeps_grid():
    cub = _cuboid().to(dtype=torch.float32)
    assert cub.center.dtype == torch.float32 and cub.resolution == (5, 6, 7) and cub.side == 2.0


@pytest.mark.parametrize("kwargs, word", [
    (dict(center=torch.zeros(3)), "center"),
    (dict(center=torch.zeros(2, 4)), "center"),
    (dict(center=torch.tensor([[0.0, float("nan"), 0.0]])), "center"),
    (dict(center=torch.zeros(1, 3), side=0.0), "side"),
    (dict(center=torch.zeros(1, 3), side=float("inf")), "side"),
    (dict(center=torch.zeros(1, 3), resolution=(4, 4)), "resolution"),
    (dict(center=torch.zeros(1, 3), resolution=0), "resolution"),
    (dict(center=torch.zeros(1, 3), resolution=(4, 4.5, 4)), "resolution"),
])
def test_cuboid_rejects_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Cuboid(**kwargs)


def test_cuboid_rejects_numpy_and_integer_centres():
    with pytest.raises(TypeError, match="center"):
        Cuboid(torch.zeros(1, 3).numpy())
    with pytest.raises(TypeError, match="center"):
        Cuboid(torch.zeros(1, 3, dtype=torch.long))


# ------------------------------------------------------------------------------ voxel_index
def test_voxel_index_matches_loop_reference():
    cub = _cuboid(res=(4, 6, 9))
    v = _inside(cub, 40)
    assert torch.equal(voxel_index(v, cub), _ref_index(cub, v))
    assert voxel_index(v, cub).dtype == torch.long


def test_voxel_bounds_are_half_open():
    cub = Cuboid(torch.zeros(1, 3, dtype=F64), 2.0, 4)  # voxel boundaries at -1, -0.5, 0, 0.5, 1
    v = torch.tensor([[[-1.0, -0.5, 0.0], [0.5 - 1e-12, 0.5, 1 - 1e-12]]], dtype=F64)
    assert voxel_index(v, cub).tolist() == [[[0, 1, 2], [2, 3, 3]]]


def test_outside_error_reports_count_and_worst_distance():
    cub = Cuboid(torch.zeros(1, 3), 2.0, 8)
    v = torch.tensor([[[0.0, 0.0, 0.0], [1.25, 0.0, 0.0], [0.0, -1.0, -1.5], [1.0, 0.0, 0.0]]])
    with pytest.raises(ValueError, match=r"3 of 4 vertices.*vertices\[0, 2\].*0\.5000 m outside"):
        voxel_index(v, cub)
    for enc in (encode_onehot, encode_trilinear, encode_gaussian):
        with pytest.raises(ValueError, match="outside"):
            enc(v, cub)


def test_outside_clamp_snaps_to_the_nearest_voxel():
    cub = Cuboid(torch.zeros(1, 3), 2.0, 8)
    v = torch.tensor([[[5.0, -5.0, 0.1], [1.0, 0.99, -1.0]]])  # the face c + s/2 is outside
    assert voxel_index(v, cub, outside="clamp").tolist() == [[[7, 0, 4], [7, 7, 0]]]
    assert torch.equal(encode_onehot(v, cub, outside="clamp"),
                       encode_onehot(v.clamp(-0.99, 0.99), cub))
    h = encode_trilinear(v, cub, outside="clamp")
    assert torch.allclose(h.sum((2, 3, 4)), torch.ones(1, 2))


def test_outside_clamp_moves_points_onto_the_closed_cuboid():
    cub = Cuboid(torch.zeros(1, 3, dtype=F64), 2.0, (4, 5, 6))
    v = torch.tensor([[[5.0, -3.0, 0.2], [0.3, 1.5, -0.4]]], dtype=F64)
    on_faces = v.clamp(-1.0, 1.0)  # the nearest points of the cuboid
    got = encode_gaussian(v, cub, 1.2, outside="clamp")
    assert (got - _ref_gaussian(cub, on_faces, 1.2)).abs().max() <= 1e-9


# ---------------------------------------------------------------------------------- encoders
def test_onehot_matches_loop_and_is_eq1():
    cub = _cuboid(res=(4, 5, 6))
    v = _inside(cub, 7)
    h = encode_onehot(v, cub)
    ref = torch.zeros_like(h)
    for b, n in itertools.product(range(2), range(7)):
        ref[(b, n, *_ref_index(cub, v)[b, n].tolist())] = 1.0
    assert h.shape == (2, 7, 4, 5, 6) and h.dtype == F64
    assert torch.equal(h, ref)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_gaussian_matches_loop_reference(sigma):
    cub = _cuboid(res=(4, 5, 6))
    v = _inside(cub, 4)
    h = encode_gaussian(v, cub, sigma_vox=sigma)
    assert (h - _ref_gaussian(cub, v, sigma)).abs().max() <= 1e-6
    assert torch.allclose(h.sum((2, 3, 4)), torch.ones(2, 4, dtype=F64))


def test_trilinear_matches_loop_reference_including_margins():
    cub = _cuboid(res=(4, 5, 6))
    v = _inside(cub, 30, spread=0.999)  # many land in the half-voxel margins
    assert (encode_trilinear(v, cub) - _ref_trilinear(cub, v)).abs().max() <= 1e-6


def test_trilinear_round_trip_is_sub_voxel_exact():
    cub = _cuboid(B=2, res=64, dtype=torch.float32)
    hull = 1 - 1 / 64  # the outermost voxel centres, as a fraction of the side
    v = _inside(cub, 20, spread=hull * 0.999)
    h = encode_trilinear(v, cub)
    assert (h > 0).sum((2, 3, 4)).max() <= 8
    assert (soft_argmax(h.log(), cub) - v).abs().max() <= 1e-5
    assert (expected_coordinates(h, cub) - v).abs().max() <= 1e-5


def test_trilinear_margin_snaps_to_the_outermost_centre():
    cub = Cuboid(torch.zeros(1, 3, dtype=F64), 2.0, 4)  # centres at +-0.25, +-0.75
    v = torch.tensor([[[0.9, -0.8, 0.1]]], dtype=F64)
    est = expected_coordinates(encode_trilinear(v, cub), cub)
    assert torch.allclose(est, torch.tensor([[[0.75, -0.75, 0.1]]], dtype=F64), atol=1e-12)


def test_onehot_round_trip_returns_the_voxel_centre():
    cub = _cuboid(B=2, res=(16, 12, 8), dtype=torch.float32)
    v = _inside(cub, 30)
    est = soft_argmax(50.0 * encode_onehot(v, cub), cub)
    idx = voxel_index(v, cub)
    centre = torch.stack([cub.axis_coords(a).gather(1, idx[..., a]) for a in range(3)], -1)
    assert (est - centre).abs().max() <= 1e-5
    half_diag = 0.5 * cub.voxel_size.norm()
    assert (est - v).norm(dim=-1).max() <= half_diag


def test_encoders_are_differentiable_wrt_vertices():
    cub = _cuboid(B=1, res=(4, 5, 6))
    v = _inside(cub, 3, spread=0.7).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: encode_trilinear(x, cub), (v,))
    assert torch.autograd.gradcheck(lambda x: encode_gaussian(x, cub, 1.3), (v,))


# ------------------------------------------------------------------------------- soft-argmax
@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_soft_argmax_matches_loop_reference(beta):
    cub = _cuboid(res=(3, 4, 5))
    x = torch.randn(2, 3, 3, 4, 5, generator=torch.Generator().manual_seed(2), dtype=F64) * 3
    ref = _ref_soft_argmax(x, cub, beta)
    assert (soft_argmax(x, cub, beta) - ref).abs().max() <= 1e-6
    assert (soft_argmax(x, cub, beta, return_probs=True)[0] - ref).abs().max() <= 1e-6
    assert (soft_argmax(x.float(), cub.to(dtype=torch.float32), beta) - ref).abs().max() <= 1e-6


def test_soft_argmax_gradcheck_float64():
    c = torch.randn(2, 3, dtype=F64, requires_grad=True)
    x = torch.randn(2, 3, 3, 4, 5, dtype=F64, requires_grad=True)
    for kw in [dict(chunk_size=1), dict(chunk_size=4), dict(return_probs=True)]:
        def f(logits, center, kw=kw):  # with return_probs, checks both outputs
            return soft_argmax(logits, Cuboid(center, 1.5, (3, 4, 5)), 1.7, **kw)
        assert torch.autograd.gradcheck(f, (x, c))


def test_fast_and_probs_paths_agree_in_value_and_gradient():
    cub = _cuboid(res=(6, 5, 4), dtype=torch.float32)
    x = torch.randn(2, 9, 6, 5, 4, generator=torch.Generator().manual_seed(3))
    up = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(4))
    grads = []
    for kw in [dict(chunk_size=2), dict(), dict(return_probs=True)]:
        leaf = x.clone().requires_grad_()
        out = soft_argmax(leaf, cub, 2.0, **kw)
        coords = out[0] if isinstance(out, tuple) else out
        (coords * up).sum().backward()
        grads.append((coords.detach(), leaf.grad))
    for coords, grad in grads[1:]:
        assert torch.allclose(coords, grads[0][0], atol=1e-6)
        assert torch.allclose(grad, grads[0][1], atol=1e-6)


def test_return_probs_is_the_softmax():
    cub = _cuboid(res=(3, 4, 5))
    x = torch.randn(2, 3, 3, 4, 5, dtype=F64)
    _, p = soft_argmax(x, cub, 2.5, return_probs=True)
    assert p.shape == x.shape
    assert torch.allclose(p, torch.softmax(2.5 * x.flatten(2), -1).view_as(x))


def test_beta_is_an_inverse_temperature():
    cub = _cuboid(res=(5, 6, 7))
    x = torch.randn(2, 4, 5, 6, 7, generator=torch.Generator().manual_seed(5), dtype=F64)
    flat = x.flatten(2).argmax(-1)  # hard argmax; make it win by a margin of 1
    x.view(2, 4, -1).scatter_add_(-1, flat[..., None], torch.ones(2, 4, 1, dtype=F64))
    idx = torch.stack(torch.unravel_index(flat, (5, 6, 7)), -1)
    argmax_centre = torch.stack([cub.axis_coords(a).gather(1, idx[..., a]) for a in range(3)], -1)
    assert (soft_argmax(x, cub, beta=1e4) - argmax_centre).abs().max() <= 1e-9
    centre = cub.center[:, None].expand(2, 4, 3)  # the mean of all voxel centres
    assert (soft_argmax(x, cub, beta=1e-9) - centre).abs().max() <= 1e-7


def test_soft_argmax_is_stable_for_huge_logits():
    cub = _cuboid(res=(4, 4, 4))
    x = torch.randn(2, 3, 4, 4, 4, dtype=F64)
    assert torch.allclose(soft_argmax(x + 1e6, cub), soft_argmax(x, cub), atol=1e-9)
    big = soft_argmax((x * 1e4).float(), cub.to(dtype=torch.float32))
    assert torch.isfinite(big).all()


def test_module_wraps_the_function():
    cub = _cuboid(res=(3, 4, 5))
    x = torch.randn(2, 3, 3, 4, 5, dtype=F64)
    mod = SoftArgmax3d(beta=2.0)
    assert torch.equal(mod(x, cub), soft_argmax(x, cub, 2.0))
    assert "beta=2.0" in repr(mod)
    with pytest.raises(ValueError, match="beta"):
        SoftArgmax3d(0.0)


class _NewStorages(TorchDispatchMode):
    """Records the bytes of every storage an op allocates (views and in-place ops allocate none)."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        seen = {a.untyped_storage().data_ptr() for a in pytree.tree_leaves((args, kwargs))
                if isinstance(a, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
                self.sizes.append(t.untyped_storage().nbytes())
        return out


def test_soft_argmax_never_materialises_a_full_copy():
    cub = _cuboid(B=2, res=(8, 8, 8), dtype=torch.float32)
    x = torch.randn(2, 16, 8, 8, 8, requires_grad=True)
    one = 8 * 8 * 8 * 4  # bytes of one heatmap
    with _NewStorages() as fwd:
        coords = soft_argmax(x, cub, 3.0, chunk_size=2)
    assert max(fwd.sizes) <= 2 * one  # a chunk, never (B, N, G^3) nor (B, N, G^3, 3)
    with _NewStorages() as bwd:
        coords.sum().backward()
    big = sorted(bwd.sizes)
    assert big[-1] == x.numel() * 4 and big[-2] <= 2 * one  # the gradient itself, then chunks


# ------------------------------------------------------------------------- convention pins
def test_corner_spikes_on_a_non_cubic_grid():
    res = (8, 12, 16)
    cub = Cuboid(torch.tensor([[0.1, -0.2, 0.3]], dtype=F64), 2.0, res)
    vs = [2.0 / g for g in res]
    for corner in itertools.product((0, 1), repeat=3):
        idx = tuple(c * (g - 1) for c, g in zip(corner, res, strict=True))
        logits = torch.zeros(1, 1, *res, dtype=F64)
        logits[(0, 0, *idx)] = 100.0
        expected = torch.tensor([[[float(cub.center[0, a]) + (1 if corner[a] else -1) * (1.0 - vs[a] / 2)
                                   for a in range(3)]]], dtype=F64)
        assert torch.allclose(soft_argmax(logits, cub), expected, atol=1e-12), corner
        assert voxel_index(expected, cub)[0, 0].tolist() == list(idx)
        assert encode_onehot(expected, cub)[(0, 0, *idx)] == 1.0


def test_translating_cuboid_and_vertices_together_changes_nothing():
    cub = _cuboid(res=(6, 7, 8))
    v = _inside(cub, 10)
    shift = torch.tensor([0.375, -1.25, 2.5], dtype=F64)  # exact in binary: no rounding
    moved = Cuboid(cub.center + shift, cub.side, cub.resolution)
    for enc in (encode_onehot, encode_trilinear, lambda a, b: encode_gaussian(a, b, 1.5)):
        assert torch.allclose(enc(v, cub), enc(v + shift, moved), atol=1e-12)
    x = torch.randn(2, 10, 6, 7, 8, dtype=F64)
    assert torch.allclose(soft_argmax(x, moved), soft_argmax(x, cub) + shift, atol=1e-12)


def test_batched_equals_per_item():
    cub = _cuboid(B=3, res=(5, 4, 6))
    v = _inside(cub, 6)
    x = torch.randn(3, 6, 5, 4, 6, dtype=F64)
    for b in range(3):
        one = Cuboid(cub.center[b:b + 1], cub.side, cub.resolution)
        for enc in (encode_onehot, encode_trilinear, encode_gaussian):
            assert torch.equal(enc(v, cub)[b:b + 1], enc(v[b:b + 1], one))
        assert torch.allclose(soft_argmax(x, cub)[b:b + 1], soft_argmax(x[b:b + 1], one), atol=1e-14)


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("call, word", [
    (lambda c, v, x: soft_argmax(x[:, :, :-1], c), "logits"),
    (lambda c, v, x: soft_argmax(x[0], c), "logits"),
    (lambda c, v, x: soft_argmax(x, c, beta=0.0), "beta"),
    (lambda c, v, x: soft_argmax(x, c, beta=float("nan")), "beta"),
    (lambda c, v, x: soft_argmax(x, c, chunk_size=0), "chunk_size"),
    (lambda c, v, x: voxel_index(v[..., :2], c), "vertices"),
    (lambda c, v, x: voxel_index(v[:1], c), "vertices"),
    (lambda c, v, x: voxel_index(v, c, outside="wrap"), "outside"),
    (lambda c, v, x: voxel_index(v * float("nan"), c), "vertices"),
    (lambda c, v, x: encode_gaussian(v, c, sigma_vox=-1.0), "sigma_vox"),
    (lambda c, v, x: expected_coordinates(x[:, :, :, :2], c), "heatmaps"),
    (lambda c, v, x: c.axis_coords(3), "axis"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, word):
    cub = _cuboid(res=(3, 4, 5))
    with pytest.raises(ValueError, match=word):
        call(cub, _inside(cub, 2), torch.randn(2, 2, 3, 4, 5, dtype=F64))


def test_wrong_types_raise_type_error():
    cub = _cuboid(res=(3, 4, 5))
    with pytest.raises(TypeError, match="vertices"):
        voxel_index(_inside(cub, 2).numpy(), cub)
    with pytest.raises(TypeError, match="cuboid"):
        encode_onehot(_inside(cub, 2), cub.center)
    with pytest.raises(TypeError, match="beta"):
        soft_argmax(torch.randn(2, 2, 3, 4, 5, dtype=F64), cub, beta=torch.tensor(1.0))


# ------------------------------------------------------------------------------------ dtypes
def test_float32_under_bf16_autocast_on_cpu():
    cub = _cuboid(res=(3, 4, 5), dtype=torch.float32)
    x = torch.randn(2, 3, 3, 4, 5, generator=torch.Generator().manual_seed(6))
    plain = soft_argmax(x, cub, 2.0)
    leaf = x.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = soft_argmax(x, cub, 2.0)
        b = soft_argmax(leaf, cub, 2.0)
        c, p = soft_argmax(x, cub, 2.0, return_probs=True)
    assert a.dtype == b.dtype == c.dtype == p.dtype == torch.float32
    assert torch.equal(a, plain)  # computed in float32: autocast changed nothing
    assert torch.allclose(c, plain, atol=1e-6)
    b.sum().backward()
    assert leaf.grad.dtype == torch.bfloat16 and torch.isfinite(leaf.grad.float()).all()
    h = torch.softmax(x.flatten(2), -1).view_as(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        com = expected_coordinates(h, cub)
    assert com.dtype == torch.float32 and torch.equal(com, expected_coordinates(h, cub))


def test_output_dtype_follows_input_without_autocast():
    cub = _cuboid(res=(3, 4, 5), dtype=torch.float32)
    x = torch.randn(2, 3, 3, 4, 5)
    assert soft_argmax(x.double(), cub).dtype == F64
    assert soft_argmax(x, cub).dtype == torch.float32
    half = soft_argmax(x.bfloat16(), cub)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), soft_argmax(x.bfloat16().float(), cub), atol=1e-2)
    v = _inside(cub, 3)
    assert encode_onehot(v.double(), cub).dtype == F64 and encode_trilinear(v, cub).dtype == torch.float32


def test_conventions_doc_cites_only_existing_tests():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "conventions.md").read_text()
    section = doc.split("## Cuboid and vertex heatmaps", 1)[1].split("\n## ", 1)[0]
    cited = set(re.findall(r"`(test_\w+)`", section))
    assert len(cited) >= 20
    assert cited <= {name for name in globals() if name.startswith("test_")}
