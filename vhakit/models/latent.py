"""Latent-space tools for a trained VHA: encode bodies to codes, decode codes to bodies,
interpolate between two bodies, perturb a code, and figures of decoded bodies.

A body is its 108 subsampled vertices ``(N, 3)`` metres plus the centre of its cuboid (the pelvis)
``(3,)``; the code ``z (C, g, g, g)`` describes the body *relative to that centre* (the cuboid
moves with the pelvis). Functions take batches ``(B, N, 3)`` / ``(B, 3)`` and also accept single
bodies ``(N, 3)`` / ``(3,)`` (the batch axis is then added and removed for you).

Decoding is the decoder's final head ``H`` followed by the 3D soft-argmax (paper Eqs. 3-4), so
``decode(model, encode(model, v, c), c)`` is exactly ``model(v, c).vertices``.

Example:
    >>> from vhakit.config import vha_configs
    >>> from vhakit.models.vha import VHA
    >>> model = VHA(vha_configs("tiny").model).eval()
    >>> v, c = torch.zeros(108, 3), torch.zeros(3)
    >>> encode(model, v, c).shape
    torch.Size([8, 4, 4, 4])
    >>> interpolate(model, v, c, v, c, steps=3).vertices.shape
    torch.Size([3, 108, 3])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vhakit.heatmaps.core import expected_coordinates
from vhakit.models.vha import VHA, interpolate_latents, perturb_latent

__all__ = ["encode", "decode", "reconstruct", "Interpolation", "interpolate", "perturb",
           "input_position_error_mm", "heatmap_pair"]


def _batch(vertices: torch.Tensor, center: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate and add a batch axis to single bodies; returns (vertices, center, was_single)."""
    if not torch.is_tensor(vertices) or not torch.is_tensor(center):
        raise TypeError("vertices and center must be torch tensors (vertices (B, N, 3) or (N, 3) "
                        "metres, center (B, 3) or (3,) metres)")
    single = vertices.dim() == 2
    v = vertices[None] if single else vertices
    c = center[None] if center.dim() == 1 else center
    if v.dim() != 3 or v.shape[1:] != (n, 3):
        raise ValueError(f"vertices must have shape (B, {n}, 3) or ({n}, 3), got "
                         f"{tuple(vertices.shape)}")
    if c.shape != (v.shape[0], 3):
        raise ValueError(f"center must have shape ({v.shape[0]}, 3) (one per body) or (3,), got "
                         f"{tuple(center.shape)}")
    return v, c.to(v.dtype), single


def _model_device(model: VHA) -> torch.device:
    if not isinstance(model, VHA):
        raise TypeError(f"model must be a vhakit.models.vha.VHA, got {type(model).__name__}")
    return next(model.parameters()).device


@torch.no_grad()
def encode(model: VHA, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Code of the bodies ``vertices (B, N, 3)`` around ``center (B, 3)`` (metres):
    ``(B, C, g, g, g)``, or ``(C, g, g, g)`` for a single body ``(N, 3)``."""
    dev = _model_device(model)
    v, c, single = _batch(vertices, center, model.config.n_vertices)
    z = model.encode(v.to(dev), c.to(dev))
    return z[0] if single else z


@torch.no_grad()
def decode(model: VHA, latent: torch.Tensor, center: torch.Tensor,
           intermediate: bool = False) -> torch.Tensor:
    """Vertices ``(B, N, 3)`` metres (soft-argmax of the final head's logits; of the
    intermediate head's when ``intermediate``) of codes ``latent (B, C, g, g, g)`` placed in the
    cuboid around ``center (B, 3)``; ``(N, 3)`` for a single code ``(C, g, g, g)``."""
    dev = _model_device(model)
    single = latent.dim() == 4
    z = latent[None] if single else latent
    c = center[None] if center.dim() == 1 else center
    if c.shape != (z.shape[0], 3):
        raise ValueError(f"center must have shape ({z.shape[0]}, 3) or (3,), got {tuple(center.shape)}")
    out = model.decode(z.to(dev), c.to(dev, z.dtype), return_logits=False)
    v = out.vertices_mid if intermediate else out.vertices
    return v[0] if single else v


def reconstruct(model: VHA, vertices: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """``decode(encode(vertices))``: the autoencoder's reconstruction, shaped as ``vertices``."""
    return decode(model, encode(model, vertices, center), center)


@dataclass(frozen=True)
class Interpolation:
    """``t (S,)`` in [0, 1]; ``latents (S, C, g, g, g)``; ``centers (S, 3)`` and ``vertices
    (S, N, 3)`` metres (each decoded code in its interpolated cuboid)."""

    t: torch.Tensor
    latents: torch.Tensor
    centers: torch.Tensor
    vertices: torch.Tensor


def interpolate(model: VHA, vertices_a: torch.Tensor, center_a: torch.Tensor,
                vertices_b: torch.Tensor, center_b: torch.Tensor, steps: int = 7) -> Interpolation:
    """Walk through the latent space from body A to body B: encode both (``(N, 3)`` vertices,
    ``(3,)`` centres), interpolate the codes linearly in ``steps`` points (ends included), move the
    cuboid centre linearly too, and decode. ``vertices[0]`` / ``vertices[-1]`` are A's / B's
    reconstructions (not A and B themselves)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2 (the two ends included), got {steps!r}")
    for name, v in (("vertices_a", vertices_a), ("vertices_b", vertices_b)):
        if v.dim() != 2:
            raise ValueError(f"{name} must be one body (N, 3), got {tuple(v.shape)}")
    za, zb = encode(model, vertices_a, center_a), encode(model, vertices_b, center_b)
    zs = interpolate_latents(za, zb, steps)  # (S, C, g, g, g)
    t = torch.linspace(0, 1, steps, dtype=zs.dtype, device=zs.device)
    ca, cb = center_a.to(zs), center_b.to(zs)
    centers = (1 - t)[:, None] * ca + t[:, None] * cb  # (S, 3)
    return Interpolation(t, zs, centers, decode(model, zs, centers))


def perturb(model: VHA, vertices: torch.Tensor, center: torch.Tensor, sigma: float = 0.1,
            samples: int = 4, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``samples`` noisy copies of one body's code: ``z + sigma * std(z) * noise``
    (:func:`vhakit.models.vha.perturb_latent`). Returns ``(latents (S, C, g, g, g), vertices
    (S, N, 3))``; with ``sigma = 0`` every sample is the plain reconstruction."""
    if vertices.dim() != 2:
        raise ValueError(f"vertices must be one body (N, 3), got {tuple(vertices.shape)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    z = encode(model, vertices, center)
    zs = torch.stack([perturb_latent(z, sigma, generator) for _ in range(samples)])
    return zs, decode(model, zs, center.to(zs).expand(samples, 3))


@torch.no_grad()
def input_position_error_mm(model: VHA, vertices: torch.Tensor, center: torch.Tensor) -> float:
    """Mean distance (mm) between each vertex and the centre of mass of its *input* heatmap
    (``model.config.input_encoding``): how much position the input itself keeps. One-hot keeps
    only the voxel (about 0.48 voxel on average: ~30 mm at 32^3 over 2 m); Gaussian and trilinear
    inputs keep the sub-voxel position."""
    dev = _model_device(model)
    v, c, _ = _batch(vertices, center, model.config.n_vertices)
    v, c = v.to(dev), c.to(dev)
    com = expected_coordinates(model.input_heatmaps(v, c), model.cuboid(c))  # (B, N, 3)
    return float((com - v).norm(dim=-1).mean()) * 1000


@torch.no_grad()
def heatmap_pair(model: VHA, vertices: torch.Tensor, center: torch.Tensor, vertex: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The input heatmap of vertex ``vertex`` and the decoder's final probability volume
    ``softmax(beta * H)`` for it: two ``(G, G, G)`` tensors (first body of the batch)."""
    dev = _model_device(model)
    v, c, _ = _batch(vertices, center, model.config.n_vertices)
    if not 0 <= vertex < model.config.n_vertices:
        raise ValueError(f"vertex must be in [0, {model.config.n_vertices}), got {vertex}")
    v, c = v[:1].to(dev), c[:1].to(dev)
    h_in = model.input_heatmaps(v, c)[0, vertex]
    logits = model(v, c, return_logits=True).logits[0, vertex]  # (G, G, G)
    probs = torch.softmax(model.config.beta * logits.flatten(), 0).view_as(logits)
    return h_in, probs
