"""Vertex Heatmap Autoencoder (paper Sec. 2.3, Eqs. 2-4).

``heatmaps H (B, N, G, G, G)`` of the N = 108 subsampled vertices (one-hot, Eq. 1) -> encoder ->
latent code ``z (B, C, g, g, g)`` -> decoder -> two logit volumes, the intermediate ``H'`` and the
final ``H`` (each ``(B, N, G, G, G)``) -> 3D soft-argmax -> vertices ``V'`` and ``V`` ``(B, N, 3)``
metres. Loss (Eqs. 2-4): ``L = mean_i |V'_i - V_i^gt|_1 + mean_i |V_i - V_i^gt|_1``.

Structure (sizes from :class:`vhakit.config.VHAConfig`)::

    encoder  stem: SparseOneHotConv3d(N -> c_stem, k, stride s) -> norm -> ReLU   at G/s
             level 0: Res3D x front_blocks                                         at G/s
             level l: Pool3D -> Res3D(c_{l-1} -> c_l) -> Res3D x (blocks-1)        at G/s/2^l
             to_latent: Conv3d 1x1 (linear code)                                  at g
    decoder  from_latent: Res3D(C -> c_L) ; per level: Res3D x blocks -> Upsample3D
             level 0: Res3D x blocks -> head_mid -> H'
                      Res3D x refine_blocks -> head -> H
    heads    [Upsample3D(c_0 -> head_channels) when s = 2] -> Conv3d 1x1 (-> N logit volumes
             at G), no bias (a per-vertex constant cancels in the softmax). As V2V's output layer,
             with thin full-resolution features: a transposed convolution straight from c_0 at
             G/2 to 108 volumes at G measured 2x slower on CPU (oneDNN's deconvolution). The
             108 logit maps are linear combinations of the head's channels, so these must not
             be too few (8 or 16 learned much slower than 32 on prior_pool).

Speed: the encoder never builds the one-hot volume; its first convolution scatters kernel
slices at the vertices' voxels (:func:`vhakit.models.blocks.sparse_conv3d`, exact). On CPUs the
heads (everything at full resolution) run a few samples at a time so that every tensor stays
below glibc's 32 MB mmap threshold: larger blocks are returned to the OS when freed and every
new one page-faults (measured 5-10x slower per pass on the 2-core machines). GroupNorm is per
sample, so this is exact; with BatchNorm the heads' upsampling sees the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vhakit._util import check_shape
from vhakit.config import VHAConfig
from vhakit.heatmaps.core import Cuboid, soft_argmax, voxel_index
from vhakit.models.blocks import Pool3D, Res3D, SparseOneHotConv3d, Upsample3D, make_norm

__all__ = ["VHA", "VHAEncoder", "VHADecoder", "VertexHead", "VHAOutput", "vha_loss",
           "count_parameters", "interpolate_latents", "perturb_latent", "sparse_heatmap_points"]

CPU_CHUNK_BYTES = 30 << 20  # largest logit tensor built at once on CPU (see module docstring)


@dataclass(frozen=True)
class VHAOutput:
    """``latent (B, C, g, g, g)``; ``vertices_mid``, ``vertices`` ``(B, N, 3)`` metres (V', V);
    ``logits_mid``, ``logits`` ``(B, N, G, G, G)`` (H', H), or None unless asked for."""

    latent: torch.Tensor
    vertices_mid: torch.Tensor
    vertices: torch.Tensor
    logits_mid: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class VHAEncoder(nn.Module):
    """Heatmaps -> latent code. Input: a dense volume ``(B, C_in, G, G, G)`` or, faster and
    exactly equivalent for one-hot heatmaps, the voxel indices ``(B, N, 3)`` (or ``(B, N, P, 3)``
    with ``voxel_weight (B, N, P)`` for splatted heatmaps). ``in_channels`` defaults to N; BCP
    builds the same architecture for its aggregated feature volumes and loads these weights."""

    def __init__(self, config: VHAConfig, in_channels: int | None = None) -> None:
        super().__init__()
        c, k, n = config.channels, config.stem_kernel, config.norm
        self.config = config
        self.in_channels = in_channels or config.n_vertices
        self.stem = SparseOneHotConv3d(self.in_channels, config.stem_channels, k,
                                       stride=config.stem_stride, padding=k // 2,
                                       bias=n == "none")
        self.stem_act = nn.Sequential(make_norm(n, config.stem_channels), nn.ReLU(inplace=True))
        layers = [Res3D(config.stem_channels if i == 0 else c[0], c[0], n)
                  for i in range(config.front_blocks)]
        if config.front_blocks == 0 and config.stem_channels != c[0]:
            layers.append(Res3D(config.stem_channels, c[0], n))
        for lvl in range(1, len(c)):
            layers += [Pool3D(), Res3D(c[lvl - 1], c[lvl], n)]
            layers += [Res3D(c[lvl], c[lvl], n) for _ in range(config.blocks - 1)]
        self.body = nn.Sequential(*layers)
        self.to_latent = nn.Conv3d(c[-1], config.latent_channels, 1)

    def forward(self, volume: torch.Tensor | None = None, *, voxel_index: torch.Tensor | None = None,
                voxel_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Exactly one of ``volume (B, C_in, G, G, G)`` or ``voxel_index (B, C_in, [P,] 3)``.
        Returns the latent code ``(B, latent_channels, g, g, g)``."""
        G = self.config.grid
        if (volume is None) == (voxel_index is None):
            raise ValueError("pass exactly one of volume (B, C_in, G, G, G) or voxel_index (B, N, 3)")
        if volume is not None:
            check_shape(volume, "volume", ("B", self.in_channels, G, G, G))
            x = self.stem(volume)
        else:
            x = self.stem.forward_sparse(voxel_index, (G, G, G), voxel_weight)
        return self.to_latent(self.body(self.stem_act(x)))


class VertexHead(nn.Module):
    """Features ``(B, c_0, G/s, G/s, G/s)`` -> logits ``(B, N, G, G, G)``: ``upsample`` (an
    :class:`Upsample3D` to ``head_channels`` when ``s = 2``, else nothing) then ``out``, a 1x1
    convolution without bias. The two parts are separate so the decoder can run ``out`` (whose
    output is the large tensor) a few samples at a time."""

    def __init__(self, config: VHAConfig) -> None:
        super().__init__()
        cin = config.channels[0]
        if config.stem_stride == 2:
            self.upsample = Upsample3D(cin, config.head_channels, config.norm)
            cin = config.head_channels
        else:
            self.upsample = nn.Identity()
        self.out = nn.Conv3d(cin, config.n_vertices, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.upsample(x))


class VHADecoder(nn.Module):
    """Latent code ``(B, C, g, g, g)`` -> features for the two heads -> logits / vertices."""

    def __init__(self, config: VHAConfig) -> None:
        super().__init__()
        c, n = config.channels, config.norm
        self.config = config
        layers: list[nn.Module] = [Res3D(config.latent_channels, c[-1], n)]
        for lvl in range(len(c) - 1, 0, -1):
            layers += [Res3D(c[lvl], c[lvl], n) for _ in range(config.blocks)]
            layers.append(Upsample3D(c[lvl], c[lvl - 1], n))
        layers += [Res3D(c[0], c[0], n) for _ in range(config.blocks)]
        self.body = nn.Sequential(*layers)
        self.refine = nn.Sequential(*[Res3D(c[0], c[0], n) for _ in range(config.refine_blocks)])
        self.head_mid = VertexHead(config)
        self.head = VertexHead(config)

    def features(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, c_0, G/s, G/s, G/s)`` features of the intermediate and the final head."""
        mid = self.body(latent)
        return mid, self.refine(mid)

    def forward(self, latent: torch.Tensor, cuboid: Cuboid, return_logits: bool = False):
        """Returns ``(vertices_mid, vertices, logits_mid, logits)``; logits are None unless
        ``return_logits``."""
        mid, final = self.features(latent)
        v_mid, h_mid = self._head(self.head_mid, mid, cuboid, return_logits)
        v, h = self._head(self.head, final, cuboid, return_logits)
        return v_mid, v, h_mid, h

    def _head(self, head: VertexHead, x: torch.Tensor, cuboid: Cuboid, return_logits: bool):
        cfg = self.config
        B = x.shape[0]
        per_sample = cfg.n_vertices * cfg.grid ** 3 * x.element_size()
        step = max(1, CPU_CHUNK_BYTES // per_sample) if x.device.type == "cpu" else B
        # Standard layout, so the logits come out as (B, N, G, G, G) contiguous (soft-argmax's
        # layout); split (not slicing) so backward concatenates the chunks' gradients once.
        x = x.contiguous()
        if cfg.norm == "batch":  # batch statistics must see the whole batch
            x = head.upsample(x)
        N, G = cfg.n_vertices, cfg.grid
        w = head.out.weight.view(1, N, -1)  # the 1x1 convolution as a batched matrix product:
        verts, logits = [], []  # 15-20% faster than conv3d on CPU, same numbers
        for xi, ci in zip(x.split(step), cuboid.center.split(step), strict=True):
            u = (xi if cfg.norm == "batch" else head.upsample(xi)).contiguous()  # (b, c, G, G, G)
            h = torch.bmm(w.expand(len(u), -1, -1), u.view(len(u), u.shape[1], -1))
            h = h.view(len(u), N, G, G, G)  # logits
            verts.append(soft_argmax(h, Cuboid(ci, cuboid.side, cuboid.resolution), beta=cfg.beta))
            if return_logits:
                logits.append(h)
        return torch.cat(verts), (torch.cat(logits) if return_logits else None)


class VHA(nn.Module):
    """The autoencoder. ``forward(vertices (B, N, 3) m, center (B, 3) m)`` encodes the one-hot
    heatmaps of ``vertices`` in the cuboid of side ``config.side_m`` around ``center`` (the
    pelvis) and decodes them: :class:`VHAOutput`.

    Example:
        >>> from vhakit.config import vha_configs
        >>> model = VHA(vha_configs("tiny").model)
        >>> out = model(torch.zeros(2, 108, 3), torch.zeros(2, 3))
        >>> out.vertices.shape, out.latent.shape
        (torch.Size([2, 108, 3]), torch.Size([2, 8, 4, 4, 4]))
    """

    def __init__(self, config: VHAConfig) -> None:
        super().__init__()
        if not isinstance(config, VHAConfig):
            raise TypeError(f"config must be a vhakit.config.VHAConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = VHAEncoder(config)
        self.decoder = VHADecoder(config)
        for m in self.modules():  # V2V's initialisation
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            for head in (self.decoder.head_mid, self.decoder.head):
                head.out.weight.mul_(config.head_init_scale)

    def cuboid(self, center: torch.Tensor) -> Cuboid:
        """The heatmap grid around ``center (B, 3)`` metres."""
        return Cuboid(center, self.config.side_m, self.config.grid)

    def voxel_index(self, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` long: the voxel of each vertex (paper Eq. 1's one-hot position)."""
        check_shape(vertices, "vertices", ("B", self.config.n_vertices, 3))
        return voxel_index(vertices, self.cuboid(center), outside=self.config.outside)

    def input_points(self, vertices: torch.Tensor, center: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder's input heatmaps in sparse form (``config.input_encoding``): voxel
        indices ``(B, N, P, 3)`` long and their values ``(B, N, P)`` (None for one-hot, P = 1);
        see :func:`sparse_heatmap_points`."""
        check_shape(vertices, "vertices", ("B", self.config.n_vertices, 3))
        return sparse_heatmap_points(vertices, self.cuboid(center), self.config.input_encoding,
                                     self.config.outside)

    def input_heatmaps(self, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """The encoder's input as dense heatmaps ``(B, N, G, G, G)`` (for figures and tests;
        training never builds them)."""
        idx, w = self.input_points(vertices, center)
        B, N, P, _ = idx.shape
        G = self.config.grid
        flat = ((idx[..., 0] * G + idx[..., 1]) * G + idx[..., 2]).view(B, N, P)
        w = torch.ones(B, N, P, dtype=vertices.dtype, device=vertices.device) if w is None else w
        out = vertices.new_zeros(B, N, G ** 3).scatter_add(-1, flat, w.to(vertices.dtype))
        return out.view(B, N, G, G, G)

    def encode(self, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """Latent code ``(B, C, g, g, g)`` of the input heatmaps of ``vertices (B, N, 3)``
        (one-hot as paper Eq. 1 unless ``config.input_encoding`` says otherwise)."""
        idx, w = self.input_points(vertices, center)
        return self.encoder(voxel_index=idx, voxel_weight=w)

    def decode(self, latent: torch.Tensor, center: torch.Tensor,
               return_logits: bool = True) -> VHAOutput:
        """Decode ``latent (B, C, g, g, g)`` into the cuboid around ``center (B, 3)``."""
        check_shape(latent, "latent", ("B", *self.config.latent_shape))
        v_mid, v, h_mid, h = self.decoder(latent, self.cuboid(center), return_logits)
        return VHAOutput(latent, v_mid, v, h_mid, h)

    def forward(self, vertices: torch.Tensor, center: torch.Tensor,
                return_logits: bool = True) -> VHAOutput:
        return self.decode(self.encode(vertices, center), center, return_logits)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the encoder, the decoder and in total."""
        enc, dec = count_parameters(self.encoder), count_parameters(self.decoder)
        return {"encoder": enc, "decoder": dec, "total": enc + dec}

    def summary(self) -> str:
        """One paragraph: grids, latent size and parameter counts."""
        c, p = self.config, self.parameter_counts()
        g0 = c.grid // c.stem_stride
        return (f"VHA: {c.n_vertices} heatmaps of {c.grid}^3 voxels ({1000 * c.side_m / c.grid:.1f} mm)"
                f" -> stem {c.stem_channels}ch @ {g0}^3 -> channels {list(c.channels)} -> latent "
                f"{c.latent_shape[0]}x{c.latent_grid}^3 ({c.latent_channels * c.latent_grid ** 3} "
                f"numbers) -> two heads of {c.n_vertices}x{c.grid}^3 logits; parameters: encoder "
                f"{p['encoder']:,}, decoder {p['decoder']:,}, total {p['total']:,} ({c.norm} norm)")


def sparse_heatmap_points(vertices: torch.Tensor, cuboid: Cuboid, encoding: str = "onehot",
                          outside: str = "clamp") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Locally supported heatmaps of ``vertices (B, N, 3)`` as voxel indices and values.

    * ``"onehot"`` (paper Eq. 1): the containing voxel; ``(B, N, 1, 3)`` and None (value 1).
    * ``"trilinear"``: the 8 voxel centres around the vertex with trilinear weights, exactly the
      non-zeros of :func:`vhakit.heatmaps.encode_trilinear`; ``(B, N, 8, 3)``, ``(B, N, 8)``.
    * ``"gaussian"``: the 3^3 voxels around the containing one (shifted inwards at the faces),
      weights ``exp(-d^2 / 2)`` with ``d`` the distance in voxels from the vertex to each voxel
      centre, normalised to sum 1; ``(B, N, 27, 3)``, ``(B, N, 27)``.

    The weights depend on the sub-voxel position, so the last two keep what one-hot drops.
    """
    if encoding not in ("onehot", "trilinear", "gaussian"):
        raise ValueError(f"encoding must be 'onehot', 'trilinear' or 'gaussian', got {encoding!r}")
    idx = voxel_index(vertices, cuboid, outside=outside)  # (B, N, 3); validates, raises if asked
    if encoding == "onehot":
        return idx[:, :, None], None
    G = torch.tensor(cuboid.resolution, device=idx.device)  # (3,)
    u = torch.minimum(cuboid.voxel_coords(vertices).detach().clamp(min=0), G.to(vertices.dtype))
    if encoding == "trilinear":  # as vhakit.heatmaps.encode_trilinear
        t = torch.minimum((u - 0.5).clamp(min=0), (G - 1).to(u.dtype))  # centre units
        i0 = t.floor().long()
        frac = t - i0  # weight of the upper neighbour
        axis_idx = torch.stack([i0, torch.minimum(i0 + 1, G - 1)], -1)  # (B, N, 3, 2)
        axis_w = torch.stack([1 - frac, frac], -1)  # (B, N, 3, 2)
    else:  # gaussian on 3 voxels per axis
        lo = torch.minimum(idx.clamp(min=1), G - 2) - 1  # (B, N, 3) first of the 3 voxels
        axis_idx = lo[..., None] + torch.arange(3, device=idx.device)  # (B, N, 3, 3)
        d = axis_idx.to(u.dtype) + 0.5 - u[..., None]  # voxels from the vertex
        axis_w = torch.softmax(-0.5 * d * d, dim=-1)  # separable: the 3D weights sum to 1
    B, N, _, K = axis_idx.shape
    ix, iy, iz = axis_idx.unbind(2)  # each (B, N, K)
    index = torch.stack(torch.broadcast_tensors(ix[..., :, None, None], iy[..., None, :, None],
                                                iz[..., None, None, :]), -1)  # (B, N, K, K, K, 3)
    wx, wy, wz = axis_w.unbind(2)
    weight = wx[..., :, None, None] * wy[..., None, :, None] * wz[..., None, None, :]
    return index.reshape(B, N, K ** 3, 3), weight.reshape(B, N, K ** 3)


def vha_loss(out: VHAOutput, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Paper Eqs. 2-4: ``L = L' + L``, each the mean over vertices (and batch) of the L1 norm of
    the row ``V_i - V_i^gt`` in metres (= 3x the mean absolute coordinate error).

    Args:
        out: the model output; target: ``(B, N, 3)`` metres.
    Returns:
        ``(loss, {"loss_mid": L', "loss_final": L})`` scalars.
    """
    check_shape(target, "target", tuple(out.vertices.shape))
    l_mid = (out.vertices_mid - target).abs().sum(-1).mean()
    l_fin = (out.vertices - target).abs().sum(-1).mean()
    return l_mid + l_fin, {"loss_mid": l_mid.detach(), "loss_final": l_fin.detach()}


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Linear interpolation between two codes ``(C, g, g, g)``: ``(steps, C, g, g, g)`` from z0
    to z1 inclusive."""
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).view(-1, *[1] * z0.dim())
    return (1 - t) * z0 + t * z1


def perturb_latent(z: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z + sigma * std(z) * noise``: Gaussian noise scaled to the code's own spread."""
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device="cpu").to(z.device)
    return z + sigma * z.detach().std() * noise
