"""A licence-free pose prior for the fitter: a Gaussian mixture over SMPL body poses fitted to real
motion capture, plus joint-limit penalties from anatomical ranges of motion.

Nothing here comes from the kit's synthetic data generator (the pose sampler, the procedural
actions and their joint-limit box :mod:`vhakit.data.joint_limits`): a prior built from the
generator would know the test poses' distribution and box, which flatters the angular error.

* The GMM: SMPLify uses a mixture of 8 Gaussians fitted to CMU mocap (``gmm_08.pkl``), which
  cannot ship. vhakit fits the same kind of model with EM to the real DeepMimic mocap clips the
  kit ships (:func:`vhakit.data.motion.load_deepmimic`, plus their left-right mirror images) and
  stores it as a small ``.npz`` (``vhakit/assets/pose_gmm.npz``, built by
  ``data_scripts/build_pose_prior.py``; its ``metadata`` records the source,
  :func:`pose_prior_metadata`).
* The limits: :data:`FIT_LIMITS_DEG`, normal ranges of motion from standard clinical tables
  (:data:`ANATOMICAL_ROM_DEG`) widened by :data:`LIMIT_MARGIN_DEG` on each side. Unlike the
  generator's box, knees and elbows are not locked to a hinge: they keep their small anatomical
  axial rotation and laxity.

Energies (all differentiable, per frame ``(B,)``):

* :meth:`PoseGMM.nll`: ``-log sum_k w_k N(theta | mu_k, Sigma_k)`` (``mode="logsumexp"``), or
  SMPLify's max-mixture bound ``min_k [-log w_k - log N(theta | mu_k, Sigma_k)]`` (``"max"``).
* :func:`joint_limit_penalty`: ``sum_i relu(lo_i - theta_i)^2 + relu(theta_i - hi_i)^2`` over the
  pose components, radians squared, with the limits :data:`FIT_LIMITS_DEG`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vhakit._util import check_tensor
from vhakit.data.joint_limits import MIRROR_JOINT

__all__ = ["PoseGMM", "fit_gmm", "joint_limit_penalty", "default_pose_gmm", "DEFAULT_GMM_PATH",
           "NUM_BODY_POSE", "ANATOMICAL_ROM_DEG", "LIMIT_MARGIN_DEG", "FIT_LIMITS_DEG",
           "fit_limits_rad", "pose_prior_metadata"]

NUM_BODY_POSE = 69  # 23 body joints x 3 (SMPL's pose minus the global orientation)
DEFAULT_GMM_PATH = Path(__file__).resolve().parents[1] / "assets" / "pose_gmm.npz"
_LOG_2PI = math.log(2.0 * math.pi)

# Normal active ranges of motion of the left and centre joints, degrees, rows (x, y, z), columns
# (lo, hi), in SMPL's local axis-angle components (axes and signs: vhakit.data.joint_limits'
# docstring; the right side is mirrored). Sources: the AAOS averages (American Academy of
# Orthopaedic Surgeons, "Joint motion: method of measuring and recording", 1965, as tabulated in
# Norkin & White, "Measurement of Joint Motion"), Kapandji ("The Physiology of the Joints") for
# the knee's axial rotation; "assumed" marks a range no table gives, set wide. A spine total is
# split evenly over the joints that carry it (thoracolumbar over spine1-3, cervical over neck
# and head).
ANATOMICAL_ROM_DEG: dict[int, tuple[tuple[float, float], ...]] = {
    0: ((-180, 180), (-180, 180), (-180, 180)),  # pelvis: global orientation, not a joint
    # hip: flexion 120 (-x) / extension 30; rotation 45 / 45 (+y lateral); abduction 45 (+z) /
    # adduction 30
    1: ((-120, 30), (-45, 45), (-30, 45)),
    # thoracolumbar spine / 3: flexion 80 (+x) / extension 25, rotation 45, lateral flexion 35
    3: ((-25 / 3, 80 / 3), (-15, 15), (-35 / 3, 35 / 3)),
    # knee: flexion 135 (+x) / hyperextension 10; axial rotation 30 medial / 40 lateral at 90
    # degrees of flexion (Kapandji); varus-valgus laxity 5 (assumed)
    4: ((-10, 135), (-30, 40), (-5, 5)),
    6: ((-25 / 3, 80 / 3), (-15, 15), (-35 / 3, 35 / 3)),  # spine2
    # ankle: plantar flexion 50 (+x) / dorsiflexion 20; foot abduction-adduction 20 (assumed);
    # eversion 15 (+z) / inversion 35
    7: ((-20, 50), (-20, 20), (-35, 15)),
    9: ((-25 / 3, 80 / 3), (-15, 15), (-35 / 3, 35 / 3)),  # spine3
    # toes (first MTP): extension 70 (-x) / flexion 45; no side motion (assumed)
    10: ((-70, 45), (0, 0), (0, 0)),
    # cervical spine / 2: flexion 45 / extension 45, rotation 60, lateral flexion 45
    12: ((-22.5, 22.5), (-30, 30), (-22.5, 22.5)),
    # clavicle (sternoclavicular joint): axial rotation 30 (assumed); protraction 15 (-y) /
    # retraction 30; elevation 45 (+z) / depression 10
    13: ((-30, 30), (-15, 30), (-10, 45)),
    15: ((-22.5, 22.5), (-30, 30), (-22.5, 22.5)),  # head: the other half of the cervical spine
    # shoulder from the T-pose: x is the arm's twist (rotation 70 / 90) and, once the arm is
    # lowered, its flexion 180 / extension 60: no limit; horizontal adduction 135 (-y) /
    # abduction 45; elevation to 180 degrees of abduction (+z 90) and down to the side (-90) and
    # 30 across the body (assumed)
    16: ((-180, 180), (-135, 45), (-120, 90)),
    # elbow: flexion 150 (-y) / extension 0; pronation 80 / supination 80 (x); a hinge (z)
    18: ((-80, 80), (-150, 0), (0, 0)),
    # wrist: forearm rotation 80 / 80 (x, shared with the elbow in SMPL); ulnar 30 / radial 20
    # deviation (y); flexion 80 / extension 70 (z); signs not pinned: the wider side both ways
    20: ((-80, 80), (-30, 30), (-80, 80)),
    # hand (finger base joint): twist 10 and spread 20 (assumed); MCP flexion 90 / extension 45
    # (z), the wider side both ways
    22: ((-10, 10), (-20, 20), (-90, 90)),
}
#: Degrees added on both sides of every anatomical range: the box is on axis-angle components,
#: which only approximate the clinical angles, and individuals exceed the table averages.
LIMIT_MARGIN_DEG = 10.0


def _fit_limits_table() -> np.ndarray:
    table = np.zeros((24, 3, 2), dtype=np.float64)
    for j, rows in ANATOMICAL_ROM_DEG.items():
        table[j] = np.asarray(rows, dtype=np.float64)
        m = MIRROR_JOINT[j]
        if m != j:  # reflection x -> -x: the right joint's (x, y, z) is the left's (x, -y, -z)
            table[m, 0] = table[j, 0]
            table[m, 1:] = -table[j, 1:, ::-1]
    table[..., 0] -= LIMIT_MARGIN_DEG
    table[..., 1] += LIMIT_MARGIN_DEG
    table = np.clip(table, -180.0, 180.0)
    table.setflags(write=False)
    return table


#: ``(24, 3, 2)`` float64, read-only: the fitter's limits ``FIT_LIMITS_DEG[j, axis] = (lo, hi)``
#: in degrees (:data:`ANATOMICAL_ROM_DEG` mirrored to the right side, widened by
#: :data:`LIMIT_MARGIN_DEG`). Independent of the data generator's box.
FIT_LIMITS_DEG: np.ndarray = _fit_limits_table()


def fit_limits_rad(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                   limits_deg: np.ndarray | torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitter's limits as flat pose vectors ``(lo, hi)``, each ``(72,)`` radians in SMPL pose
    layout (joint-major, then x, y, z).

    Args:
        limits_deg: a ``(24, 3, 2)`` table of degrees to use instead of :data:`FIT_LIMITS_DEG`
            (e.g. :data:`vhakit.data.joint_limits.JOINT_LIMITS_DEG` to compare with the
            generator's box).
    """
    table = FIT_LIMITS_DEG if limits_deg is None else limits_deg
    lim = torch.tensor(np.array(table, dtype=np.float64))  # a private copy
    if lim.shape != (24, 3, 2) or not bool((lim[..., 0] <= lim[..., 1]).all()):
        raise ValueError(f"limits_deg must be a (24, 3, 2) table of (lo, hi) degrees with lo <= "
                         f"hi, got shape {tuple(lim.shape)}")
    lim = torch.deg2rad(lim).to(device=device, dtype=dtype)
    return lim[..., 0].reshape(72), lim[..., 1].reshape(72)


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
        check_tensor(body_pose, "body_pose", ("B", self.dim), hint="; SMPL body poses in radians: "
                     "pass poses[:, 3:] to drop the global orientation")
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

    def save(self, path: str | Path, metadata: dict | None = None) -> None:
        """Write ``means``, ``precision_chol`` (float32) and ``weights`` to a compressed npz,
        with ``metadata`` (JSON-serialisable: the poses' source, settings) as a JSON string."""
        extra = {} if metadata is None else {"metadata": np.array(json.dumps(metadata,
                                                                            sort_keys=True))}
        np.savez_compressed(path, means=self.means.detach().cpu().float().numpy(),
                            precision_chol=self.precision_chol.detach().cpu().float().numpy(),
                            weights=self.weights.detach().cpu().double().numpy(), **extra)

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
            iters: int = 100, reg: float | torch.Tensor = 1e-4, tol: float = 1e-6,
            generator: torch.Generator | None = None) -> PoseGMM:
    """Fit a Gaussian mixture to poses with expectation-maximisation (float64 internally).

    E-step: responsibilities ``r_nk = w_k N(x_n|mu_k,Sigma_k) / sum_j w_j N(x_n|mu_j,Sigma_j)``.
    M-step: ``N_k = sum_n r_nk``, ``w_k = N_k / N``, ``mu_k = sum_n r_nk x_n / N_k``,
    ``Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + diag(reg)`` (diagonal: the
    diagonal).
    Stops when the mean log-likelihood improves by less than ``tol``.

    Args:
        body_poses: ``(N, D)`` radians (``D = 69`` for SMPL body poses); N >> K * D for "full".
        num_components: ``K`` (SMPLify uses 8).
        covariance: ``"full"`` or ``"diag"``.
        iters: maximum EM iterations.
        reg: variance floor added to every covariance, radians^2, one value or one per
            dimension ``(D,)`` (1e-4 = (0.57 deg)^2): it keeps components invertible on joints
            that never move in the data; a per-dimension floor can give such joints a broad
            variance instead of pinning them to their one value.
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
    floor = torch.as_tensor(reg, dtype=x.dtype, device=x.device)
    if floor.dim() > 1 or floor.numel() not in (1, D) or not bool((floor > 0).all()):
        raise ValueError(f"reg must be a positive float or a ({D},) tensor of positive "
                         f"variances (radians^2), got {reg!r}")
    eye = torch.diag(floor.expand(D))  # (D, D) variance floor
    cov = (x.T.cov() + eye).expand(num_components, D, D).clone()
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
            covs.append(ck / Nk[k] + eye)
        cov = torch.stack(covs)
        mean_ll = ll.mean().item()
        if mean_ll - prev < tol:
            break
        prev = mean_ll
    return PoseGMM.from_covariances(means, cov, weights).to(body_poses.device, body_poses.dtype)


def joint_limit_penalty(poses: torch.Tensor, limits_deg: np.ndarray | torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Hinge-squared joint-limit energy per frame, radians^2.

    ``E = sum_i relu(lo_i - theta_i)^2 + relu(theta_i - hi_i)^2`` over all pose components, with
    ``(lo, hi)`` from :func:`fit_limits_rad` (zero inside the box; the root's +-180 degree box
    never binds for normalised axis-angle).

    Args:
        poses: ``(B, 72)`` full SMPL pose, or ``(B, 69)`` body pose (root omitted), radians.
        limits_deg: optional ``(24, 3, 2)`` table instead of :data:`FIT_LIMITS_DEG`.
    Returns:
        ``(B,)``.
    """
    if not isinstance(poses, torch.Tensor) or poses.dim() != 2 or poses.shape[1] not in (69, 72):
        raise ValueError("poses must be a (B, 72) or (B, 69) torch.Tensor (SMPL axis-angle), got "
                         f"{getattr(poses, 'shape', type(poses).__name__)}")
    lo, hi = fit_limits_rad(poses.device, poses.dtype, limits_deg)
    if poses.shape[1] == 69:
        lo, hi = lo[3:], hi[3:]
    return (torch.relu(lo - poses) ** 2 + torch.relu(poses - hi) ** 2).sum(-1)


def pose_prior_metadata(path: str | Path | None = None) -> dict:
    """The ``metadata`` JSON of a GMM file (default: the shipped asset): where its poses came
    from (``"source"``, ``"clips"``, ``"num_poses"``), the EM settings and the build command.
    ``{}`` for a file saved without metadata."""
    path = Path(path) if path is not None else DEFAULT_GMM_PATH
    if not path.is_file():
        raise FileNotFoundError(f"pose prior {path} not found; build it with "
                                "`python data_scripts/build_pose_prior.py`")
    with np.load(path) as z:
        return json.loads(str(z["metadata"])) if "metadata" in z.files else {}


def default_pose_gmm(device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32,
                     path: str | Path | None = None) -> PoseGMM:
    """The kit's default body-pose GMM (``vhakit/assets/pose_gmm.npz``, 23 KB, ~1 ms to read),
    on ``device``/``dtype``. Raises ``FileNotFoundError`` with the build command when missing."""
    return PoseGMM.load(path if path is not None else DEFAULT_GMM_PATH).to(device, dtype)
