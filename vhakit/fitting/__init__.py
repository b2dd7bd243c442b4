"""SMPL fitting to the 108 predicted vertices: :func:`fit_smpl` and :class:`FitConfig`,
the optimisers (``optim``), the pose prior (``pose_prior``) and the fitting
experiments (``analysis``).
"""
from __future__ import annotations

from vhakit.fitting.fit import FitConfig, FitResult, fit_energy, fit_smpl, procrustes_init

__all__ = ["FitConfig", "FitResult", "fit_smpl", "procrustes_init", "fit_energy"]
