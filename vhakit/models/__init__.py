"""Neural networks: V2V-style 3D blocks, the vertex heatmap autoencoder (VHA) and its latent-code
tools (``latent``), the 2D backbone and unprojection, the Body Code Predictor (``bcp``) and the
LMT-style baseline (``baseline``). The VHA and its blocks are re-exported here."""
from __future__ import annotations

from vhakit.models.blocks import (
    Basic3D,
    Pool3D,
    Res3D,
    SparseOneHotConv3d,
    Upsample3D,
    sparse_conv3d,
)
from vhakit.models.vha import (
    VHA,
    VertexHead,
    VHADecoder,
    VHAEncoder,
    VHAOutput,
    count_parameters,
    interpolate_latents,
    perturb_latent,
    vha_loss,
)

__all__ = ["Basic3D", "Res3D", "Pool3D", "Upsample3D", "SparseOneHotConv3d", "sparse_conv3d",
           "VHA", "VHAEncoder", "VHADecoder", "VertexHead", "VHAOutput", "vha_loss",
           "count_parameters", "interpolate_latents", "perturb_latent"]
