"""Fit SMPL parameters (betas, pose, translation) to predicted subsampled vertices.

The paper's fitting module (section 2.5, after LMT) minimises, per frame,

    E(beta, theta, t) = (1/|S|) sum_{i in S} rho(|| M(beta, theta, t)_i - v_hat_i ||^2) / sigma^2
                        + w_pose * NLL_GMM(theta_body) + w_limits * E_limits(theta_body)
                        + w_shape * ||beta||^2

over the 108 subsampled vertices ``S``, with ``rho(d2) = d2`` or Geman-McClure
``d2 s^2 / (d2 + s^2)``. ``sigma = FitConfig.data_scale_m`` makes the data term dimensionless:
with the default sigma = 1 cm, a 1 cm RMS residual costs 1.

The priors are independent of the kit's synthetic data generator (:mod:`vhakit.fitting.pose_prior`): the
GMM is fitted to real mocap and ``E_limits`` uses anatomical ranges of motion
(:data:`vhakit.fitting.pose_prior.FIT_LIMITS_DEG`), not the box the generator clamps its poses into.

Procedure (every frame at once, no loop over frames):
1. Initialise root orientation and translation by a rigid Procrustes fit of the zero-pose
   template's torso vertices (among the 108) to the targets; pose = 0, betas = 0.
2. Global stage: optimise orientation and translation only (data term).
3. Starting pose per frame: the best (lowest data term) of the zero pose and the GMM means.
4. Full stage: optimise pose, betas, orientation and translation (all terms).
5. Restarts: frames whose mean vertex error stays above ``restart_threshold_m`` are re-fitted
   from every GMM mean; the lowest energy wins (escapes local minima such as a straight elbow
   fitted to a bent one).
6. With ``robust_scale_m``: a robust refinement of stage 4-5's least-squares solution.

Optimisers: ``"lm"`` (default) is Levenberg-Marquardt with the exact Jacobian of the 108 vertices
(:meth:`SubsetLBS.forward_jacobian`) and Gauss-Newton curvature of the priors, with a damping
factor per frame; ``"lbfgs"`` (per-frame memory and line search) and ``"adam"`` use autograd
(:mod:`vhakit.fitting.optim`). Only the 108 vertices enter the loop; the full mesh is computed once at
the end.

Failure modes (clean targets, open body): strongly bent elbows or knees can converge to a
straight limb with a wrong shoulder/hip (caught by the restarts when the residual is large);
rotations that move few of the 108 vertices (hands, toes, forearm twist) keep errors of a few
degrees; with noisy targets raise ``data_scale_m`` (or ``pose_prior_weight``) toward the noise.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from vhakit._util import check_tensor
from vhakit.body.subset_lbs import NUM_PARAMS, SubsetLBS
from vhakit.fitting.optim import adam_minimize, batched_lbfgs, levenberg_marquardt
from vhakit.fitting.pose_prior import PoseGMM, default_pose_gmm, fit_limits_rad
from vhakit.geometry.procrustes import similarity_procrustes
from vhakit.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["FitConfig", "FitResult", "fit_smpl", "procrustes_init", "fit_energy"]

NUM_BETAS = 10
POSE, BETAS, TRANSL = slice(0, 72), slice(72, 82), slice(82, 85)  # layout of x (B, 85)
GLOBAL_PARAMS = (0, 1, 2, 82, 83, 84)  # root orientation + translation
TORSO_JOINTS = (0, 3, 6, 9)  # pelvis, spine1-3: rigid enough to initialise the root
DEFAULT_ITERS = {"lm": (5, 40), "lbfgs": (15, 300), "adam": (50, 600)}  # (global, full) stages


@dataclass(frozen=True)
class FitConfig:
    """Fitting options; energies are dimensionless (module docstring).

    Attributes:
        optimizer: ``"lm"`` (default, fastest), ``"lbfgs"`` or ``"adam"``.
        global_iters, full_iters: iterations of the two stages; ``None`` picks
            :data:`DEFAULT_ITERS` for the optimizer (Adam and L-BFGS need 10-20x more than LM).
        adam_lr: Adam step size (radians, metres and beta units alike).
        lbfgs_history: L-BFGS memory, pairs kept per frame.
        data_scale_m: sigma of the data term, metres: the vertex error you expect.
        robust_scale_m: Geman-McClure scale in metres (``None``: plain squared distance). Use
            ~0.05 for predicted vertices with outliers.
        pose_prior_weight: weight of the GMM negative log-likelihood (nats); 0 switches it off.
        prior_mode: ``"max"`` (SMPLify's max-mixture) or ``"logsumexp"``.
        joint_limit_weight: weight of the hinge-squared joint-limit energy (radians^2).
        shape_weight: weight of ``||beta||^2``.
        restarts: re-fit frames whose mean vertex error stays above ``restart_threshold_m``
            from every GMM component mean and keep the lowest energy (escapes local minima such
            as a straight elbow fitted to a bent one; costs K extra fits per such frame).
        restart_threshold_m: mean vertex error (metres) that triggers a restart; set it above
            the error you expect from the predicted vertices.
        cpu_threads: intra-op threads during a CPU fit (torch's setting is restored afterwards);
            ``None`` keeps torch's. The fit is many small batched ops, for which extra threads
            cost more than they give: on the shared 2-core machine, batch 64 ran at 63 frames/s
            with 1 thread and 7-21 with 2 (``benchmarks/bench_fitting.py``).
    """

    optimizer: str = "lm"
    global_iters: int | None = None
    full_iters: int | None = None
    adam_lr: float = 0.02
    lbfgs_history: int = 10
    data_scale_m: float = 0.01
    robust_scale_m: float | None = None
    pose_prior_weight: float = 1e-3
    prior_mode: str = "max"
    joint_limit_weight: float = 100.0
    shape_weight: float = 1e-3
    restarts: bool = True
    restart_threshold_m: float = 0.01
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_ITERS:
            raise ValueError(f"optimizer must be one of {sorted(DEFAULT_ITERS)}, got "
                             f"{self.optimizer!r}")
        if self.prior_mode not in ("max", "logsumexp"):
            raise ValueError(f"prior_mode must be 'max' or 'logsumexp', got {self.prior_mode!r}")
        if min(self.iterations) < 0 or self.lbfgs_history < 1:
            raise ValueError("iterations must be >= 0 and lbfgs_history >= 1")
        if self.data_scale_m <= 0 or (self.robust_scale_m is not None and self.robust_scale_m <= 0):
            raise ValueError("data_scale_m and robust_scale_m must be positive (metres)")
        if min(self.pose_prior_weight, self.joint_limit_weight, self.shape_weight) < 0:
            raise ValueError("prior weights must be >= 0")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be None or >= 1, got {self.cpu_threads}")

    @property
    def iterations(self) -> tuple[int, int]:
        """``(global, full)`` iteration counts after applying the optimizer's defaults."""
        g, f = DEFAULT_ITERS[self.optimizer]
        return (g if self.global_iters is None else self.global_iters,
                f if self.full_iters is None else self.full_iters)


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters and meshes, detached, on the targets' device.

    Attributes:
        betas ``(B, 10)``; poses ``(B, 72)`` axis-angle, root first; transl ``(B, 3)`` m.
        vertices ``(B, V, 3)`` m; joints ``(B, 24, 3)`` m; vertices108 ``(B, 108, 3)`` m.
        data_error_m: ``(B,)`` mean distance between fitted and target 108 vertices, metres.
        energy: ``(B,)`` final total energy per frame.
        loss_history: ``(T,)`` mean energy over frames after each iteration of the global, full
            and (if any) robust stages; the first ``global_iters`` entries are the global stage
            (data term only). Restarts are not recorded.
        global_iters: length of the global stage in ``loss_history``.
    """

    betas: torch.Tensor
    poses: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    vertices108: torch.Tensor
    data_error_m: torch.Tensor
    energy: torch.Tensor
    loss_history: torch.Tensor
    global_iters: int


def fit_energy(x: torch.Tensor, model: SubsetLBS, targets: torch.Tensor,
               vertex_weights: torch.Tensor, cfg: FitConfig, gmm: PoseGMM | None,
               priors: bool = True, derivatives: bool = False,
               limits: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Energy ``(B,)`` of parameters ``x (B, 85)``; with ``derivatives`` also its gradient
    ``(B, 85)`` and Gauss-Newton Hessian ``(B, 85, 85)`` (exact gradient; the data term's
    curvature is ``2 J^T W J``, the GMM's ``sum_k gamma_k Sigma_k^-1`` with responsibilities
    ``gamma``, which reproduces the gradient of both ``"max"`` and ``"logsumexp"``).

    ``vertex_weights (B, S)`` sum to 1 per frame. ``limits``: ``(lo, hi)``, each ``(72,)``
    radians, the joint-limit box (default: the anatomical :func:`vhakit.fitting.pose_prior.fit_limits_rad`).
    Differentiable by autograd without ``derivatives``.
    """
    poses, betas, transl = x[:, POSE], x[:, BETAS], x[:, TRANSL]
    v = model(betas, poses, transl)[0]
    r = v - targets  # (B, S, 3)
    d2 = (r * r).sum(-1)
    w = vertex_weights / cfg.data_scale_m ** 2
    if cfg.robust_scale_m is not None:  # Geman-McClure; IRLS weight = d rho / d d2
        s2 = cfg.robust_scale_m ** 2
        e = (w * d2 * s2 / (d2 + s2)).sum(1)
        w = w * (s2 / (d2 + s2)) ** 2
    else:
        e = (w * d2).sum(1)
    g = H = None
    if derivatives:  # data term: f = |sqrt(w) r|^2, g = 2 J^T W r, H = 2 J^T W J (Gauss-Newton)
        A = model.forward_jacobian(betas, poses, transl, row_scale=w.sqrt())[1].flatten(1, 2)
        g = 2.0 * ((w.sqrt()[..., None] * r).flatten(1)[:, None] @ A)[:, 0]  # (B, 85)
        H = 2.0 * (A.transpose(1, 2) @ A)  # (B, 85, 85)
    if not priors:
        return e, g, H
    lo, hi = limits if limits is not None else fit_limits_rad(x.device, x.dtype)
    lo, hi = lo.to(x), hi.to(x)  # the root (global orientation) is not limited
    under, over = torch.relu(lo[3:] - poses[:, 3:]), torch.relu(poses[:, 3:] - hi[3:])
    e = e + cfg.joint_limit_weight * (under ** 2 + over ** 2).sum(-1)
    e = e + cfg.shape_weight * (betas * betas).sum(-1)
    if gmm is not None and cfg.pose_prior_weight > 0:
        lp = gmm.component_log_prob(poses[:, 3:])  # (B, K)
        nll = -lp.max(-1).values if cfg.prior_mode == "max" else -torch.logsumexp(lp, -1)
        e = e + cfg.pose_prior_weight * nll
    if derivatives:
        idx = torch.arange(3, 72, device=x.device)
        g[:, 3:72] += 2.0 * cfg.joint_limit_weight * (over - under)
        H[:, idx, idx] += 2.0 * cfg.joint_limit_weight * ((over > 0) | (under > 0)).to(x.dtype)
        g[:, BETAS] += 2.0 * cfg.shape_weight * betas
        bi = torch.arange(72, 82, device=x.device)
        H[:, bi, bi] += 2.0 * cfg.shape_weight
        if gmm is not None and cfg.pose_prior_weight > 0:
            gam = (torch.nn.functional.one_hot(lp.argmax(-1), lp.shape[-1]).to(x.dtype)
                   if cfg.prior_mode == "max" else torch.softmax(lp, -1))  # (B, K)
            L = gmm.precision_chol
            P = L @ L.transpose(-1, -2)  # (K, 69, 69) precisions
            diff = poses[:, None, 3:] - gmm.means[None]  # (B, K, 69)
            Pd = torch.einsum("kde,bke->bkd", P, diff)
            g[:, 3:72] += cfg.pose_prior_weight * (gam[..., None] * Pd).sum(1)
            H[:, 3:72, 3:72] += cfg.pose_prior_weight * torch.einsum("bk,kde->bde", gam, P)
    return e, g, H


def procrustes_init(model: SubsetLBS, targets: torch.Tensor, torso_joints=TORSO_JOINTS
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Root orientation ``(B, 3)`` and translation ``(B, 3)``: rigid Procrustes of the zero-pose
    template's torso vertices (largest skinning weight on ``torso_joints``) onto the targets
    ``(B, S, 3)`` (all vertices if fewer than 4 are torso)."""
    B = targets.shape[0]
    betas, transl = targets.new_zeros(B, NUM_BETAS), targets.new_zeros(B, 3)
    poses = targets.new_zeros(B, 72)
    rest = model(betas, poses, transl)[0]
    part = model.weights.argmax(-1)
    w = torch.isin(part, torch.as_tensor(torso_joints, device=part.device)).to(targets.dtype)
    if int(w.sum()) < 4:
        w = torch.ones_like(w)
    _, R, _ = similarity_procrustes(rest, targets, scale=False, weights=w)
    poses = torch.cat([matrix_to_axis_angle(R), poses[:, 3:]], 1)
    posed = model(betas, poses, transl)[0]  # SMPL rotates about the pelvis joint
    return poses[:, :3], ((targets - posed) * w[:, None]).sum(1) / w.sum()


def _stage(cfg: FitConfig, model: SubsetLBS, gmm: PoseGMM | None, targets: torch.Tensor,
           vw: torch.Tensor, x: torch.Tensor, active: torch.Tensor, iters: int, priors: bool,
           hist: list[torch.Tensor] | None = None,
           limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Optimise the parameters ``active`` of ``x (B, 85)``; the others stay fixed."""
    def energy(y: torch.Tensor) -> torch.Tensor:  # (B, A) -> (B,), for Adam / L-BFGS
        return fit_energy(x.index_copy(1, active, y), model, targets, vw, cfg, gmm, priors,
                          limits=limits)[0]

    def candidates(yc: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:  # (n, C, A) -> (n, C)
        n, C, _ = yc.shape
        xc = x[frames, None].expand(n, C, NUM_PARAMS).clone()
        xc[..., active] = yc
        e = fit_energy(xc.reshape(n * C, -1), model, targets[frames].repeat_interleave(C, 0),
                       vw[frames].repeat_interleave(C, 0), cfg, gmm, priors, limits=limits)[0]
        return e.reshape(n, C)

    def lin(y: torch.Tensor, frames: torch.Tensor):  # (n, A) -> (n,), (n, A), (n, A, A)
        e, g, H = fit_energy(x[frames].index_copy(1, active, y), model, targets[frames],
                             vw[frames], cfg, gmm, priors, derivatives=True, limits=limits)
        return e, g[:, active], H[:, active][:, :, active]

    def rec(_y: torch.Tensor, f: torch.Tensor) -> None:
        if hist is not None:
            hist.append(f.mean())

    y0 = x[:, active]
    if cfg.optimizer == "lm":
        y = levenberg_marquardt(lin, candidates, y0, iters, rec)
    elif cfg.optimizer == "lbfgs":
        y = batched_lbfgs(energy, y0, iters, cfg.lbfgs_history, rec)
    else:
        y = adam_minimize(energy, y0, iters, cfg.adam_lr, rec)
    return x.index_copy(1, active, y)


def _best_start(cfg: FitConfig, model: SubsetLBS, gmm: PoseGMM, targets: torch.Tensor,
                vw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per frame, the body pose among {0, the GMM component means} with the lowest data energy
    (one batched forward pass over ``B (K + 1)`` candidates)."""
    B, K = x.shape[0], gmm.num_components
    starts = x[:, None].repeat(1, K + 1, 1)  # (B, K + 1, 85)
    starts[:, 1:, 3:72] = gmm.means
    rep = (lambda t: t.repeat_interleave(K + 1, 0))  # noqa: E731
    e = fit_energy(starts.reshape(B * (K + 1), -1), model, rep(targets), rep(vw), cfg, gmm,
                   priors=False)[0].reshape(B, K + 1)
    return starts[torch.arange(B, device=x.device), e.argmin(1)]


def _restart(cfg: FitConfig, model: SubsetLBS, gmm: PoseGMM, targets: torch.Tensor,
             vw: torch.Tensor, x: torch.Tensor, iters: int,
             limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Re-fit the frames whose mean vertex error exceeds ``cfg.restart_threshold_m`` from each
    GMM component mean (root, translation and betas kept); keep the lowest energy per frame."""
    v = model(x[:, BETAS], x[:, POSE], x[:, TRANSL])[0]
    err = ((v - targets).norm(dim=-1) * vw).sum(1)
    bad = (err > cfg.restart_threshold_m).nonzero().flatten()
    if bad.numel() == 0:
        return x
    energy = fit_energy(x[bad], model, targets[bad], vw[bad], cfg, gmm, limits=limits)[0]
    K = gmm.num_components
    starts = x[bad].repeat_interleave(K, 0)  # (n K, 85): frame-major, component-minor
    starts[:, 3:72] = gmm.means.repeat(bad.numel(), 1)
    tg, w = targets[bad].repeat_interleave(K, 0), vw[bad].repeat_interleave(K, 0)
    cand = _stage(cfg, model, gmm, tg, w, starts, torch.arange(NUM_PARAMS, device=x.device),
                  iters, True, limits=limits)
    e = fit_energy(cand, model, tg, w, cfg, gmm, limits=limits)[0].reshape(-1, K)
    best = e.argmin(1)
    better = e.gather(1, best[:, None])[:, 0] < energy
    rows = torch.arange(bad.numel(), device=x.device)
    chosen = cand.reshape(-1, K, NUM_PARAMS)[rows, best]
    x = x.clone()
    x[bad[better]] = chosen[better]
    return x


def _check_targets(vertices108: torch.Tensor, n_sub: int) -> None:
    check_tensor(vertices108, "vertices108", ("B", n_sub, 3), floating=True,
                 hint="; points in metres: add a batch dimension with v[None]")
    if vertices108.shape[0] < 1:
        raise ValueError("vertices108 holds no frames (B = 0); pass at least one frame")
    if not torch.isfinite(vertices108).all():
        bad = (~torch.isfinite(vertices108)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"vertices108 has NaN/inf values in frames {bad[:10]}; drop or repair "
                         "those frames before fitting")


def fit_smpl(vertices108: torch.Tensor, body_model: torch.nn.Module,
             config: FitConfig | None = None, pose_prior: PoseGMM | None = None,
             vertex_weights: torch.Tensor | None = None,
             joint_limits_deg: np.ndarray | torch.Tensor | None = None) -> FitResult:
    """Fit SMPL ``betas (B,10)``, ``poses (B,72)``, ``transl (B,3)`` to ``vertices108``.

    Args:
        vertices108: ``(B, 108, 3)`` metres, e.g. the BCP + VHA decoder output. Device and dtype
            of the computation are taken from it.
        body_model: ``vhakit.body.BodyModel`` (open or SMPL), on the same device.
        config: :class:`FitConfig` (defaults when ``None``).
        pose_prior: body-pose GMM; default :func:`vhakit.fitting.pose_prior.default_pose_gmm` (fitted
            to real mocap, not to the kit's synthetic poses).
        vertex_weights: optional ``(B, 108)`` or ``(108,)`` non-negative confidences.
        joint_limits_deg: ``(24, 3, 2)`` (lo, hi) degrees of the joint-limit penalty; default
            :data:`vhakit.fitting.pose_prior.FIT_LIMITS_DEG` (anatomical ranges, independent of the
            data generator's box).
    Returns:
        :class:`FitResult`.

    Example::

        body = BodyModel.open()
        fit = fit_smpl(body.from_poses(poses, betas, transl).vertices108, body)
        fit.vertices  # (B, V, 3) fitted mesh; fit.poses (B, 72), fit.betas (B, 10)
    """
    cfg = config if config is not None else FitConfig()
    threads = torch.get_num_threads()
    on_cpu = isinstance(vertices108, torch.Tensor) and vertices108.device.type == "cpu"
    if not on_cpu or cfg.cpu_threads is None or cfg.cpu_threads == threads:
        return _fit(vertices108, body_model, cfg, pose_prior, vertex_weights, joint_limits_deg)
    torch.set_num_threads(cfg.cpu_threads)
    try:
        return _fit(vertices108, body_model, cfg, pose_prior, vertex_weights, joint_limits_deg)
    finally:
        torch.set_num_threads(threads)


def _fit(vertices108: torch.Tensor, body_model: torch.nn.Module, cfg: FitConfig,
         pose_prior: PoseGMM | None, vertex_weights: torch.Tensor | None,
         joint_limits_deg: np.ndarray | torch.Tensor | None) -> FitResult:
    if not isinstance(getattr(body_model, "lbs_arrays", None), dict):
        raise TypeError("body_model must be a vhakit.body.BodyModel (BodyModel.open() or "
                        f"BodyModel.smpl(...)), got {type(body_model).__name__}")
    n_sub = int(body_model.subsample_indices.numel())
    _check_targets(vertices108, n_sub)
    targets = vertices108.detach()
    B, dev, dt = targets.shape[0], targets.device, targets.dtype
    model = SubsetLBS.from_body_model(body_model, device=dev, dtype=dt)
    vw = targets.new_ones(B, n_sub)
    if vertex_weights is not None:
        vw = torch.as_tensor(vertex_weights, dtype=dt, device=dev).expand(B, n_sub)
        if not (torch.isfinite(vw).all() and (vw >= 0).all() and (vw.sum(1) > 0).all()):
            raise ValueError("vertex_weights must be finite, non-negative and not all zero")
    vw = vw / vw.sum(1, keepdim=True)
    # The GMM also provides the starting poses, so it is loaded even when its weight is 0.
    gmm = (pose_prior if pose_prior is not None else default_pose_gmm()).to(dev, dt)
    lim = fit_limits_rad(dev, dt, joint_limits_deg)
    hist: list[torch.Tensor] = []
    global_iters, full_iters = cfg.iterations
    everything = torch.arange(NUM_PARAMS, device=dev)
    # Geman-McClure is non-convex and, from a T-pose, every limb looks like an outlier: the
    # robust kernel only enters in a final refinement of the least-squares solution.
    l2 = replace(cfg, robust_scale_m=None)
    orient, transl0 = procrustes_init(model, targets)
    x = torch.cat([orient, targets.new_zeros(B, 69 + NUM_BETAS), transl0], 1)  # (B, 85)
    with torch.no_grad():
        x = _stage(l2, model, gmm, targets, vw, x, torch.tensor(GLOBAL_PARAMS, device=dev),
                   global_iters, False, hist)
        n_global = len(hist)
        x = _best_start(l2, model, gmm, targets, vw, x)
        x = _stage(l2, model, gmm, targets, vw, x, everything, full_iters, True, hist, lim)
        if cfg.restarts:
            x = _restart(l2, model, gmm, targets, vw, x, full_iters, lim)
        if cfg.robust_scale_m is not None:
            x = _stage(cfg, model, gmm, targets, vw, x, everything, full_iters, True, hist, lim)
        energy = fit_energy(x, model, targets, vw, cfg, gmm, limits=lim)[0]
        poses, betas, transl = x[:, POSE].clone(), x[:, BETAS], x[:, TRANSL]
        poses[:, :3] = matrix_to_axis_angle(axis_angle_to_matrix(poses[:, :3]))  # angle <= pi
        out = body_model(betas=betas, body_pose=poses[:, 3:], global_orient=poses[:, :3],
                         transl=transl)
    err = (out.vertices108 - targets).norm(dim=-1).mean(-1)
    return FitResult(betas=betas, poses=poses, transl=transl, vertices=out.vertices,
                     joints=out.joints, vertices108=out.vertices108, data_error_m=err,
                     energy=energy, loss_history=torch.stack(hist) if hist else energy[:0],
                     global_iters=n_global)
