"""V2V-style 3D building blocks (method notes 1.5) and the sparse one-hot first convolution.

Blocks, as in LMT / learnable-triangulation's ``v2v.py`` (the paper, Sec. 2.3: "the same
structure as those in LMT"):

* :class:`Basic3D`: Conv3d(k, stride 1, 'same' padding) -> norm -> ReLU.
* :class:`Res3D`: [Conv3d 3 -> norm -> ReLU -> Conv3d 3 -> norm] + skip -> ReLU; the skip is the
  identity, or Conv3d 1 + norm when the channel count changes.
* :class:`Pool3D`: max-pool, kernel = stride = 2 (halves every grid axis).
* :class:`Upsample3D`: ConvTranspose3d(kernel = stride = 2) -> norm -> ReLU (doubles every axis).

Normalisation is a choice (``norm=``): ``"batch"`` (V2V's BatchNorm3d), ``"group"`` (GroupNorm
with up to 8 groups) or ``"none"``. The kit's CPU presets use GroupNorm: it is computed per sample,
so a batch gives the same result as its items one at a time, training and evaluation behave the
same (no running statistics), small batches (BCP trains with 3) do not add noise, and a DDP run
equals a single-process run with the same global batch (BatchNorm would normalise each rank's
half-batch separately). Convolutions followed by a norm layer have no bias: the norm's shift
replaces it, and a bias whose gradient is zero in exact arithmetic only collects rounding noise.

:class:`SparseOneHotConv3d` is a Conv3d whose input may also be given *sparsely*: for a one-hot
heatmap volume (paper Eq. 1) the convolution is a scatter-add of the kernel slices of the N input
channels at their voxels, O(N k^3 C) instead of O(G^3 N k^3 C) work; see
:func:`sparse_conv3d`. The same weights serve dense volumes (``forward(volume)``), so an encoder
trained on one-hot heatmaps transfers to dense feature volumes (BCP).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vhakit.runtime import compiling

__all__ = ["NORMS", "make_norm", "Basic3D", "Res3D", "Pool3D", "Upsample3D",
           "SparseOneHotConv3d", "sparse_conv3d", "conv_output_size"]

NORMS = ("batch", "group", "none")
MAX_GROUPS = 8  # GroupNorm groups (fewer when the channel count is not a multiple of 8)


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 3D normalisation layer: ``"batch"`` BatchNorm3d, ``"group"`` GroupNorm with
    ``gcd(channels, 8)`` groups, ``"none"`` identity."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, MAX_GROUPS), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def _conv(cin: int, cout: int, k: int, norm: str) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, k, padding=k // 2, bias=norm == "none")


class Basic3D(nn.Sequential):
    """Conv3d(k, 'same') -> norm -> ReLU. ``(B, cin, X, Y, Z) -> (B, cout, X, Y, Z)``."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, norm: str = "batch") -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        super().__init__(_conv(cin, cout, kernel_size, norm), make_norm(norm, cout),
                         nn.ReLU(inplace=True))


class Res3D(nn.Module):
    """Residual block ``(B, cin, X, Y, Z) -> (B, cout, X, Y, Z)`` (two 3x3x3 convolutions)."""

    def __init__(self, cin: int, cout: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(cin, cout, 3, norm), make_norm(norm, cout), nn.ReLU(inplace=True),
            _conv(cout, cout, 3, norm), make_norm(norm, cout))
        self.skip = (nn.Identity() if cin == cout else
                     nn.Sequential(_conv(cin, cout, 1, norm), make_norm(norm, cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class Pool3D(nn.Module):
    """Max-pool with kernel = stride = 2: ``(B, C, X, Y, Z) -> (B, C, X/2, Y/2, Z/2)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(x, kernel_size=2, stride=2)


class Upsample3D(nn.Sequential):
    """ConvTranspose3d(kernel = stride = 2) -> norm -> ReLU:
    ``(B, cin, X, Y, Z) -> (B, cout, 2X, 2Y, 2Z)``."""

    def __init__(self, cin: int, cout: int, norm: str = "batch") -> None:
        super().__init__(nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=norm == "none"),
                         make_norm(norm, cout), nn.ReLU(inplace=True))


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: ``floor((size + 2p - k) / s) + 1``."""
    return (size + 2 * padding - kernel_size) // stride + 1


def sparse_conv3d(voxel_index: torch.Tensor, weight: torch.Tensor, grid: tuple[int, int, int],
                  voxel_weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  stride: int = 1, padding: int = 0, method: str = "auto") -> torch.Tensor:
    """``F.conv3d(x, weight, bias, stride, padding)`` for a sparse input volume ``x``.

    ``x`` has one channel per input point set (the N vertices): channel ``n`` is
    ``sum_p voxel_weight[b, n, p] * delta(voxel_index[b, n, p])``, i.e. a one-hot heatmap (P = 1,
    weight 1), a trilinear splat (P = 8) or any other locally supported heatmap. Each entry adds
    the kernel slice ``weight[:, n]`` (flipped into output coordinates) around its voxel, so the
    cost is O(B N P ceil(k/s)^3 C_out), independent of the grid size. Exactly equal to the dense
    convolution up to float summation order, in value and in the gradients with respect to
    ``weight``, ``bias`` and ``voxel_weight``.

    How: along one axis an input voxel ``i`` reaches the outputs ``o = (i + p - k) / s`` for the
    kernel taps ``k`` with ``k = (i + p) mod s + s j``, ``j = 0 .. ceil(k/s) - 1``; those outputs
    are ``o = floor((i + p) / s) - j``. Padding the kernel with zeros to ``s * ceil(k/s)`` taps
    makes this a fixed-size patch per entry. Outputs that fall outside the grid land in a margin
    of the scatter buffer that is cropped away.

    Splats (P > 1 entries close together, e.g. the 3^3 voxels of a Gaussian) have a cheaper
    form, ``method="window"``: each channel's entries lie in a small stride-aligned window of
    ``W`` voxels per axis, whose outputs form a patch of ``Q = W/s + ceil(k/s) - 1`` per axis.
    The window's values ``(B, N, W^3)`` times the kernel unrolled into a ``(N, W^3, Q^3 C)``
    matrix (built once per call, independent of B) is one batched matrix product; the patches are
    then scattered. It moves ``N W^3 Q^3 C + B N Q^3 C`` numbers instead of ``B N P ceil(k/s)^3
    C``: 3.5x fewer for the teaching stem's Gaussian at batch 10, and no slow gather backward.
    ``"auto"`` picks the cheaper form from those counts; ``"entries"`` forces the per-entry one.

    Args:
        voxel_index: ``(B, N, 3)`` or ``(B, N, P, 3)`` long, voxel indices ``(ix, iy, iz)`` with
            ``0 <= i < grid`` per axis (see ``vhakit.heatmaps.voxel_index``).
        weight: ``(C_out, N, k, k, k)`` a Conv3d weight with a cubic kernel.
        grid: ``(Gx, Gy, Gz)`` the input volume's size.
        voxel_weight: ``(B, N)`` or ``(B, N, P)`` the value at each index (default 1: one-hot).
        bias: ``(C_out,)`` or None.
        stride, padding: as for ``F.conv3d`` (ints; ``padding < k``).
        method: ``"auto"``, ``"entries"`` or ``"window"`` (same result, see above).
    Returns:
        ``(B, C_out, Ox, Oy, Oz)`` in ``weight``'s dtype, channels-last-3d memory format,
        ``O = floor((G + 2 padding - k) / stride) + 1`` per axis.
    """
    if voxel_index.dtype != torch.long:
        raise TypeError(f"voxel_index must be a long tensor, got {voxel_index.dtype}")
    if voxel_index.dim() == 3:
        voxel_index = voxel_index[:, :, None]  # (B, N, 1, 3)
        if voxel_weight is not None:
            voxel_weight = voxel_weight[:, :, None]
    if voxel_index.dim() != 4 or voxel_index.shape[-1] != 3:
        raise ValueError(f"voxel_index must have shape (B, N, 3) or (B, N, P, 3), got "
                         f"{tuple(voxel_index.shape)}")
    B, N, P, _ = voxel_index.shape
    cin, k = weight.shape[1], weight.shape[2]
    if weight.dim() != 5 or weight.shape[2:] != (k, k, k) or cin != N:
        raise ValueError(f"weight must have shape (C_out, N={N}, k, k, k), got {tuple(weight.shape)}")
    if voxel_weight is not None and voxel_weight.shape != (B, N, P):
        raise ValueError(f"voxel_weight must have shape {(B, N, P)[:2 if P == 1 else 3]} to match "
                         f"voxel_index, got {tuple(voxel_weight.shape)}")
    if not (0 <= padding < k) or stride < 1:
        raise ValueError(f"need stride >= 1 and 0 <= padding < kernel_size ({k}), got "
                         f"stride={stride}, padding={padding}")
    grid_t = torch.tensor(grid, device=voxel_index.device)
    if not compiling() and bool(((voxel_index < 0) | (voxel_index >= grid_t)).any()):
        raise ValueError(f"voxel_index has entries outside the grid {tuple(grid)}; build it with "
                         "vhakit.heatmaps.voxel_index(..., outside='clamp') or enlarge the cuboid")
    if method not in ("auto", "entries", "window"):
        raise ValueError(f"method must be 'auto', 'entries' or 'window', got {method!r}")
    s, M = stride, -(-k // stride)  # M = ceil(k / s) taps per axis reach each output
    out_size = [conv_output_size(g, k, s, padding) for g in grid]
    t = voxel_index + padding  # (B, N, P, 3) padded voxel coordinates
    if method == "window" or (P > 1 and method == "auto"):
        t0 = torch.div(t.amin(2), s, rounding_mode="floor") * s  # (B, N, 3) window starts
        span = int((t.amax(2) - t0).max()) + 1
        Wl = s * -(-span // s)  # window length per axis, a multiple of the stride
        Q = Wl // s + M - 1
        if method == "window" or N * Wl ** 3 * Q ** 3 + B * N * Q ** 3 < B * N * P * M ** 3:
            return _sparse_conv3d_window(t, t0, Wl, Q, weight, grid, voxel_weight, bias, s,
                                         M, out_size)
    return _sparse_conv3d_entries(t, weight, grid, voxel_weight, bias, s, M, out_size, padding)


def _sparse_conv3d_entries(t: torch.Tensor, weight: torch.Tensor, grid: tuple[int, int, int],
                           voxel_weight: torch.Tensor | None, bias: torch.Tensor | None, s: int,
                           M: int, out_size: list[int], padding: int) -> torch.Tensor:
    """The per-entry form of :func:`sparse_conv3d`. ``t (B, N, P, 3)``: padded voxel
    coordinates; ``M``: kernel taps per axis that reach each output."""
    N, cout, k = t.shape[1], weight.shape[0], weight.shape[2]
    buf_size = [(g - 1 + padding) // s + M for g in grid]  # outputs o in [-(M-1), ...] shifted by M-1
    # Kernel taps regrouped by (residue r, step j): tap = r + s*j.
    w = F.pad(weight, (0, s * M - k) * 3)  # (C_out, N, sM, sM, sM), extra taps are zero
    w = w.view(cout, N, M, s, M, s, M, s).permute(1, 3, 5, 7, 2, 4, 6, 0)  # (N, rx, ry, rz, jx, jy, jz, C_out)
    w = w.reshape(N * s ** 3, M ** 3, cout)
    r, o_max = t % s, t // s
    rows = (torch.arange(N, device=t.device)[:, None] * s + r[..., 0]) * s + r[..., 1]
    rows = rows * s + r[..., 2]  # (B, N, P) row of w for each entry
    vals = w.index_select(0, rows.reshape(-1))  # (B*N*P, M^3, C_out); backward: index_add
    if voxel_weight is not None:
        vals = vals * voxel_weight.reshape(-1, 1, 1).to(vals.dtype)
    j = torch.arange(M, device=t.device)
    q = o_max[..., None] + (M - 1) - j  # (B, N, P, 3, M) buffer position per axis and step
    return _scatter_patches(vals.reshape(-1, cout), q, buf_size, M, out_size, bias)


def _scatter_patches(vals: torch.Tensor, q: torch.Tensor, buf_size: list[int], M: int,
                     out_size: list[int], bias: torch.Tensor | None) -> torch.Tensor:
    """Both forms' tail: add ``vals (rows, C_out)`` into the output buffer at the positions
    ``q (B, ..., 3, L)`` per axis (rows: ``...``, then the ``L^3`` positions), crop the margin of
    ``M - 1``, add ``bias`` -> ``(B, C_out, Ox, Oy, Oz)``, channels-last-3d strides."""
    B, cout = q.shape[0], vals.shape[-1]
    flat = (q[..., 0, :, None, None] * buf_size[1] + q[..., 1, None, :, None]) * buf_size[2]
    flat = flat + q[..., 2, None, None, :]  # (B, ..., L, L, L)
    batch = torch.arange(B, device=q.device).view(B, *[1] * (flat.dim() - 1))
    flat = flat + batch * math.prod(buf_size)
    buf = vals.new_zeros(B * math.prod(buf_size), cout)
    buf = buf.index_add(0, flat.reshape(-1), vals)
    buf = buf.view(B, *buf_size, cout)[:, M - 1:M - 1 + out_size[0], M - 1:M - 1 + out_size[1],
                                        M - 1:M - 1 + out_size[2]]  # (B, Ox, Oy, Oz, C_out)
    if bias is not None:
        buf = buf + bias
    out = buf.permute(0, 4, 1, 2, 3)  # (B, C_out, Ox, Oy, Oz), channels-last strides
    return out.contiguous(memory_format=torch.channels_last_3d)


def _sparse_conv3d_window(t: torch.Tensor, t0: torch.Tensor, Wl: int, Q: int,
                          weight: torch.Tensor, grid: tuple[int, int, int],
                          voxel_weight: torch.Tensor | None, bias: torch.Tensor | None, s: int,
                          M: int, out_size: list[int]) -> torch.Tensor:
    """The ``method="window"`` form of :func:`sparse_conv3d`. ``t (B, N, P, 3)``: padded voxel
    coordinates; ``t0 (B, N, 3)``: each channel's window start (a multiple of ``s``); ``Wl``:
    window length; ``Q``: patch length per axis."""
    B, N, P, _ = t.shape
    cout, k = weight.shape[0], weight.shape[2]
    dev = t.device
    # Along one axis, window offset u and patch offset q (output o = t0/s - (M-1) + q) meet at
    # kernel tap u + s(M-1) - s q, when it lies in [0, k).
    u = torch.arange(Wl, device=dev)
    tap = u[:, None] + s * (M - 1) - s * torch.arange(Q, device=dev)  # (Wl, Q)
    valid = (tap >= 0) & (tap < k)
    tap = tap.clamp(0, k - 1)
    flat_tap = (tap[:, None, None, :, None, None] * k + tap[None, :, None, None, :, None]) * k
    flat_tap = flat_tap + tap[None, None, :, None, None, :]  # (Wl, Wl, Wl, Q, Q, Q)
    ok = valid[:, None, None, :, None, None] & valid[None, :, None, None, :, None] \
        & valid[None, None, :, None, None, :]
    flat_tap = torch.where(ok, flat_tap, k ** 3).reshape(-1)  # k^3: a zero tap
    w = weight.permute(1, 2, 3, 4, 0).reshape(N, k ** 3, cout)
    w = torch.cat([w, w.new_zeros(N, 1, cout)], 1)  # (N, k^3 + 1, C_out)
    unrolled = w.index_select(1, flat_tap).view(N, Wl ** 3, Q ** 3 * cout)
    # The window values: each entry's weight at its offset from the window start.
    rel = t - t0[:, :, None]  # (B, N, P, 3), in [0, Wl)
    pos = ((rel[..., 0] * Wl + rel[..., 1]) * Wl + rel[..., 2]).reshape(B * N, P)
    vals = (torch.ones(B, N, P, dtype=weight.dtype, device=dev) if voxel_weight is None
            else voxel_weight.to(weight.dtype))
    window = vals.new_zeros(B * N, Wl ** 3).scatter_add(1, pos, vals.reshape(B * N, P))
    window = window.view(B, N, Wl ** 3).transpose(0, 1)  # (N, B, W^3)
    patch = torch.bmm(window, unrolled)  # (N, B, Q^3 C_out)
    # Scatter the patches into a buffer with a margin of M - 1 before the grid's outputs.
    o0 = torch.div(t0, s, rounding_mode="floor")  # (B, N, 3) window start / s = o0 + M - 1
    buf_size = [(g - 1 + k) // s + Q for g in grid]
    q = o0[..., None] + torch.arange(Q, device=dev)  # (B, N, 3, Q) buffer positions
    return _scatter_patches(patch.transpose(0, 1).reshape(-1, cout), q, buf_size, M, out_size,
                            bias)


class SparseOneHotConv3d(nn.Conv3d):
    """A Conv3d (cubic kernel) that also accepts sparse one-hot / splatted input volumes.

    ``forward(volume)`` is the ordinary dense convolution of ``(B, C_in, Gx, Gy, Gz)``;
    ``forward_sparse(voxel_index, grid, voxel_weight)`` computes the same convolution for the
    sparse volume described by :func:`sparse_conv3d` without building it. Both use the same
    ``weight`` ``(C_out, C_in, k, k, k)`` and ``bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias)

    def forward_sparse(self, voxel_index: torch.Tensor, grid: tuple[int, int, int],
                       voxel_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``voxel_index (B, C_in, [P,] 3)`` long -> ``(B, C_out, Ox, Oy, Oz)``."""
        return sparse_conv3d(voxel_index, self.weight, tuple(grid), voxel_weight, self.bias,
                             self.stride[0], self.padding[0])
