"""LMT-style baseline: multi-view images -> vertex heatmaps directly (no prior).

The same front end as BCP (:class:`~vhakit.models.bcp.FeatureVolume`: visibility module, 2D
backbone, unprojection, aggregation), then a V2V-style 3D encoder-decoder (method notes 1.5:
Res3D blocks, max-pool down, transposed-convolution up, skips *added*) that regresses the N = 108
vertex heatmaps, and the 3D soft-argmax. Trained with the vertex L1 loss only (plus the visibility
BCE): the body prior that the VHA decoder gives BCP is absent.

Structure (sizes from :class:`vhakit.config.BaselineConfig`)::

    stem     Conv3d(C -> c_stem, k, stride s) -> norm -> ReLU                      at G/s
    down     level 0: Res3D(c_stem -> c_0) ; level l: Pool3D -> Res3D(c_{l-1} -> c_l)
    up       level l -> l-1: Res3D(c_l) -> Upsample3D(c_l -> c_{l-1}) ; + skip_{l-1}
    head     [Upsample3D(c_0 -> head_channels) when s = 2] -> Conv3d 1x1 -> N logits at G
             -> soft-argmax (beta)

With ``stem_stride = 2`` (tiny/teaching) every 3D convolution but the head's runs at G/2 and below.
"""
from __future__ import annotations

import torch
from torch import nn

from vhakit.config import BaselineConfig
from vhakit.heatmaps.core import Cuboid, soft_argmax
from vhakit.models.bcp import FeatureVolume, MultiViewOutput, channels_last_3d
from vhakit.models.blocks import Pool3D, Res3D, Upsample3D, make_norm
from vhakit.models.vha import count_parameters

__all__ = ["V2VNet", "LMTBaseline"]

CPU_CHUNK_BYTES = 30 << 20  # largest logit tensor built at once on CPU (see vhakit.models.vha)


class V2VNet(nn.Module):
    """``(B, C_in, G, G, G)`` -> features ``(B, c_0, G/s, G/s, G/s)`` (encoder-decoder with
    additive skips)."""

    def __init__(self, in_channels: int, config: BaselineConfig) -> None:
        super().__init__()
        c, n, k = config.channels, config.norm, config.stem_kernel
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, config.stem_channels, k, stride=config.stem_stride,
                      padding=k // 2, bias=n == "none"),
            make_norm(n, config.stem_channels), nn.ReLU(inplace=True))
        self.down = nn.ModuleList([Res3D(config.stem_channels, c[0], n)])
        self.down.extend(nn.Sequential(Pool3D(), Res3D(c[lvl - 1], c[lvl], n))
                         for lvl in range(1, len(c)))
        self.up = nn.ModuleList(nn.Sequential(Res3D(c[lvl], c[lvl], n), Upsample3D(c[lvl], c[lvl - 1], n))
                                for lvl in range(len(c) - 1, 0, -1))
        self.out = Res3D(c[0], c[0], n)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        x = self.stem(volume)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = block(x) + skip
        return self.out(x)


class LMTBaseline(nn.Module):
    """The LMT-style baseline. ``forward(images, K, R, t, center, dist=None)`` ->
    :class:`~vhakit.models.bcp.MultiViewOutput` (``latent`` is None)."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        if not isinstance(config, BaselineConfig):
            raise TypeError(f"config must be a vhakit.config.BaselineConfig, got {type(config).__name__}")
        self.config = config
        self.front = FeatureVolume(config)
        self.volume_net = V2VNet(config.feature_channels, config)
        cin = config.channels[0]
        if config.stem_stride == 2:
            self.upsample = Upsample3D(cin, config.head_channels, config.norm)
            cin = config.head_channels
        else:
            self.upsample = nn.Identity()
        self.head = nn.Conv3d(cin, config.n_vertices, 1, bias=False)
        for m in self.modules():  # V2V's initialisation
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.head.weight.mul_(config.head_init_scale)
        channels_last_3d(self)

    def cuboid(self, center: torch.Tensor) -> Cuboid:
        return Cuboid(center, self.config.side_m, self.config.grid)

    def _heatmaps(self, x: torch.Tensor, cuboid: Cuboid, return_logits: bool):
        """Head + soft-argmax, a few samples at a time on CPU (see vhakit.models.vha)."""
        cfg = self.config
        N, G = cfg.n_vertices, cfg.grid
        step = max(1, CPU_CHUNK_BYTES // (N * G ** 3 * x.element_size())) if x.device.type == "cpu" else len(x)
        if cfg.norm == "batch":  # batch statistics must see the whole batch
            x = self.upsample(x)
        verts, logits = [], []
        for xi, ci in zip(x.split(step), cuboid.center.split(step), strict=True):
            u = xi if cfg.norm == "batch" else self.upsample(xi)
            h = self.head(u).contiguous()  # (b, N, G, G, G)
            verts.append(soft_argmax(h, Cuboid(ci, cuboid.side, cuboid.resolution), beta=cfg.beta))
            if return_logits:
                logits.append(h)
        return torch.cat(verts), (torch.cat(logits) if return_logits else None)

    def forward(self, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                center: torch.Tensor, dist: torch.Tensor | None = None, *,
                return_logits: bool = False) -> MultiViewOutput:
        """Inputs as :meth:`vhakit.models.bcp.BodyCodePredictor.forward`."""
        cuboid = self.cuboid(center)
        volume, vis_logits = self.front(images, K, R, t, dist, cuboid)
        verts, logits = self._heatmaps(self.volume_net(volume), cuboid, return_logits)
        return MultiViewOutput(verts, vis_logits, None, logits)

    def parameter_counts(self) -> dict[str, int]:
        f = self.front
        return {"visibility": count_parameters(f.visibility) + count_parameters(f.view_weight),
                "backbone": count_parameters(f.backbone),
                "volume_net": (count_parameters(self.volume_net) + count_parameters(self.upsample)
                               + count_parameters(self.head)),
                "trainable": count_parameters(self)}
