"""How well a vertex-heatmap autoencoder (VHA) reproduces everyday pose families.

A VHA is a pose prior: it should reproduce any plausible body, not only the motion it was trained
on. :func:`pose_family_report` measures its autoencoding error (MPVE, mm, over the 108 vertices)
family by family, on held-out clips:

==========================  ======================================================================
``sit`` ... ``lie``         procedural clips (:data:`FAMILY_ACTIONS`) of the Human3.6M-like *test*
                            subjects' bodies (S9, S11), drawn from their own seed stream
                            (``"pose_families"``): disjoint from ``prior_pool``'s random bodies and
                            from its seed stream.
``real mocap: floor``       the real DeepMimic clips that go to the floor (:data:`FLOOR_CLIPS`).
``prior_pool test``         the reference: the pool's own test part (what the VHA is trained for).
==========================  ======================================================================

The meshes are built and evaluated exactly as :func:`vhakit.training.vha.vha_test_sets` and
:func:`vhakit.training.vha.evaluate_vha` do (:class:`~vhakit.data.datasets.MeshDataset`, heatmaps
centred on the pelvis).
"""
from __future__ import annotations

import numpy as np
import torch

from vhakit._util import markdown_table
from vhakit.data.datasets import MeshDataset, mesh_arrays_from_params
from vhakit.data.procedural import make_clip
from vhakit.data.splits import SIZES, _seed, get_split, split_frames

__all__ = ["FAMILY_ACTIONS", "FLOOR_CLIPS", "REAL_FLOOR", "REFERENCE", "family_frames",
           "pose_family_datasets", "pose_family_report", "pose_family_table"]

#: Pose family -> the procedural action whose clips represent it.
FAMILY_ACTIONS: dict[str, str] = {"sit": "sit", "crouch": "crouch", "kneel": "kneel",
                                  "bend": "bend_pick_up", "reach": "reach", "lie": "lie"}
#: DeepMimic clips whose body goes to the floor (getting up, rolling, crawling).
FLOOR_CLIPS: tuple[str, ...] = ("getup_facedown", "getup_faceup", "roll", "crawl")
REAL_FLOOR = "real mocap: floor"  # report key of the DeepMimic floor clips
REFERENCE = "prior_pool test"  # report key of the reference row
CLIPS_PER_FAMILY = 4  # held-out clips per family, alternating the test subjects
FAMILY_STRIDE = 5  # keep every 5th frame of 30 fps motion (6 fps), as the benchmark splits do


def family_frames(family: str, frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Held-out frames of one pose family: ``poses (F, 72)``, ``betas (F, 10)``, ``transl (F, 3)``
    float64, grounded (lowest vertex on ``y = 0``), ``F = frames``.

    ``CLIPS_PER_FAMILY`` clips of :data:`FAMILY_ACTIONS` ``[family]`` at 6 fps, alternating the
    bodies of the ``h36m_like`` test subjects; each clip's randomness comes from the seed stream
    ``("pose_families", family, clip index)``, which no split uses.
    """
    if family not in FAMILY_ACTIONS:
        raise ValueError(f"family must be one of {list(FAMILY_ACTIONS)}, got {family!r}")
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    from vhakit.body.model import BodyModel

    body = BodyModel.open()
    subjects = get_split("h36m_like").test_subjects
    clips = min(CLIPS_PER_FAMILY, frames)
    out: dict[str, list] = {"poses": [], "betas": [], "transl": []}
    for i in range(clips):
        n = frames // clips + (i < frames % clips)  # (frames,) split as evenly as possible
        gen = torch.Generator().manual_seed(_seed(seed, "pose_families", family, str(i)))
        clip = make_clip(FAMILY_ACTIONS[family], n, 30.0 / FAMILY_STRIDE, gen,
                         betas=np.array(subjects[i % len(subjects)].betas), body_model=body)
        out["poses"].append(clip.poses)
        out["betas"].append(np.broadcast_to(clip.betas, (n, 10)))
        out["transl"].append(clip.transl)
    return {k: np.concatenate(v) for k, v in out.items()}


def _mesh_dataset(body, fr: dict[str, np.ndarray]) -> MeshDataset:
    arrays = {k: np.asarray(fr[k], np.float32) for k in ("poses", "betas", "transl")}
    arrays.update(mesh_arrays_from_params(body, arrays["poses"], arrays["betas"],
                                          arrays["transl"]))
    return MeshDataset(arrays)


def pose_family_datasets(families: tuple[str, ...] | None = None, frames_per_family: int = 64,
                         seed: int = 0, reference_size: str = "tiny") -> dict[str, MeshDataset]:
    """The report's test sets, in report order: one :class:`MeshDataset` per family, then
    :data:`REAL_FLOOR` (DeepMimic floor clips at the ``real_mocap`` stride of
    ``reference_size``) and :data:`REFERENCE` (``prior_pool`` test part of ``reference_size``,
    ``seed``)."""
    from vhakit.body.model import BodyModel

    families = tuple(FAMILY_ACTIONS) if families is None else tuple(families)
    if reference_size not in SIZES:
        raise ValueError(f"reference_size must be one of {SIZES}, got {reference_size!r}")
    body = BodyModel.open()
    sets = {f: _mesh_dataset(body, family_frames(f, frames_per_family, seed)) for f in families}
    mocap = split_frames("real_mocap", "test", size=reference_size)
    keep = np.isin(mocap["action"], FLOOR_CLIPS)
    sets[REAL_FLOOR] = _mesh_dataset(body, {k: mocap[k][keep] for k in ("poses", "betas",
                                                                        "transl")})
    sets[REFERENCE] = MeshDataset.from_split("prior_pool", "test", size=reference_size,
                                             seed=seed, body=body)
    return sets


def pose_family_report(vha: torch.nn.Module, families: tuple[str, ...] | None = None,
                       frames_per_family: int = 64, seed: int = 0,
                       reference_size: str = "tiny", batch_size: int = 32
                       ) -> dict[str, dict[str, float]]:
    """Autoencoding error of ``vha`` per pose family.

    Args:
        vha: a :class:`~vhakit.models.vha.VHA` (e.g. ``load_pretrained("vha")``).
        families: keys of :data:`FAMILY_ACTIONS` (default: all, in that order).
        frames_per_family: held-out frames per family (a few hundred give a stable mean).
        seed: motion randomness of the family clips and the reference's seed.
        reference_size: size of the ``real_mocap`` and ``prior_pool`` rows (``"tiny"``,
            ``"teaching"``, ``"full"``).
    Returns:
        ``{family: {"mpve_mm": float, "frames": int}}`` for each family, then
        :data:`REAL_FLOOR` and :data:`REFERENCE`; MPVE of the decoded vertices V in mm.
    """
    from vhakit.training.vha import evaluate_vha

    sets = pose_family_datasets(families, frames_per_family, seed, reference_size)
    res = evaluate_vha(vha, sets, batch_size=batch_size)
    return {k: {"mpve_mm": r["mpve_mm"], "frames": int(r["frames"])} for k, r in res.items()}


def pose_family_table(report: dict[str, dict[str, float]]) -> str:
    """A markdown table of a :func:`pose_family_report`: family, frames, MPVE and its ratio to
    the :data:`REFERENCE` row (when present)."""
    ref = report.get(REFERENCE, {}).get("mpve_mm")
    return markdown_table(["pose family", "frames", "MPVE (mm)", "/ reference"],
                          [[name, str(r["frames"]), f"{r['mpve_mm']:.1f}",
                            f"{r['mpve_mm'] / ref:.2f}" if ref else "-"]
                           for name, r in report.items()])
