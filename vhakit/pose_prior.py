"""A licence-free pose prior: a Gaussian mixture over SMPL body poses plus joint-limit penalties.

SMPLify uses a mixture of 8 Gaussians fitted to CMU mocap (``gmm_08.pkl``), which cannot ship.
vhakit fits the same kind of model with EM on its own training poses (the 69 body-pose values,
joints 1..23 in SMPL axis-angle layout, radians) and stores it as a small ``.npz``
(``vhakit/assets/pose_gmm.npz``, built by ``data_scripts/build_pose_prior.py``).

Energies (all differentiable, per frame ``(B,)``):

* :meth:`PoseGMM.nll`: ``-log sum_k w_k N(theta | mu_k, Sigma_k)`` (``mode="logsumexp"``), or
  SMPLify's max-mixture bound ``min_k [-log w_k - log N(theta | mu_k, Sigma_k)]`` (``"max"``).
* :func:`joint_limit_penalty`: ``sum_i relu(lo_i - theta_i)^2 + relu(theta_i - hi_i)^2`` over the
  pose components, radians squared, with the limits of :mod:`vhakit.data.joint_limits`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vhakit.data.joint_limits import joint_limits_rad

__all__ = ["PoseGMM", "fit_gmm", "joint_limit_penalty", "default_pose_gmm", "DEFAULT_GMM_PATH",
           "NUM_BODY_POSE"]

NUM_BODY_POSE = 69  # 23 body joints x 3 (SMPL's pose minus the global orientation)
DEFAULT_GMM_PATH = Path(__file__).resolve().parent / "assets" / "pose_gmm.npz"
_LOG_2PI = math.log(2.0 * math.pi)


def _check_poses(x: torch.Tensor, name: str, dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        "convert numpy arrays with torch.as_tensor(...)")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}) (SMPL body pose, radians), got "
                         f"{tuple(x.shape)}; pass poses[:, 3:] to drop the global orientation")


@dataclass(frozen=True)
class PoseGMM:
    """Gaussian mixture over body poses, stored by its precision Cholesky factors.

    Attributes:
        means: ``(K, D)`` radians.
        precision_chol: ``(K, D, D)`` upper-triangular ``L_k = C_k^-T`` (``C_k`` the lower
            Cholesky factor of ``Sigma_k``), so that ``Sigma_k^-1 = L_k L_k^T``.
        weights: ``(K,)`` mixture weights, summing to 1.
    """

    means: torch.Tensor
    precision_chol: torch.Tensor
    weights: torch.Tensor

    @staticmethod
    def from_covariances(means: torch.Tensor, covariances: torch.Tensor,
                         weights: torch.Tensor) -> PoseGMM:
        """Build from ``(K, D)`` means, ``(K, D, D)`` (or diagonal ``(K, D)``) covariances."""
        if covariances.dim() == 2:
            covariances = torch.diag_embed(covariances)
        K, D = means.shape
        if covariances.shape != (K, D, D) or weights.shape != (K,):
            raise ValueError(f"inconsistent mixture: means {tuple(means.shape)}, covariances "
                             f"{tuple(covariances.shape)}, weights {tuple(weights.shape)}")
        # Sigma = C C^T (C lower)  =>  Sigma^-1 = C^-T C^-1 = L L^T with L = C^-T (upper).
        C = torch.linalg.cholesky(covariances)
        eye = torch.eye(D, dtype=C.dtype, device=C.device).expand_as(C)
        Cinv = torch.linalg.solve_triangular(C, eye, upper=False)  # (K, D, D) lower
        return PoseGMM(means, Cinv.transpose(-1, -2), weights / weights.sum())

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> PoseGMM:
        return PoseGMM(*(t.to(device=device, dtype=dtype) for t in
                         (self.means, self.precision_chol, self.weights)))

    def component_log_prob(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(theta | mu_k, Sigma_k)``, ``(B, D)`` -> ``(B, K)``."""
        _check_poses(body_pose, "body_pose", self.dim)
        L = self.precision_chol.to(body_pose)
        diff = body_pose[None] - self.means.to(body_pose)[:, None]  # (K, B, D)
        z = torch.bmm(diff, L)  # (K, B, D): rows (L^T (theta - mu))^T, one GEMM per component
        maha = (z * z).sum(-1).T  # (B, K)
        half_logdet_prec = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        log_norm = half_logdet_prec - 0.5 * self.dim * _LOG_2PI
        return torch.log(self.weights.to(body_pose)) + log_norm - 0.5 * maha

    def nll(self, body_pose: torch.Tensor, mode: str = "max") -> torch.Tensor:
        """Negative log-likelihood per frame, ``(B, D)`` -> ``(B,)`` (nats).

        ``mode="logsumexp"``: ``-log sum_k w_k N_k``; ``mode="max"``: ``-max_k log(w_k N_k)``
        (an upper bound, SMPLify's choice: the gradient pulls towards the nearest component only).
        """
        lp = self.component_log_prob(body_pose)
        if mode == "logsumexp":
            return -torch.logsumexp(lp, dim=-1)
        if mode == "max":
            return -lp.max(dim=-1).values
        raise ValueError(f"mode must be 'max' or 'logsumexp', got {mode!r}")

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` poses ``(n, D)`` drawn from the mixture (for checks and plots)."""
        k = torch.multinomial(self.weights.cpu().double(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        L = self.precision_chol.cpu().double()[k]  # x = mu + C eps, C = L^-T: solve L^T x = eps
        x = torch.linalg.solve_triangular(L.transpose(-1, -2), eps[..., None], upper=False)[..., 0]
        return (self.means.cpu().double()[k] + x).to(self.means)

    def save(self, path: str | Path) -> None:
        """Write ``means``, ``precision_chol`` (float32) and ``weights`` to a compressed npz."""
        np.savez_compressed(path, means=self.means.detach().cpu().float().numpy(),
                            precision_chol=self.precision_chol.detach().cpu().float().numpy(),
                            weights=self.weights.detach().cpu().double().numpy())

    @staticmethod
    def load(path: str | Path) -> PoseGMM:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pose prior {path} not found; build it with "
                                    "`python data_scripts/build_pose_prior.py`")
        with np.load(path) as z:
            missing = {"means", "precision_chol", "weights"} - set(z.files)
            if missing:
                raise ValueError(f"{path} lacks arrays {sorted(missing)}; rebuild it with "
                                 "data_scripts/build_pose_prior.py")
            return PoseGMM(torch.from_numpy(z["means"]), torch.from_numpy(z["precision_chol"]),
                           torch.from_numpy(z["weights"]).float())


def _kmeans_init(x: torch.Tensor, K: int, generator: torch.Generator, iters: int = 10
                 ) -> torch.Tensor:
    """k-means++ seeding plus a few Lloyd steps; ``(N, D)`` -> ``(K, D)`` centres."""
    N = x.shape[0]
    centres = [x[torch.randint(N, (1,), generator=generator).item()]]
    d2 = ((x - centres[0]) ** 2).sum(-1)
    for _ in range(1, K):
        p = (d2 / d2.sum()).cpu()
        centres.append(x[torch.multinomial(p, 1, generator=generator).item()])
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(-1))
    c = torch.stack(centres)
    for _ in range(iters):
        lab = torch.cdist(x, c).argmin(-1)
        for k in range(K):  # loop over the K components, not over samples
            if (lab == k).any():
                c[k] = x[lab == k].mean(0)
    return c


def fit_gmm(body_poses: torch.Tensor, num_components: int = 8, covariance: str = "full",
            iters: int = 100, reg: float = 1e-4, tol: float = 1e-6,
            generator: torch.Generator | None = None) -> PoseGMM:
    """Fit a Gaussian mixture to poses with expectation-maximisation (float64 internally).

    E-step: responsibilities ``r_nk = w_k N(x_n|mu_k,Sigma_k) / sum_j w_j N(x_n|mu_j,Sigma_j)``.
    M-step: ``N_k = sum_n r_nk``, ``w_k = N_k / N``, ``mu_k = sum_n r_nk x_n / N_k``,
    ``Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg I`` (diagonal: the diagonal).
    Stops when the mean log-likelihood improves by less than ``tol``.

    Args:
        body_poses: ``(N, D)`` radians (``D = 69`` for SMPL body poses); N >> K * D for "full".
        num_components: ``K`` (SMPLify uses 8).
        covariance: ``"full"`` or ``"diag"``.
        iters: maximum EM iterations.
        reg: variance floor added to every covariance, radians^2 (1e-4 = (0.57 deg)^2): it keeps
            components invertible on joints that never move in the data (e.g. hinge knees' y).
        generator: seeds the k-means++ initialisation.
    Returns:
        :class:`PoseGMM` in ``body_poses``' dtype and device.
    """
    if not isinstance(body_poses, torch.Tensor) or body_poses.dim() != 2:
        raise ValueError("body_poses must be a (N, D) torch.Tensor, got "
                         f"{getattr(body_poses, 'shape', type(body_poses).__name__)}")
    if covariance not in ("full", "diag"):
        raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
    N, D = body_poses.shape
    if N < 2 * num_components:
        raise ValueError(f"need at least {2 * num_components} poses for {num_components} "
                         f"components, got {N}")
    if not torch.isfinite(body_poses).all():
        raise ValueError("body_poses contains NaN or inf values")
    x = body_poses.detach().double()
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    means = _kmeans_init(x, num_components, g)
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    cov = (x.T.cov() + reg * eye).expand(num_components, D, D).clone()
    if covariance == "diag":
        cov = torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
    weights = torch.full((num_components,), 1.0 / num_components, dtype=x.dtype, device=x.device)
    prev = -math.inf
    for _ in range(iters):
        gmm = PoseGMM.from_covariances(means, cov, weights)
        lp = torch.cat([gmm.component_log_prob(c) for c in x.split(4096)])  # (N, K)
        ll = torch.logsumexp(lp, dim=-1)
        r = torch.exp(lp - ll[:, None])  # (N, K) responsibilities
        Nk = r.sum(0).clamp_min(1e-10)
        weights = Nk / N
        means = (r.T @ x) / Nk[:, None]
        covs = []
        for k in range(num_components):  # loop over components keeps memory at O(N D)
            diff = x - means[k]  # (N, D)
            wd = diff * r[:, k:k + 1]
            ck = (wd.T @ diff) if covariance == "full" else torch.diag((wd * diff).sum(0))
            covs.append(ck / Nk[k] + reg * eye)
        cov = torch.stack(covs)
        mean_ll = ll.mean().item()
        if mean_ll - prev < tol:
            break
        prev = mean_ll
    return PoseGMM.from_covariances(means, cov, weights).to(body_poses.device, body_poses.dtype)


def joint_limit_penalty(poses: torch.Tensor) -> torch.Tensor:
    """Hinge-squared joint-limit energy per frame, radians^2.

    ``E = sum_i relu(lo_i - theta_i)^2 + relu(theta_i - hi_i)^2`` over all pose components, with
    ``(lo, hi)`` from :func:`vhakit.data.joint_limits.joint_limits_rad` (zero inside the box; the
    root's +-180 degree box never binds for normalised axis-angle).

    Args:
        poses: ``(B, 72)`` full SMPL pose, or ``(B, 69)`` body pose (root omitted), radians.
    Returns:
        ``(B,)``.
    """
    if not isinstance(poses, torch.Tensor) or poses.dim() != 2 or poses.shape[1] not in (69, 72):
        raise ValueError("poses must be a (B, 72) or (B, 69) torch.Tensor (SMPL axis-angle), got "
                         f"{getattr(poses, 'shape', type(poses).__name__)}")
    lo, hi = joint_limits_rad(poses.device, poses.dtype)
    if poses.shape[1] == 69:
        lo, hi = lo[3:], hi[3:]
    return (torch.relu(lo - poses) ** 2 + torch.relu(poses - hi) ** 2).sum(-1)


def default_pose_gmm(device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32,
                     path: str | Path | None = None) -> PoseGMM:
    """The kit's default body-pose GMM (``vhakit/assets/pose_gmm.npz``, 35 KB, ~1 ms to read),
    on ``device``/``dtype``. Raises ``FileNotFoundError`` with the build command when missing."""
    return PoseGMM.load(path if path is not None else DEFAULT_GMM_PATH).to(device, dtype)
