"""The body model: :class:`BodyModel` (the open Anny-built SMPL or licensed SMPL files),
joint names and parents, loading licensed files safely, the 108-vertex subsampling and
subset LBS (the 108 vertices only, for fitting).
"""
from __future__ import annotations

from vhakit.body.model import (
    H36M_JOINT_NAMES,
    H36M_REGRESSOR_ENV,
    JOINT_NAMES,
    OPEN_MODEL_PATH,
    SMPL_PARENTS,
    BodyModel,
    BodyOutput,
    h36m_regressor,
    smpl_available,
)

__all__ = ["JOINT_NAMES", "SMPL_PARENTS", "BodyOutput", "BodyModel", "smpl_available",
           "OPEN_MODEL_PATH", "H36M_JOINT_NAMES", "H36M_REGRESSOR_ENV", "h36m_regressor"]
