"""V2V blocks and the sparse one-hot convolution, against dense torch convolutions and the
documented block structure (method notes 1.5)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vhakit.heatmaps.core import Cuboid, encode_onehot, voxel_index
from vhakit.models.blocks import (
    Basic3D,
    Pool3D,
    Res3D,
    SparseOneHotConv3d,
    Upsample3D,
    make_norm,
    sparse_conv3d,
)


def dense_volume(idx: torch.Tensor, vals: torch.Tensor, grid) -> torch.Tensor:
    """Reference: the sparse input as a dense (B, N, Gx, Gy, Gz) volume, by explicit loops."""
    B, N, P, _ = idx.shape
    x = torch.zeros(B, N, *grid, dtype=vals.dtype)
    for b in range(B):
        for n in range(N):
            for p in range(P):
                i, j, k = idx[b, n, p].tolist()
                x[b, n, i, j, k] = x[b, n, i, j, k] + vals[b, n, p]
    return x


CASES = [  # grid, kernel, stride, padding, entries per channel
    ((8, 8, 8), 7, 2, 3, 1),  # the teaching stem
    ((16, 16, 16), 7, 1, 3, 1),  # the paper stem (V2V Basic3D k7)
    ((5, 6, 7), 3, 1, 1, 1),  # non-cubic grid
    ((9, 8, 7), 5, 2, 2, 8),  # trilinear-like splats, odd grid with stride 2
    ((7, 7, 7), 4, 3, 0, 3),  # even kernel, stride 3, no padding
    ((6, 6, 6), 3, 2, 0, 1),
]


@pytest.mark.parametrize("grid,k,s,p,P", CASES)
def test_sparse_conv_equals_dense_conv3d_values_and_gradients(grid, k, s, p, P):
    g = torch.Generator().manual_seed(sum(grid) + k + s + p + P)
    B, N, C = 2, 6, 5
    idx = torch.stack([torch.randint(0, n, (B, N, P), generator=g) for n in grid], -1)
    idx[0, 0, 0] = 0  # grid corners: kernels hang over the border
    idx[1, 1, 0] = torch.tensor(grid) - 1
    assert_sparse_matches_conv3d(idx, grid, k, s, p, C, g, methods=("auto",))


def assert_sparse_matches_conv3d(idx, grid, k, s, p, C, g, methods):
    """sparse_conv3d (each of ``methods``) against F.conv3d of the dense volume: values to
    1e-12 and the gradients of weight, bias and voxel_weight to 1e-11 (float64)."""
    B, N, P, _ = idx.shape
    vals = torch.rand(B, N, P, generator=g, dtype=torch.float64).requires_grad_()
    W = torch.randn(C, N, k, k, k, generator=g, dtype=torch.float64).requires_grad_()
    bias = torch.randn(C, generator=g, dtype=torch.float64).requires_grad_()
    ref = F.conv3d(dense_volume(idx, vals, grid), W, bias, stride=s, padding=p)
    grad_out = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    g_ref = torch.autograd.grad(ref, (W, bias, vals), grad_out)
    for method in methods:
        out = sparse_conv3d(idx, W, grid, vals, bias, stride=s, padding=p, method=method)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        g_out = torch.autograd.grad(out, (W, bias, vals), grad_out)
        for name, a, b in zip(("weight", "bias", "voxel_weight"), g_out, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-11, msg=f"{method} {name}")


@pytest.mark.parametrize("grid,k,s,p,P", CASES + [((9, 8, 7), 7, 2, 3, 27), ((6, 7, 8), 5, 1, 2, 8)])
def test_sparse_conv_window_form_equals_dense_conv3d(grid, k, s, p, P):
    """The window form (entries of a channel close together: splats) against F.conv3d, values
    and gradients, with the windows touching every face of the grid."""
    g = torch.Generator().manual_seed(7 * sum(grid) + k + s + p + P)
    B, N, C = 3, 5, 4
    side = max(1, round(P ** (1 / 3)))  # entries in a cube of side 1-3 around a random voxel
    lo = torch.stack([torch.randint(0, n - side + 1, (B, N), generator=g) for n in grid], -1)
    lo[0, 0] = 0
    lo[1, 1] = torch.tensor(grid) - side
    off = torch.randint(0, side, (B, N, P, 3), generator=g)
    idx = lo[:, :, None] + off
    assert_sparse_matches_conv3d(idx, grid, k, s, p, C, g, methods=("window", "auto"))


def test_sparse_onehot_float32_matches_dense_to_1e5():
    """The module on vertices: forward_sparse(voxel_index) vs forward(encode_onehot volume)."""
    g = torch.Generator().manual_seed(0)
    conv = SparseOneHotConv3d(108, 16, 7, stride=2, padding=3, bias=True)
    verts = (torch.rand(3, 108, 3, generator=g) - 0.5) * 1.9
    cub = Cuboid(torch.zeros(3, 3), side=2.0, resolution=16)
    dense = conv(encode_onehot(verts, cub))
    w_grad_dense = torch.autograd.grad(dense.square().sum(), (conv.weight, conv.bias))
    sparse = conv.forward_sparse(voxel_index(verts, cub), cub.resolution)
    w_grad_sparse = torch.autograd.grad(sparse.square().sum(), (conv.weight, conv.bias))
    assert sparse.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-5)
    for a, b in zip(w_grad_sparse, w_grad_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_sparse_conv_rejects_bad_input():
    W = torch.zeros(4, 3, 3, 3, 3)
    with pytest.raises(ValueError, match="outside the grid"):
        sparse_conv3d(torch.full((1, 3, 3), 8), W, (8, 8, 8))
    with pytest.raises(TypeError, match="long"):
        sparse_conv3d(torch.zeros(1, 3, 3), W, (8, 8, 8))
    with pytest.raises(ValueError, match=r"\(C_out, N=5"):
        sparse_conv3d(torch.zeros(1, 5, 3, dtype=torch.long), W, (8, 8, 8))
    with pytest.raises(ValueError, match="voxel_weight"):
        sparse_conv3d(torch.zeros(1, 3, 3, dtype=torch.long), W, (8, 8, 8), torch.ones(1, 4))
    with pytest.raises(ValueError, match="padding"):
        sparse_conv3d(torch.zeros(1, 3, 3, dtype=torch.long), W, (8, 8, 8), padding=3)


def _n_norm(kind: str, c: int) -> int:
    return 0 if kind == "none" else 2 * c  # affine weight and bias


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_block_shapes_and_parameter_counts_follow_v2v(norm):
    x = torch.randn(2, 4, 8, 6, 4)
    bias = lambda c: c if norm == "none" else 0  # noqa: E731 - conv bias only without a norm
    b = Basic3D(4, 6, 5, norm)
    assert b(x).shape == (2, 6, 8, 6, 4)
    assert sum(p.numel() for p in b.parameters()) == 125 * 4 * 6 + bias(6) + _n_norm(norm, 6)
    r = Res3D(4, 6, norm)  # conv3, conv3 and a 1x1 skip (channels change), three norms
    assert r(x).shape == (2, 6, 8, 6, 4)
    expect = 27 * 4 * 6 + 27 * 6 * 6 + 4 * 6 + 3 * bias(6) + 3 * _n_norm(norm, 6)
    assert sum(p.numel() for p in r.parameters()) == expect
    r_same = Res3D(4, 4, norm)  # identity skip: no parameters in it
    assert sum(p.numel() for p in r_same.skip.parameters()) == 0
    assert Pool3D()(x).shape == (2, 4, 4, 3, 2)
    torch.testing.assert_close(Pool3D()(x)[0, 0, 0, 0, 0], x[0, 0, :2, :2, :2].max())
    u = Upsample3D(4, 3, norm)
    assert u(x).shape == (2, 3, 16, 12, 8)
    assert sum(p.numel() for p in u.parameters()) == 4 * 3 * 8 + bias(3) + _n_norm(norm, 3)


def test_group_norm_blocks_are_batch_consistent():
    """GroupNorm is per sample: a batch equals its items one at a time (BatchNorm would not)."""
    torch.manual_seed(0)
    r = Res3D(8, 16, "group").train()
    x = torch.randn(3, 8, 6, 6, 6)
    torch.testing.assert_close(r(x), torch.cat([r(x[i:i + 1]) for i in range(3)]))
    assert make_norm("group", 12).num_groups == 4  # gcd(12, 8)
    with pytest.raises(ValueError, match="norm must be one of"):
        make_norm("layer", 8)
