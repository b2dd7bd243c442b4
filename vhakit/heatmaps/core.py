"""Vertex heatmaps (paper Sec. 2.2): the cuboid voxel grid, three encoders and the 3D soft-argmax.

Conventions (the full list, each pinned by a test, is in ``docs/conventions.md``):

* Metres, in the body model's frame. A :class:`Cuboid` has a centre ``(B, 3)`` (the pelvis), an
  edge length ``side`` (paper: 2.0 m) and ``G = (Gx, Gy, Gz)`` voxels (paper: 64 each).
* Heatmaps are ``(B, N, Gx, Gy, Gz)``: the three grid axes index x, y, z in that order.
* Along an axis with ``G`` voxels, voxel ``i`` covers ``[c - s/2 + i s/G, c - s/2 + (i+1) s/G)``
  (half-open) and its centre is ``c - s/2 + (i + 1/2) s/G``.
* *Voxel coordinates* ``u = (p - c) / (s/G) + G/2`` are continuous: voxel ``i`` is
  ``i <= u < i + 1`` and its centre is ``u = i + 1/2``. A point is inside iff ``0 <= u < G``.
* ``outside="error"`` (default) rejects points outside the cuboid; ``"clamp"`` first moves them
  to the nearest point of the (closed) cuboid.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from vhakit._util import check_tensor
from vhakit.runtime import compiling as _compiling

__all__ = ["Cuboid", "voxel_index", "encode_onehot", "encode_gaussian", "encode_trilinear",
           "soft_argmax", "expected_coordinates", "SoftArgmax3d"]

PAPER_SIDE_M = 2.0  # cuboid edge length, paper Sec. 2.2
PAPER_RESOLUTION = 64  # voxels per axis, paper Sec. 2.2
# Voxels per soft-argmax chunk: 4 MB of float32 stays in a CPU's cache between the softmax and the
# marginal sums; GPUs prefer fewer, larger kernels (each chunk launches ~10 of them).
_CHUNK_VOXELS = {"cpu": 1 << 20, "default": 1 << 24}
_OUTSIDE = ("error", "clamp")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (0.0 < float(value) < float("inf")):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


@dataclass(frozen=True, eq=False)
class Cuboid:
    """An axis-aligned cube of ``side`` metres around ``center``, split into ``Gx x Gy x Gz`` voxels.

    Args:
        center: ``(B, 3)`` metres, one cuboid per batch item (the pelvis in the paper). For a
            single cuboid pass ``center[None]``.
        side: edge length in metres (paper: 2.0).
        resolution: voxels per axis, an int or ``(Gx, Gy, Gz)`` (paper: 64). Voxels are cubic
            only when all three are equal: the voxel size is ``side / G`` per axis.

    Example:
        >>> cub = Cuboid(torch.zeros(1, 3), side=2.0, resolution=4)
        >>> cub.axis_coords(0)
        tensor([[-0.7500, -0.2500,  0.2500,  0.7500]])
    """

    center: torch.Tensor
    side: float = PAPER_SIDE_M
    resolution: int | tuple[int, int, int] = PAPER_RESOLUTION

    def __post_init__(self) -> None:
        check_tensor(self.center, "center", ("B", 3), floating=True,
                     hint="; for a single cuboid pass center[None]")
        # (skipped under torch.compile, where it would break the graph and sync the GPU; the
        # trainer stops on a non-finite loss instead)
        if not _compiling() and not bool(torch.isfinite(self.center).all()):
            raise ValueError("center contains NaN or inf; check the pelvis estimate")
        object.__setattr__(self, "side", _positive(self.side, "side"))
        res = self.resolution
        res = (res,) * 3 if isinstance(res, numbers.Integral) and not isinstance(res, bool) else res
        if (not isinstance(res, (tuple, list)) or len(res) != 3
                or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1
                           for g in res)):
            raise ValueError("resolution must be a positive int or three positive ints "
                             f"(Gx, Gy, Gz), got {self.resolution!r}")
        object.__setattr__(self, "resolution", tuple(int(g) for g in res))

    @property
    def batch_size(self) -> int:
        return self.center.shape[0]

    @property
    def voxel_size(self) -> torch.Tensor:
        """``(3,)`` voxel edge lengths in metres, ``side / G`` per axis."""
        return torch.tensor([self.side / g for g in self.resolution],
                            dtype=self.center.dtype, device=self.center.device)

    @property
    def lower(self) -> torch.Tensor:
        """``(B, 3)`` the minimum corner ``c - s/2`` (inside: faces are half-open)."""
        return self.center - self.side / 2

    @property
    def upper(self) -> torch.Tensor:
        """``(B, 3)`` the maximum corner ``c + s/2`` (just outside: faces are half-open)."""
        return self.center + self.side / 2

    def axis_coords(self, axis: int) -> torch.Tensor:
        """``(B, G_axis)`` metres: voxel-centre coordinates ``c - s/2 + (i + 1/2) s/G`` along
        ``axis`` (0 = x, 1 = y, 2 = z)."""
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
        g = self.resolution[axis]
        # c + (i - (G-1)/2) s/G: the same value, but centred, so float32 keeps more digits.
        steps = torch.arange(g, dtype=self.center.dtype, device=self.center.device) - (g - 1) / 2
        return self.center[:, axis, None] + steps * (self.side / g)

    def voxel_centres(self) -> torch.Tensor:
        """``(B, Gx, Gy, Gz, 3)`` metres: the centre of every voxel."""
        B, (gx, gy, gz) = self.batch_size, self.resolution
        x = self.axis_coords(0)[:, :, None, None].expand(B, gx, gy, gz)
        y = self.axis_coords(1)[:, None, :, None].expand(B, gx, gy, gz)
        z = self.axis_coords(2)[:, None, None, :].expand(B, gx, gy, gz)
        return torch.stack([x, y, z], dim=-1)

    def voxel_coords(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` continuous voxel coordinates ``u`` of ``points (B, N, 3)`` metres
        (voxel ``i`` is ``i <= u < i+1``; its centre is ``u = i + 1/2``)."""
        self._check_points(points, "points")
        G = torch.tensor(self.resolution, dtype=points.dtype, device=points.device)
        center = self.center.to(points.dtype)[:, None]  # (B, 1, 3)
        return (points - center) * (G / self.side) + G / 2

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` bool: the point lies in a voxel (``c - s/2 <= p < c + s/2`` on every axis)."""
        u = self.voxel_coords(points)
        G = torch.tensor(self.resolution, dtype=u.dtype, device=u.device)
        return ((u >= 0) & (u < G)).all(-1)

    def to(self, device=None, dtype: torch.dtype | None = None) -> Cuboid:
        """A copy with the centre moved to ``device`` and/or cast to ``dtype``."""
        return Cuboid(self.center.to(device=device, dtype=dtype), self.side, self.resolution)

    def _check_points(self, points: torch.Tensor, name: str) -> None:
        check_tensor(points, name, ("B", "N", 3), floating=True)
        if points.shape[0] != self.batch_size:
            raise ValueError(f"{name} has batch size {points.shape[0]} but the cuboid has "
                             f"{self.batch_size}; build one cuboid per item")
        if points.device != self.center.device:
            raise ValueError(f"{name} is on {points.device} but the cuboid on "
                             f"{self.center.device}; use cuboid.to({name}.device)")


def _grid_coords(vertices: torch.Tensor, cuboid: Cuboid, outside: str) -> torch.Tensor:
    """Validated voxel coordinates ``u (B, N, 3)`` with the outside policy applied."""
    if outside not in _OUTSIDE:
        raise ValueError(f"outside must be one of {_OUTSIDE}, got {outside!r}")
    if not isinstance(cuboid, Cuboid):
        raise TypeError(f"cuboid must be a vhakit.heatmaps.Cuboid, got {type(cuboid).__name__}")
    cuboid._check_points(vertices, "vertices")
    u = cuboid.voxel_coords(vertices)
    if not _compiling() and not bool(torch.isfinite(vertices).all()):  # (see Cuboid)
        raise ValueError("vertices contain NaN or inf")
    G = torch.tensor(cuboid.resolution, dtype=u.dtype, device=u.device)
    if outside == "clamp":
        return torch.minimum(u.clamp(min=0), G)
    out = ((u < 0) | (u >= G)).any(-1)  # (B, N)
    if bool(out.any()):
        gap_m = ((-u).clamp(min=0) + (u - G).clamp(min=0)) * (cuboid.side / G)  # (B, N, 3)
        dist = gap_m.norm(dim=-1)
        worst = int(dist.argmax())
        b, n = divmod(worst, u.shape[1])
        raise ValueError(
            f"vertices: {int(out.sum())} of {out.numel()} vertices lie outside the cuboid "
            f"(side {cuboid.side} m); the worst, vertices[{b}, {n}] = "
            f"{[round(v, 4) for v in vertices[b, n].tolist()]}, is {float(dist[b, n]):.4f} m "
            "outside (faces at c + s/2 are outside). Enlarge the cuboid, check its centre, or "
            "pass outside='clamp' to move them onto the cuboid")
    return u


def voxel_index(vertices: torch.Tensor, cuboid: Cuboid, outside: str = "error") -> torch.Tensor:
    """Integer index of the voxel containing each vertex.

    Args:
        vertices: ``(B, N, 3)`` metres.
        cuboid: the grid; batch size ``B``.
        outside: ``"error"`` raises ValueError (with the count and the worst vertex) when a vertex
            is outside; ``"clamp"`` returns the nearest voxel instead.
    Returns:
        ``(B, N, 3)`` long, ``(ix, iy, iz)`` with ``0 <= i < G`` per axis.
    """
    u = _grid_coords(vertices, cuboid, outside)
    idx = u.detach().floor().long()
    top = torch.tensor(cuboid.resolution, device=idx.device) - 1
    # only u == G (clamped onto the upper face) needs the minimum; the clamp keeps NaN vertices
    # (unchecked under torch.compile) inside the grid
    return torch.minimum(idx.clamp(min=0), top)


def _flat_index(ix: torch.Tensor, iy: torch.Tensor, iz: torch.Tensor, res) -> torch.Tensor:
    return (ix * res[1] + iy) * res[2] + iz  # row-major over (Gx, Gy, Gz)


def encode_onehot(vertices: torch.Tensor, cuboid: Cuboid, outside: str = "error") -> torch.Tensor:
    """Paper Eq. 1: 1 in the voxel containing each vertex, 0 elsewhere.

    Args:
        vertices: ``(B, N, 3)`` metres. cuboid, outside: as in :func:`voxel_index`.
    Returns:
        ``(B, N, Gx, Gy, Gz)`` in the vertices' dtype, each heatmap summing to 1.
    """
    idx = voxel_index(vertices, cuboid, outside)  # (B, N, 3)
    flat = _flat_index(*idx.unbind(-1), cuboid.resolution)  # (B, N)
    B, N = flat.shape
    out = vertices.new_zeros(B, N, math.prod(cuboid.resolution))
    out.scatter_(-1, flat[..., None], 1.0)
    return out.view(B, N, *cuboid.resolution)


def encode_gaussian(vertices: torch.Tensor, cuboid: Cuboid, sigma_vox: float = 1.0,
                    outside: str = "error") -> torch.Tensor:
    """Isotropic Gaussian (in voxel units) around each vertex, sampled at the voxel centres and
    normalised to sum 1.

    ``exp(-|u_g - u|^2 / (2 sigma^2))`` is a product of three 1-D Gaussians, so it is built as an
    outer product of three normalised 1-D profiles (each a softmax, stable far from the vertex).

    Args:
        vertices: ``(B, N, 3)`` metres.
        sigma_vox: standard deviation in voxels along each axis (1 voxel = 31 mm for the paper's
            2 m / 64 grid). Reasonable values: 0.5-3.
        cuboid, outside: as in :func:`voxel_index`.
    Returns:
        ``(B, N, Gx, Gy, Gz)`` in the vertices' dtype; differentiable w.r.t. the vertices.
    """
    sigma = _positive(sigma_vox, "sigma_vox")
    u = _grid_coords(vertices, cuboid, outside)
    prof = []
    for axis, g in enumerate(cuboid.resolution):
        centres = torch.arange(g, dtype=u.dtype, device=u.device) + 0.5
        d = centres - u[..., axis, None]  # (B, N, G_axis) voxels
        prof.append(torch.softmax(-d * d / (2 * sigma * sigma), dim=-1))
    px, py, pz = prof
    return px[..., :, None, None] * py[..., None, :, None] * pz[..., None, None, :]


def encode_trilinear(vertices: torch.Tensor, cuboid: Cuboid, outside: str = "error") -> torch.Tensor:
    """Split each vertex's unit mass over the 8 surrounding voxel centres (trilinear weights).

    The expectation of the result is the vertex exactly (to rounding), so soft-argmax of
    ``log(heatmap)`` returns it. Exception: between the outermost voxel centre and the cuboid
    face (a half-voxel margin) there is no centre beyond the vertex to share mass with, so along
    that axis the vertex is moved to the outermost centre (error < half a voxel).

    Args: as :func:`encode_onehot`.
    Returns:
        ``(B, N, Gx, Gy, Gz)``, at most 8 non-zeros per heatmap, summing to 1; differentiable
        w.r.t. the vertices.
    """
    u = _grid_coords(vertices, cuboid, outside)
    G = torch.tensor(cuboid.resolution, dtype=u.dtype, device=u.device)
    t = torch.minimum((u - 0.5).clamp(min=0), G - 1)  # (B, N, 3) in "centre units"
    i0 = t.detach().floor().long()
    frac = t - i0  # weight of the upper neighbour
    i1 = torch.minimum(i0 + 1, G.long() - 1)  # at t == G-1, frac == 0: the duplicate gets weight 0
    idx = torch.stack([i0, i1], dim=-1)  # (B, N, 3, 2)
    w = torch.stack([1 - frac, frac], dim=-1)  # (B, N, 3, 2)
    flat = _flat_index(idx[..., 0, :, None, None], idx[..., 1, None, :, None],
                       idx[..., 2, None, None, :], cuboid.resolution)  # (B, N, 2, 2, 2)
    wts = w[..., 0, :, None, None] * w[..., 1, None, :, None] * w[..., 2, None, None, :]
    B, N = u.shape[:2]
    M = math.prod(cuboid.resolution)
    out = u.new_zeros(B, N, M).scatter_add(-1, flat.reshape(B, N, 8), wts.reshape(B, N, 8))
    return out.view(B, N, *cuboid.resolution)


def _centred_steps(res, dtype, device) -> list[torch.Tensor]:
    """Per axis ``i - (G-1)/2``: voxel-centre offsets from the cuboid centre, in voxels."""
    return [torch.arange(g, dtype=dtype, device=device) - (g - 1) / 2 for g in res]


def _marginal_mean(h: torch.Tensor, steps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised first moments ``(R, 3)`` and masses ``(R,)`` of ``h (R, Gx, Gy, Gz) >= 0``
    from its 1-D marginals (never a ``(R, G^3, 3)`` product)."""
    R, gx, gy, gz = h.shape
    flat = h.reshape(R, gx, gy * gz)
    mx = flat.sum(-1)  # (R, Gx)
    # Summing over the outer x axis as a (1, Gx) @ (Gx, Gy*Gz) product is faster than .sum(1).
    myz = torch.matmul(steps[0].new_ones(1, gx), flat).view(R, gy, gz)  # (R, Gy, Gz)
    mom = torch.stack([mx @ steps[0], myz.sum(-1) @ steps[1], myz.sum(-2) @ steps[2]], dim=-1)
    return mom, mx.sum(-1)


def _chunk_probs(x: torch.Tensor, beta: float, acc: torch.dtype) -> torch.Tensor:
    """``softmax(beta x)`` over each heatmap of ``x (c, Gx, Gy, Gz)``, in ``acc`` precision.

    One fused softmax kernel per chunk (max, exp, sum, divide in a single sweep) beats a chain of
    element-wise ops several times over on CPU.
    """
    if beta != 1.0:
        x = x.to(acc, copy=True).mul_(beta) if x.dtype != acc else x * beta
    return torch.softmax(x.reshape(x.shape[0], -1), dim=-1, dtype=acc).view(x.shape)


class _SoftArgmaxVox(torch.autograd.Function):
    """Expected voxel offset ``E_p[i - (G-1)/2]`` per axis, ``p = softmax(beta x)`` over a grid.

    Memory: works on ``rows`` heatmaps at a time and saves nothing but its input and output;
    backward recomputes ``p`` chunk by chunk. Gradient: ``d out_c / d x_g = beta p_g (X_gc -
    out_c)``, which is separable in (x, y, z), so backward needs no coordinate grid either.
    """

    @staticmethod
    def forward(ctx, x, beta, acc, rows):  # x: (R, Gx, Gy, Gz)
        steps = _centred_steps(x.shape[1:], acc, x.device)
        out = x.new_empty(x.shape[0], 3, dtype=acc)
        for r in range(0, x.shape[0], rows):
            mom, mass = _marginal_mean(_chunk_probs(x[r:r + rows], beta, acc), steps)
            out[r:r + rows] = mom / mass[:, None]  # mass is 1 up to rounding
        ctx.save_for_backward(x, out)
        ctx.beta, ctx.acc, ctx.rows = beta, acc, rows
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # grad_out: (R, 3)
        x, out = ctx.saved_tensors
        beta, acc, rows = ctx.beta, ctx.acc, ctx.rows
        sx, sy, sz = _centred_steps(x.shape[1:], acc, x.device)
        grad = torch.empty_like(x)
        same = grad.dtype == acc  # else compute in acc, then cast into grad
        with torch.autocast(x.device.type, enabled=False):
            for r in range(0, x.shape[0], rows):
                sl = slice(r, r + rows)
                p = _chunk_probs(x[sl], beta, acc)  # (c, Gx, Gy, Gz)
                g = grad_out[sl].to(acc) * beta  # (c, 3)
                k = (g * out[sl]).sum(-1)  # (c,)
                a_xy = ((sx * g[:, :1])[:, :, None, None] + (sy * g[:, 1:2])[:, None, :, None]
                        - k[:, None, None, None])  # (c, Gx, Gy, 1)
                a_z = (sz * g[:, 2:])[:, None, None, :]  # (c, 1, 1, Gz)
                # Build the factor in a cached chunk, then write the gradient slice once.
                factor = a_xy + a_z  # (c, Gx, Gy, Gz)
                if same:
                    torch.mul(p, factor, out=grad[sl])
                else:
                    grad[sl] = factor.mul_(p)
        return grad, None, None, None


def _fused_kernel(logits: torch.Tensor, fused: bool | None):
    """The compiled kernel module to use for ``logits``, or None for the pure-torch path."""
    if fused is False:
        return None
    eligible = logits.device.type == "cpu" and logits.dtype == torch.float32
    if fused is None and (not eligible or _compiling()):
        return None  # under torch.compile the traceable pure-torch path is fused by inductor
    if not eligible:
        raise ValueError(f"fused=True needs float32 CPU logits, got {logits.dtype} on "
                         f"{logits.device}; pass fused=None to choose automatically")
    from vhakit.heatmaps import kernels  # deferred: torch.utils.cpp_extension is slow to import

    module = kernels.soft_argmax_cpu()
    if module is None and fused:
        raise RuntimeError(f"fused=True but the compiled CPU soft-argmax kernel is unavailable "
                           f"({kernels.kernel_status()}); run `vhakit build-kernels --verbose`")
    return module


class _SoftArgmaxFused(torch.autograd.Function):
    """:class:`_SoftArgmaxVox` through the compiled kernel (float32 CPU): the forward reads each
    heatmap twice and writes ``(R, 3)`` offsets and ``(R,)`` log-sum-exps; the backward reads the
    logits once and writes the gradient once."""

    @staticmethod
    def forward(ctx, x, beta, kernel):  # x: (R, Gx, Gy, Gz) float32
        x = x.contiguous()
        out, lse = kernel.forward(x, beta)  # (R, 3) voxels, (R,)
        ctx.save_for_backward(x, out, lse)
        ctx.beta, ctx.kernel = beta, kernel
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # grad_out: (R, 3)
        x, out, lse = ctx.saved_tensors
        return ctx.kernel.backward(x, ctx.beta, out, lse, grad_out.contiguous()), None, None


def expected_coordinates(heatmaps: torch.Tensor, cuboid: Cuboid) -> torch.Tensor:
    """Centre of mass ``sum_g h_g X_g / sum_g h_g`` of non-negative heatmaps, in metres.

    Args:
        heatmaps: ``(B, N, Gx, Gy, Gz)``, e.g. probabilities or an encoder's output; an all-zero
            heatmap gives NaN.
    Returns:
        ``(B, N, 3)`` metres, in the heatmaps' dtype (autocast does not apply).
    """
    B, N = _check_logits(heatmaps, cuboid, "heatmaps")
    steps = _centred_steps(cuboid.resolution, heatmaps.dtype, heatmaps.device)
    with torch.autocast(heatmaps.device.type, enabled=False):  # keep the sums in full precision
        mom, mass = _marginal_mean(heatmaps.reshape(B * N, *cuboid.resolution), steps)
        vox = (mom / mass[:, None]).view(B, N, 3)
        return cuboid.center.to(vox.dtype)[:, None] + vox * cuboid.voxel_size.to(vox.dtype)


def _check_logits(x: torch.Tensor, cuboid: Cuboid, name: str) -> tuple[int, int]:
    if not isinstance(cuboid, Cuboid):
        raise TypeError(f"cuboid must be a vhakit.heatmaps.Cuboid, got {type(cuboid).__name__}")
    check_tensor(x, name, (cuboid.batch_size, "N", *cuboid.resolution), floating=True,
                 hint="; (B, N, Gx, Gy, Gz) must match the cuboid's batch size and resolution")
    if x.device != cuboid.center.device:
        raise ValueError(f"{name} is on {x.device} but the cuboid on {cuboid.center.device}; "
                         f"use cuboid.to({name}.device)")
    return x.shape[0], x.shape[1]


def soft_argmax(logits: torch.Tensor, cuboid: Cuboid, beta: float = 1.0,
                return_probs: bool = False, *, chunk_size: int | None = None,
                fused: bool | None = None):
    """3D soft-argmax: ``p = softmax(beta * logits)`` over all voxels, then ``sum_g p_g X_g``.

    Stable (the max is subtracted) and lean: the expectation uses the 1-D marginals of ``p``, and
    without ``return_probs`` at most ``chunk_size`` heatmaps are exponentiated at a time (backward
    recomputes them), so the extra memory is a chunk, not a copy of ``logits``.

    Args:
        logits: ``(B, N, Gx, Gy, Gz)`` unnormalised log-probabilities (any scale).
        cuboid: the grid; batch size ``B``, resolution ``(Gx, Gy, Gz)``.
        beta: inverse temperature > 0. Large beta -> the argmax voxel's centre; small -> the
            estimate drifts to the mean of all voxel centres (the cuboid centre). For a learnable
            temperature multiply the logits yourself and keep ``beta=1``.
        return_probs: also return ``p`` ``(B, N, Gx, Gy, Gz)`` (materialises it; differentiable).
        chunk_size: heatmaps per chunk; ``None`` picks ~1 M voxels on CPU, ~16 M elsewhere.
        fused: float32 CPU logits only: ``None`` (default) uses the compiled kernel of
            :mod:`vhakit.heatmaps.kernels` when it is available (same result to float32 rounding; forward
            ~2x faster at G = 64, no chunks, nothing per voxel stored); ``False`` always the
            pure-torch path; ``True`` requires the kernel (``RuntimeError`` if it cannot be
            built). ``chunk_size`` does not apply to the kernel.
    Returns:
        ``(B, N, 3)`` metres (and ``p`` if asked). Float32 under autocast (computed in float32 with
        autocast disabled), else the logits' dtype (float16/bfloat16 still accumulate in float32).
    """
    B, N = _check_logits(logits, cuboid, "logits")
    beta = _positive(beta, "beta")
    dev = logits.device.type
    amp = torch.is_autocast_enabled(dev)
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out_dtype = torch.float32 if amp else logits.dtype
    with torch.autocast(dev, enabled=False):
        if return_probs:
            probs = torch.softmax(logits.reshape(B, N, -1).to(acc) * beta, dim=-1)
            coords = expected_coordinates(probs.view(logits.shape), cuboid.to(dtype=acc))
            return coords.to(out_dtype), probs.view(logits.shape).to(out_dtype)
        kernel = _fused_kernel(logits, fused)
        if kernel is not None:
            vox = _SoftArgmaxFused.apply(logits.reshape(B * N, *cuboid.resolution), beta, kernel)
            coords = (cuboid.center.to(vox.dtype)[:, None]
                      + vox.view(B, N, 3) * cuboid.voxel_size.to(vox.dtype))
            return coords.to(out_dtype)
        M = math.prod(cuboid.resolution)
        if chunk_size is None:
            chunk_size = max(1, _CHUNK_VOXELS.get(dev, _CHUNK_VOXELS["default"]) // M)
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        vox = _SoftArgmaxVox.apply(logits.reshape(B * N, *cuboid.resolution), beta, acc, chunk_size)
        coords = cuboid.center.to(acc)[:, None] + vox.view(B, N, 3) * cuboid.voxel_size.to(acc)
    return coords.to(out_dtype)


class SoftArgmax3d(torch.nn.Module):
    """Module form of :func:`soft_argmax`; stores only ``beta`` (inverse temperature)."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = _positive(beta, "beta")

    def forward(self, logits: torch.Tensor, cuboid: Cuboid, return_probs: bool = False):
        return soft_argmax(logits, cuboid, self.beta, return_probs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
