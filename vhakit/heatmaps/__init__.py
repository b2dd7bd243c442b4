"""Vertex heatmaps (paper Sec. 2.2, Eq. 1): the :class:`Cuboid`, one-hot / Gaussian /
trilinear encoders and the separable 3D soft-argmax, plus the optional fused CPU
kernel (``kernels.py``, ``csrc/``) with a pure-torch fallback.
"""
from __future__ import annotations

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

__all__ = ["Cuboid", "voxel_index", "encode_onehot", "encode_gaussian", "encode_trilinear",
           "soft_argmax", "expected_coordinates", "SoftArgmax3d"]
