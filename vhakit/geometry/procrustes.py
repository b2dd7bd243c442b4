"""Similarity Procrustes (Umeyama 1991): the least-squares scale, rotation and translation
that move one point set onto another, with the reflection case handled. Pure geometry,
used by SMPL fitting (the initial global pose) and by PA-MPJPE
(:mod:`vhakit.evaluation.metrics` re-exports both functions).
"""
from __future__ import annotations

import torch

from vhakit._util import check_pair

__all__ = ["similarity_procrustes", "procrustes_align"]


def similarity_procrustes(source: torch.Tensor, target: torch.Tensor, scale: bool = True,
                          weights: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame least-squares similarity transform ``target ~ s R source + t`` (Umeyama 1991).

    With centred points ``X = source - mu_s``, ``Y = target - mu_t`` and ``U S V^T = svd(Y^T X)``,
    ``R = U D V^T`` with ``D = diag(1, 1, sign(det(U V^T)))`` (the reflection fix, so ``R`` is a
    proper rotation), ``s = tr(S D) / ||X||^2`` (or 1 when ``scale=False``) and
    ``t = mu_t - s R mu_s``.

    Args:
        source: ``(B, N, 3)`` points to be moved.
        target: ``(B, N, 3)`` corresponding points.
        scale: estimate the scale ``s``; ``False`` gives the rigid (rotation + translation) fit.
        weights: optional ``(B, N)`` or ``(N,)`` non-negative point weights.
    Returns:
        ``s (B,)``, ``R (B, 3, 3)``, ``t (B, 3)``.
    """
    check_pair(source, target, ("source", "target"))
    if weights is None:
        w = torch.full(source.shape[:2], 1.0 / source.shape[1], dtype=source.dtype,
                       device=source.device)
    else:
        w = weights.to(source).expand(source.shape[:2])
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * source).sum(1)  # (B, 3)
    mu_t = (w[..., None] * target).sum(1)
    X = source - mu_s[:, None]
    Y = target - mu_t[:, None]
    cov = (w[..., None] * Y).transpose(1, 2) @ X  # (B, 3, 3) = sum_i w_i y_i x_i^T
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D = torch.cat([D[:, :2], d[:, None]], dim=1)  # (B, 3) diagonal of the reflection fix
    R = U @ (D[:, :, None] * Vh)
    if scale:
        var_s = (w * (X * X).sum(-1)).sum(-1).clamp_min(1e-12)
        s = (S * D).sum(-1) / var_s
    else:
        s = torch.ones_like(S[:, 0])
    t = mu_t - s[:, None] * (R @ mu_s[..., None])[..., 0]
    return s, R, t


def procrustes_align(source: torch.Tensor, target: torch.Tensor, scale: bool = True
                     ) -> torch.Tensor:
    """``source`` moved onto ``target`` by :func:`similarity_procrustes`, ``(B, N, 3)``."""
    s, R, t = similarity_procrustes(source, target, scale=scale)
    return s[:, None, None] * source @ R.transpose(1, 2) + t[:, None]
