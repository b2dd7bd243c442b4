"""Body Code Predictor (paper Sec. 2.4, Eqs. 5-7) and the multi-view front end it shares with
the LMT-style baseline.

Data flow for a batch of ``B`` samples of ``V`` calibrated views::

    images (B, V, 3, H, W) --VisibilityNet--> visibility logits (B, V, N)
                            --ResNetBackbone--> features (B, V, C, H/4, W/4)
    features --unproject at the voxel centres of the cuboid (G^3, around the pelvis), feature
             pixel k centred on image pixel 4k (the backbone's pixel_centre)-->
             (B, V, C, G^3) --aggregate over views, weighted by w(visibility)--> (B, C, G, G, G)
    volume --lift 1x1x1 (C -> N)--> VHA encoder (the trained VHA's architecture and weights)
           --> code z_hat (B, C_z, g, g, g) --frozen VHA decoder + soft-argmax--> V_hat (B, N, 3)

*Visibility* (the kit's reconstruction of LMT's visibility module, whose design is not public;
method notes 8 row 6): :class:`~vhakit.models.backbone.VisibilityNet` predicts per view and per
vertex the probability ``p (B, V, N)`` that the vertex is visible, supervised with the rendered
visibility (BCE). A linear layer and a sigmoid turn ``p`` into per-view, per-channel weights
``w (B, V, C)`` in (0, 1) that weight the views in the aggregation (learnable-triangulation's
``conf`` weights, here computed from the visibility). Views that see few of the vertices a
channel responds to count less.

*The 3D encoder* is exactly :class:`~vhakit.models.vha.VHAEncoder` (N = 108 input channels, the
heatmap channels), so :meth:`BodyCodePredictor.init_from_vha` copies every weight of the trained
VHA encoder (paper Sec. 3.1: "initialized with the weights of the pretrained VHA encoder"). The
C-channel feature volume reaches it through ``lift``, a learned 1x1x1 convolution to N channels.
Both ``lift`` and the encoder's first convolution are linear, so the kit applies their
composition, a C-channel convolution with weight ``W_stem . L`` (exact; N / C times cheaper than
building the 108-channel volume: the feature volume is dense, unlike the one-hot heatmaps).

The VHA decoder is frozen (and kept in eval mode); only its final head is evaluated. The
target code ``z = VHAEncoder(H_gt)`` of Eq. 6 comes from a frozen copy of the VHA encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vhakit.config import BCPConfig, MultiViewConfig, VHAConfig
from vhakit.heatmaps.core import Cuboid, voxel_index
from vhakit.models.backbone import ResNetBackbone, VisibilityNet
from vhakit.models.unproject import unproject_and_aggregate
from vhakit.models.vha import VHADecoder, VHAEncoder, count_parameters

__all__ = ["MultiViewOutput", "FeatureVolume", "BodyCodePredictor", "check_views",
           "channels_last_3d"]


@dataclass(frozen=True)
class MultiViewOutput:
    """The output of BCP and the baseline.

    ``vertices (B, N, 3)`` metres; ``visibility_logits (B, V, N)``; ``latent (B, C_z, g, g, g)``
    (BCP's predicted code, None for the baseline); ``logits (B, N, G, G, G)`` or None unless
    asked for."""

    vertices: torch.Tensor
    visibility_logits: torch.Tensor
    latent: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def channels_last_3d(module: nn.Module) -> nn.Module:
    """Put the weights of every 3D (transposed) convolution in channels-last-3d memory format
    (faster on CPUs; 2D layers keep theirs). ``vhakit.training.trainer.fit``'s ``channels_last`` option
    converts the whole model and fails on 2D weights, so the BCP and baseline presets switch it
    off and the models call this themselves. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            m.to(memory_format=torch.channels_last_3d)
    return module


def check_views(images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                center: torch.Tensor) -> tuple[int, int, int, int]:
    """Validate a multi-view batch; returns ``(B, V, H, W)``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 5 or images.shape[2] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (B, V, 3, H, W) in [0, 1], got {shape}")
    B, V, _, H, W = images.shape
    for name, x, tail in (("K", K, (3, 3)), ("R", R, (3, 3)), ("t", t, (3,))):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (B, V, *tail):
            raise ValueError(f"{name} must have shape {(B, V, *tail)} to match images, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(center, torch.Tensor) or tuple(center.shape) != (B, 3):
        raise ValueError(f"center must have shape ({B}, 3) metres (the pelvis), got "
                         f"{tuple(center.shape) if isinstance(center, torch.Tensor) else center}")
    return B, V, H, W


class FeatureVolume(nn.Module):
    """Visibility module + 2D backbone + unprojection + aggregation (shared by BCP and the
    baseline). ``forward(images, K, R, t, dist, cuboid) -> (volume (B, C, G, G, G),
    visibility_logits (B, V, N))``."""

    def __init__(self, config: MultiViewConfig) -> None:
        super().__init__()
        self.config = config
        self.visibility = VisibilityNet(config.n_vertices, config.visibility_channels, config.norm2d)
        self.backbone = ResNetBackbone(config.feature_channels, config.backbone_channels,
                                       config.norm2d, config.backbone)
        self.view_weight = nn.Linear(config.n_vertices, config.feature_channels)

    def forward(self, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                dist: torch.Tensor | None, cuboid: Cuboid) -> tuple[torch.Tensor, torch.Tensor]:
        B, V, H, W = check_views(images, K, R, t, cuboid.center)
        flat = images.reshape(B * V, 3, H, W)
        vis_logits = self.visibility(flat).view(B, V, -1)  # (B, V, N)
        weights = torch.sigmoid(self.view_weight(torch.sigmoid(vis_logits)))  # (B, V, C)
        feats = self.backbone(flat)  # (B*V, C, H/4, W/4)
        feats = feats.reshape(B, V, *feats.shape[1:])  # (B, V, C, h, w)
        points = cuboid.voxel_centres().flatten(1, 3)  # (B, G^3, 3)
        vol = unproject_and_aggregate(feats, points, K, R, t, dist, (W, H), weights,
                                      self.config.aggregation,
                                      self.backbone.pixel_centre)  # (B, C, G^3)
        vol = vol.view(B, vol.shape[1], *cuboid.resolution)  # (B, C, Gx, Gy, Gz)
        return vol.contiguous(memory_format=torch.channels_last_3d), vis_logits


class BodyCodePredictor(nn.Module):
    """BCP: multi-view images -> latent code of the VHA -> vertices (see the module docstring).

    Args:
        config: the front end (:class:`~vhakit.config.BCPConfig`).
        vha_config: the trained VHA's config (grid, cuboid, encoder and decoder structure).

    Build it with fresh weights, then :meth:`init_from_vha` (the decoder and the target encoder
    always come from the VHA; the predicting encoder only when ``encoder=True``).
    """

    def __init__(self, config: BCPConfig, vha_config: VHAConfig) -> None:
        super().__init__()
        if not isinstance(config, BCPConfig):
            raise TypeError(f"config must be a vhakit.config.BCPConfig, got {type(config).__name__}")
        if not isinstance(vha_config, VHAConfig):
            raise TypeError(f"vha_config must be a vhakit.config.VHAConfig, got "
                            f"{type(vha_config).__name__}")
        if config.n_vertices != vha_config.n_vertices:
            raise ValueError(f"config.n_vertices={config.n_vertices} differs from the VHA's "
                             f"{vha_config.n_vertices}")
        self.config, self.vha_config = config, vha_config
        self.front = FeatureVolume(config)
        self.lift = nn.Conv3d(config.feature_channels, vha_config.n_vertices, 1, bias=False)
        self.encoder = VHAEncoder(vha_config)
        self.target_encoder = VHAEncoder(vha_config)
        self.decoder = VHADecoder(vha_config)
        for m in self.encoder.modules():  # V2V's initialisation, as the VHA
            if isinstance(m, nn.Conv3d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for p in [*self.target_encoder.parameters(), *self.decoder.parameters()]:
            p.requires_grad_(False)
        channels_last_3d(self)

    # ------------------------------------------------------------------ weights from the VHA
    @torch.no_grad()
    def init_from_vha(self, vha: nn.Module, encoder: bool = True) -> BodyCodePredictor:
        """Copy the trained VHA's decoder and encoder (as the frozen code target, and into the
        predicting encoder when ``encoder``). Returns ``self``."""
        cfg = getattr(vha, "config", None)
        if cfg != self.vha_config:
            raise ValueError(f"the VHA's config {cfg} differs from this BCP's vha_config "
                             f"{self.vha_config}; build the BCP with vha.config")
        self.decoder.load_state_dict(vha.decoder.state_dict())
        self.target_encoder.load_state_dict(vha.encoder.state_dict())
        if encoder:
            self.encoder.load_state_dict(vha.encoder.state_dict())
        return self

    def train(self, mode: bool = True) -> BodyCodePredictor:
        super().train(mode)
        self.decoder.eval()  # frozen parts: BatchNorm keeps its running statistics
        self.target_encoder.eval()
        return self

    # ---------------------------------------------------------------------------- forward
    def cuboid(self, center: torch.Tensor) -> Cuboid:
        return Cuboid(center, self.vha_config.side_m, self.vha_config.grid)

    def encode_volume(self, volume: torch.Tensor) -> torch.Tensor:
        """Feature volume ``(B, C, G, G, G)`` -> code ``(B, C_z, g, g, g)``: the VHA encoder on
        ``lift(volume)``, with the lift folded into the encoder's first convolution (exact)."""
        stem = self.encoder.stem
        w = torch.einsum("onxyz,nc->ocxyz", stem.weight, self.lift.weight[:, :, 0, 0, 0])
        x = F.conv3d(volume, w, stem.bias, stem.stride, stem.padding)  # (B, c_stem, G/s, ...)
        return self.encoder.to_latent(self.encoder.body(self.encoder.stem_act(x)))

    def decode(self, latent: torch.Tensor, center: torch.Tensor,
               return_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frozen VHA decoder (final head) + soft-argmax: ``(vertices (B, N, 3), logits)``."""
        _, final = self.decoder.features(latent)
        # The intermediate head H' is not needed; VHADecoder._head is its memory-lean head.
        return self.decoder._head(self.decoder.head, final, self.cuboid(center), return_logits)

    @torch.no_grad()
    def target_code(self, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """``z = VHAEncoder(H_gt)`` (Eq. 6's target): the frozen VHA encoder on the heatmaps of
        ``vertices (B, N, 3)`` in the cuboid around ``center (B, 3)``, encoded as the VHA was
        trained (one-hot, paper Eq. 1, unless its config says otherwise)."""
        cuboid = self.cuboid(center)
        encoding = getattr(self.vha_config, "input_encoding", "onehot")
        if encoding == "onehot":  # paper Eq. 1
            return self.target_encoder(voxel_index=voxel_index(vertices, cuboid,
                                                               outside=self.vha_config.outside))
        from vhakit.models.vha import sparse_heatmap_points  # the VHA's other input encodings

        idx, w = sparse_heatmap_points(vertices, cuboid, encoding, self.vha_config.outside)
        return self.target_encoder(voxel_index=idx, voxel_weight=w)

    def forward(self, images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                center: torch.Tensor, dist: torch.Tensor | None = None, *,
                decode: bool = True, return_logits: bool = False) -> MultiViewOutput:
        """``images (B, V, 3, H, W)`` in [0, 1], cameras ``K, R (B, V, 3, 3)``, ``t (B, V, 3)``,
        ``dist (B, V, 5)`` or None, cuboid centre ``center (B, 3)`` metres.
        With ``decode=False`` the vertices are not computed (a NaN-filled tensor is returned)."""
        cuboid = self.cuboid(center)
        volume, vis_logits = self.front(images, K, R, t, dist, cuboid)
        latent = self.encode_volume(volume)
        if decode:
            verts, logits = self.decode(latent, center, return_logits)
        else:
            verts, logits = latent.new_full((len(latent), self.vha_config.n_vertices, 3), float("nan")), None
        return MultiViewOutput(verts, vis_logits, latent, logits)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part and the frozen VHA parts."""
        f = self.front
        return {"visibility": count_parameters(f.visibility) + count_parameters(f.view_weight),
                "backbone": count_parameters(f.backbone),
                "encoder": count_parameters(self.encoder) + count_parameters(self.lift),
                "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "frozen": sum(p.numel() for p in self.parameters() if not p.requires_grad)}
