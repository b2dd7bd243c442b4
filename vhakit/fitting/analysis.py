"""Experiments on SMPL fitting (:mod:`vhakit.fitting`): test targets, noise, stage-by-stage
snapshots, accuracy, and the noise sweep. Used by notebook 06 and the robustness report.

Noise model: the fitting targets are the true 108 vertices plus independent Gaussian noise of
standard deviation ``noise_std_m`` **per coordinate**, so a vertex moves by
``sqrt(3) * noise_std_m`` RMS (about ``1.6 * noise_std_m`` on average) -- a stand-in for the
errors of the predicted vertices.

Accuracy (:func:`fit_accuracy`): full-mesh MPVE in the world frame (``align="none"``: the cameras
are calibrated, so the absolute position counts) and the angular distance of the 24 local joint
rotations (:func:`vhakit.evaluation.metrics.angular_distance` defaults), both per frame.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from vhakit._util import markdown_table
from vhakit.body.subset_lbs import SubsetLBS
from vhakit.data.pose_sampler import sample_poses
from vhakit.data.procedural import sample_betas
from vhakit.evaluation.metrics import angular_distance, mpve
from vhakit.fitting.fit import FitConfig, FitResult, fit_smpl, procrustes_init
from vhakit.fitting.pose_prior import PoseGMM

__all__ = ["FitTargets", "make_fit_targets", "add_vertex_noise", "noise_matched_config",
           "no_prior_config", "fit_accuracy", "StageSnapshot", "fit_stages", "SweepRow",
           "noise_sweep", "format_sweep", "NOISE_LEVELS_MM"]

NOISE_LEVELS_MM = (0.0, 5.0, 10.0, 20.0, 30.0)  # per-coordinate std of the sweep's noise
TRANSL_STD_M = 0.5  # spread of the bodies' positions around the origin (as in the benchmark)


@dataclass(frozen=True)
class FitTargets:
    """Ground truth for fitting experiments (all float32 on the CPU unless moved).

    Attributes:
        poses ``(B, 72)`` axis-angle radians; betas ``(B, 10)``; transl ``(B, 3)`` m;
        vertices ``(B, V, 3)`` m (full mesh); joints ``(B, 24, 3)`` m;
        vertices108 ``(B, 108, 3)`` m: the clean fitting targets.
    """

    poses: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    vertices108: torch.Tensor


def make_fit_targets(body_model: torch.nn.Module, num_poses: int, seed: int = 0) -> FitTargets:
    """``num_poses`` random bodies: poses from :func:`vhakit.data.pose_sampler.sample_poses`,
    betas ~ N(0, 1) clipped to +-2, translations ~ N(0, 0.5 m). Same seed -> same bodies."""
    if not isinstance(num_poses, int) or num_poses < 1:
        raise ValueError(f"num_poses must be a positive int, got {num_poses!r}")
    dev = body_model.faces.device
    poses = sample_poses(num_poses, seed + 1000).float()
    betas = sample_betas(num_poses, torch.Generator().manual_seed(seed + 1001)).float()
    transl = torch.randn(num_poses, 3, generator=torch.Generator().manual_seed(seed + 1002))
    transl = transl * TRANSL_STD_M
    poses, betas, transl = poses.to(dev), betas.to(dev), transl.to(dev)
    with torch.no_grad():
        out = body_model.from_poses(poses, betas, transl)
    return FitTargets(poses=poses, betas=betas, transl=transl, vertices=out.vertices,
                      joints=out.joints, vertices108=out.vertices108)


def add_vertex_noise(vertices108: torch.Tensor, noise_std_m: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``vertices108 (B, N, 3)`` m plus Gaussian noise of std ``noise_std_m`` per coordinate.

    ``generator`` (a CPU ``torch.Generator``) makes the noise reproducible; the noise is drawn on
    the CPU and moved to the vertices' device, so the same seed gives the same noise everywhere.
    """
    if not isinstance(vertices108, torch.Tensor) or vertices108.dim() != 3 \
            or vertices108.shape[-1] != 3:
        raise ValueError("vertices108 must be a (B, N, 3) tensor in metres, got "
                         f"{getattr(vertices108, 'shape', type(vertices108).__name__)}")
    if not noise_std_m >= 0:
        raise ValueError(f"noise_std_m must be >= 0 (metres), got {noise_std_m}")
    noise = torch.randn(vertices108.shape, generator=generator, dtype=torch.float64)
    return vertices108 + (noise * noise_std_m).to(vertices108.device, vertices108.dtype)


def noise_matched_config(noise_std_m: float, base: FitConfig | None = None) -> FitConfig:
    """``base`` with the data term's scale and the restart threshold raised to the noise.

    A vertex with per-coordinate noise ``s`` is ``sqrt(3) s`` away from the truth (RMS), so
    ``data_scale_m = max(base, sqrt(3) s)`` weighs the data term against the priors as the noise
    warrants, and ``restart_threshold_m = max(base, 2 sqrt(3) s)`` stops the restarts from
    re-fitting every frame whose residual is just noise (without it, a 10 mm sweep ran ~10x
    slower for a worse result). ``s = 0`` returns ``base`` unchanged.
    """
    cfg = base if base is not None else FitConfig()
    rms = math.sqrt(3.0) * float(noise_std_m)
    return replace(cfg, data_scale_m=max(cfg.data_scale_m, rms),
                   restart_threshold_m=max(cfg.restart_threshold_m, 2.0 * rms))


def no_prior_config(base: FitConfig | None = None) -> FitConfig:
    """``base`` with the pose prior (GMM) and the joint limits switched off (shape regulariser
    kept). The GMM still provides the starting poses (see :func:`vhakit.fitting.fit_smpl`)."""
    return replace(base if base is not None else FitConfig(), pose_prior_weight=0.0,
                   joint_limit_weight=0.0)


def fit_accuracy(vertices: torch.Tensor, poses: torch.Tensor, targets: FitTargets
                 ) -> dict[str, torch.Tensor]:
    """Per-frame ``{"mpve_mm": (B,), "angle_deg": (B,)}`` of a fitted mesh ``vertices (B, V, 3)``
    m and ``poses (B, 72)`` against ``targets`` (module docstring for the conventions)."""
    truth_v = targets.vertices.to(vertices.device, vertices.dtype)
    truth_p = targets.poses.to(poses.device, poses.dtype)
    return {"mpve_mm": mpve(vertices, truth_v, align="none") * 1000.0,
            "angle_deg": angular_distance(poses, truth_p)}


@dataclass(frozen=True)
class StageSnapshot:
    """The fit after one stage. ``poses (B, 72)``, ``betas (B, 10)``, ``transl (B, 3)`` m,
    ``vertices (B, V, 3)`` m, ``vertices108 (B, 108, 3)`` m, ``data_error_m (B,)``: mean distance
    of the 108 fitted vertices to the targets."""

    name: str
    poses: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    vertices108: torch.Tensor
    data_error_m: torch.Tensor


def _snapshot(name: str, fit: FitResult) -> StageSnapshot:
    return StageSnapshot(name, fit.poses, fit.betas, fit.transl, fit.vertices, fit.vertices108,
                         fit.data_error_m)


def fit_stages(vertices108: torch.Tensor, body_model: torch.nn.Module,
               config: FitConfig | None = None, pose_prior: PoseGMM | None = None
               ) -> tuple[dict[str, StageSnapshot], FitResult]:
    """The fit of :func:`vhakit.fitting.fit_smpl` after each of its stages.

    Returns ``(stages, fit)``: ``stages`` maps

    * ``"procrustes"``: zero pose and shape, root orientation and translation from the rigid
      Procrustes fit of the torso vertices (:func:`vhakit.fitting.procrustes_init`);
    * ``"global"``: after the global stage (root orientation and translation optimised), with the
      starting pose of the full stage (the best of the zero pose and the GMM means);
    * ``"full"``: the final fit (full stage, restarts), i.e. ``fit``;

    to :class:`StageSnapshot`. ``fit`` is exactly ``fit_smpl(vertices108, body_model, config,
    pose_prior)``; the earlier stages are re-runs with the later stages switched off.
    """
    cfg = config if config is not None else FitConfig()
    fit = fit_smpl(vertices108, body_model, cfg, pose_prior)
    early = fit_smpl(vertices108, body_model, replace(cfg, full_iters=0, restarts=False,
                                                      robust_scale_m=None), pose_prior)
    targets = vertices108.detach()
    model = SubsetLBS.from_body_model(body_model, device=targets.device, dtype=targets.dtype)
    orient, transl = procrustes_init(model, targets)
    B = targets.shape[0]
    poses = torch.cat([orient, targets.new_zeros(B, 69)], 1)
    betas = targets.new_zeros(B, 10)
    with torch.no_grad():
        out = body_model(betas=betas, body_pose=poses[:, 3:], global_orient=orient, transl=transl)
    err = (out.vertices108 - targets).norm(dim=-1).mean(-1)
    stages = {"procrustes": StageSnapshot("procrustes", poses, betas, transl, out.vertices,
                                          out.vertices108, err),
              "global": _snapshot("global", early), "full": _snapshot("full", fit)}
    return stages, fit


@dataclass(frozen=True)
class SweepRow:
    """One line of :func:`noise_sweep`: means over the frames (max in ``*_max``)."""

    noise_mm: float
    setting: str
    mpve_mm: float
    mpve_max_mm: float
    angle_deg: float
    angle_max_deg: float
    data_error_mm: float
    seconds: float


def _settings(noise_std_m: float, which: tuple[str, ...], base: FitConfig
              ) -> dict[str, FitConfig]:
    matched = noise_matched_config(noise_std_m, base)
    table = {"prior": matched, "no prior": no_prior_config(matched),
             "prior, fixed scale": base, "no prior, fixed scale": no_prior_config(base)}
    unknown = set(which) - set(table)
    if unknown:
        raise ValueError(f"settings must be among {sorted(table)}, got {sorted(unknown)}")
    return {k: table[k] for k in which}


def noise_sweep(body_model: torch.nn.Module, noise_levels_mm=NOISE_LEVELS_MM,
                num_poses: int = 50, settings: tuple[str, ...] = ("prior", "no prior"),
                base: FitConfig | None = None, pose_prior: PoseGMM | None = None,
                seed: int = 0) -> list[SweepRow]:
    """Fit SMPL to noisy 108 vertices of ``num_poses`` random bodies at each noise level.

    Every level and setting fits the same bodies (:func:`make_fit_targets` with ``seed``); the
    noise of level ``s`` is ``s / 1000 * z`` with the same standard normal ``z`` for all levels,
    so the levels differ only in scale.

    Args:
        body_model: ``vhakit.body.BodyModel``; its device is used.
        noise_levels_mm: per-coordinate noise std in millimetres, e.g. ``(0, 5, 10, 20, 30)``.
        num_poses: bodies per level (50 in the acceptance check; 8 is enough for a smoke test).
        settings: among ``"prior"`` and ``"no prior"`` (data scale and restart threshold matched
            to the noise, :func:`noise_matched_config`), ``"prior, fixed scale"`` and
            ``"no prior, fixed scale"`` (``base`` as is).
        base: the configuration the settings start from (default :class:`FitConfig`).
        pose_prior: the GMM (default: the kit's).
        seed: bodies and noise.
    Returns:
        one :class:`SweepRow` per (level, setting), levels outer; ``seconds`` is wall time.
    """
    base = base if base is not None else FitConfig()
    targets = make_fit_targets(body_model, num_poses, seed)
    z = add_vertex_noise(torch.zeros_like(targets.vertices108), 1.0,
                         torch.Generator().manual_seed(seed + 2000))  # (B, 108, 3) std 1
    rows = []
    for level in noise_levels_mm:
        s = float(level) / 1000.0
        noisy = targets.vertices108 + s * z
        for name, cfg in _settings(s, tuple(settings), base).items():
            t0 = time.perf_counter()
            fit = fit_smpl(noisy, body_model, cfg, pose_prior)
            seconds = time.perf_counter() - t0
            acc = fit_accuracy(fit.vertices, fit.poses, targets)
            rows.append(SweepRow(float(level), name, float(acc["mpve_mm"].mean()),
                                 float(acc["mpve_mm"].max()), float(acc["angle_deg"].mean()),
                                 float(acc["angle_deg"].max()),
                                 float(fit.data_error_m.mean()) * 1000.0, seconds))
    return rows


def format_sweep(rows: list[SweepRow]) -> str:
    """A plain-text table of :func:`noise_sweep`'s rows (Markdown-compatible)."""
    return markdown_table(
        ["noise (mm, per coord.)", "setting", "MPVE mm (max)", "angle deg (max)", "data error mm",
         "time s"],
        [[f"{r.noise_mm:g}", r.setting, f"{r.mpve_mm:.2f} ({r.mpve_max_mm:.1f})",
          f"{r.angle_deg:.2f} ({r.angle_max_deg:.1f})", f"{r.data_error_mm:.2f}", f"{r.seconds:.2f}"]
         for r in rows])
