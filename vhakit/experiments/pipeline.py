"""One experiment, end to end: data -> VHA -> BCP (or the baseline) -> reconstruction -> SMPL
fitting -> metrics. The demo, ``vhakit evaluate`` and the ablation sweeps (Tables 1 and 2) all run
through :func:`run_experiment`, so there is one place where the method is wired together.

Contract (agreed between the BCP, tables and teaching work; keep the names):

- :class:`ExperimentSpec`: a frozen dataclass describing one run; :meth:`ExperimentSpec.key` is a
  stable short hash of its fields, used as the cache folder name.
- ``run_experiment(spec, cache_dir, progress=True) -> dict[str, dict[str, float]]``: trains what
  is missing (reusing cached data sets, VHA and BCP/baseline checkpoints under ``cache_dir``),
  evaluates on every split of ``spec.test_splits`` and returns
  ``{test_split: {"mpjpe_mm", "mpve_mm", "angle_deg", "mpve108_mm", "pa_mpjpe_mm",
  "mpjpe17_mm", "pa_mpjpe17_mm", "num_frames"}: float}`` (``mpve108_mm``: the 108 predicted
  vertices before fitting; ``*17``: the 17 Human3.6M joints, the others SMPL's 24 joints).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vhakit._util import check_shape, write_json_atomic
from vhakit.runtime import fast_mode

__all__ = ["ExperimentSpec", "Budget", "BUDGETS", "get_budget", "run_experiment", "METRIC_NAMES",
           "training_plan", "predictor_plan", "vha_plan", "labelled_indices", "vha_key",
           "vha_dir", "vha_training_sets", "training_record",
           "PREDICTION_NOISE_STD_M", "prediction_fit_config", "eval_hash", "evaluate_vertices",
           "PREDICTION_NOISE_CANDIDATES_M", "VALIDATION_SUBJECTS", "validation_indices",
           "check_validation_frames", "tune_prediction_noise",
           "recipe_hash", "run_tag", "train_predictor", "eval_dataset", "load_predictor",
           "evaluate_run", "data_root", "train_subset_indices", "fast_mode"]

METRIC_NAMES = ("mpjpe_mm", "pa_mpjpe_mm", "mpve_mm", "angle_deg", "mpve108_mm")


@dataclass(frozen=True)
class ExperimentSpec:
    """One training + evaluation run.

    Attributes:
        method: ``"vha_bcp"`` (the paper's method) or ``"baseline"`` (LMT-style, no prior).
        preset: model/data preset, ``"tiny"`` | ``"teaching"`` | ``"paper"``.
        train_split: split whose train part trains BCP / the baseline.
        train_fraction: fraction of that train part used (data-efficiency curve), in (0, 1].
        test_splits: splits whose test part is evaluated (``real_mocap``: all of it).
        use_vertex_loss, use_code_loss, init_from_vha: Table 1's switches (BCP only).
        vha_prior: ``"pool"``: VHA trained on the broad ``prior_pool`` plus the train split's
            poses (the paper's AMASS rows); ``"train_only"``: VHA sees only the train split.
            Either way the prior sees only the labelled frames BCP trains on (the
            ``train_fraction`` subset, :func:`vha_training_sets`), never the rest of the split.
        vha_per_seed: True: the VHA is trained with ``seed`` too, one prior per seed, so the
            spread over seeds includes the prior's own variance (what a claim about the method
            needs: every BCP decodes through its prior's frozen decoder). False: every seed
            uses the prior trained with seed 0 (one pretrained prior, as in the paper; seeds
            then measure BCP alone). :func:`vha_key` names the prior a run uses.
        seed: seeds data order, initialisation and augmentation (and the VHA, see above).
    """

    method: Literal["vha_bcp", "baseline"] = "vha_bcp"
    preset: str = "teaching"
    train_split: str = "h36m_like"
    train_fraction: float = 1.0
    test_splits: tuple[str, ...] = ("h36m_like",)
    use_vertex_loss: bool = True
    use_code_loss: bool = True
    init_from_vha: bool = True
    vha_prior: Literal["pool", "train_only"] = "pool"
    vha_per_seed: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("vha_bcp", "baseline"):
            raise ValueError(f"method must be 'vha_bcp' or 'baseline', got {self.method!r}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.vha_prior not in ("pool", "train_only"):
            raise ValueError(f"vha_prior must be 'pool' or 'train_only', got {self.vha_prior!r}")
        if self.method == "vha_bcp" and not (self.use_vertex_loss or self.use_code_loss):
            raise ValueError("BCP needs at least one of use_vertex_loss / use_code_loss")
        if not isinstance(self.vha_per_seed, bool):
            raise TypeError(f"vha_per_seed must be True or False, got {self.vha_per_seed!r}")
        object.__setattr__(self, "test_splits", tuple(self.test_splits))

    def key(self) -> str:
        """A stable 12-hex-digit hash of the fields (the run's cache folder name)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]

    def model_key(self) -> str:
        """:meth:`key` of the trained model: the same for specs that differ only in
        ``test_splits`` (what is evaluated does not change what is trained), so Table 1's full
        row, Table 2's in-domain/cross runs and the 100 % point of the data-efficiency curve
        share one training. It is the key of the spec with the default ``test_splits``, so
        models cached before it existed are found under their old names."""
        return replace(self, test_splits=ExperimentSpec.test_splits).key()

    @property
    def vha_seed(self) -> int:
        """The seed of the VHA this run decodes through: ``seed``, or 0 when the prior is shared
        (``vha_per_seed=False``)."""
        return self.seed if self.vha_per_seed else 0


def data_root() -> Path:
    """Where built data sets are cached: ``$VHAKIT_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("VHAKIT_DATA_DIR", "data"))


@dataclass(frozen=True)
class Budget:
    """How long each stage trains and how many frames are evaluated per test split.

    BCP and the baseline train ``max(ceil(epochs * steps_per_epoch), min_steps)`` optimiser
    steps, where ``steps_per_epoch = frames // batch_size`` (the trainer drops the last partial
    batch): ``epochs`` passes over their own training frames, but at least ``min_steps``
    updates. Every point of the data-efficiency curve thus trains as long as its size needs
    (the full set for its epochs, a 3 % subset for the floor) instead of one step count for all
    sizes; :func:`training_plan` computes it and each run records it. ``epochs`` 0: the
    preset's own epochs.

    The VHA trains ``vha_steps`` steps (0: the preset's ``max_steps`` / epochs): with
    ``vha_prior="pool"`` its data is mostly ``prior_pool``, whose size is the same for every
    point of the curve.
    """

    data_preset: str = "tiny"
    vha_steps: int = 0
    epochs: float = 0.0
    min_steps: int = 0
    eval_frames: int = 0  # 0 = all
    max_frames: int = 0  # build only the first frames of each data set (0 = all; fast mode)
    overrides: dict = field(default_factory=dict)  # {"vha"|"bcp"|"baseline": {field: value}}

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.min_steps < 0 or self.vha_steps < 0:
            raise ValueError(f"epochs, min_steps and vha_steps must be >= 0, got {self.epochs}, "
                             f"{self.min_steps}, {self.vha_steps}")


# The tiny VHA model preset is one-hot / constant lr (its unit tests pin that); experiments train it
# with the teaching recipe, which reaches 94 mm on h36m_like test in 300 steps against ~210 mm.
_TINY_VHA_RECIPE = {"input_encoding": "gaussian", "beta": 20.0, "lr": 4e-3,
                    "lr_schedule": "cosine", "warmup_steps": 30}

BUDGETS: dict[str, Budget] = {
    # h36m_like train: 210 frames at batch 2 -> 630 steps (6 epochs); lightstage_like 150 -> 450;
    # the curve's 30 / 10 / 3 % subsets (63 / 21 / 6 frames) reach the 300-step floor (9.5 / 30 /
    # 100 epochs).
    "tiny": Budget("tiny", vha_steps=600, epochs=6.0, min_steps=300,
                   overrides={"vha": _TINY_VHA_RECIPE}),
    # The VHA ~10 min (preset: 1000 steps); h36m_like train 2100 frames at batch 3 -> 1400 steps
    # (2 epochs, the preset's own; ~7 min per BCP / baseline run on 2 cores at 9-10 samples/s);
    # 30 / 10 / 3 % reach the 600-step floor (2.9 / 8.6 / 29 epochs).
    "teaching": Budget("teaching", vha_steps=0, epochs=2.0, min_steps=600, eval_frames=300),
    # The paper's 20 epochs; the floor is a guess for the curve's small subsets (the kit does not
    # run the paper preset's sweeps).
    "paper": Budget("paper", epochs=20.0, min_steps=10_000),
    "fast": Budget("tiny", vha_steps=20, epochs=0.2, min_steps=10, eval_frames=12,
                   max_frames=48, overrides={"vha": _TINY_VHA_RECIPE}),
}


def get_budget(preset: str) -> Budget:
    """The budget of a model preset; ``VHAKIT_FAST=1`` swaps in the seconds-long ``fast`` one."""
    if fast_mode():
        return BUDGETS["fast"]
    if preset not in BUDGETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of tiny, teaching, paper")
    return BUDGETS[preset]


def recipe_hash(preset: str, stage: str | None = None) -> str:
    """6 hex digits over everything that shapes a run besides its spec: the preset's model and
    training settings of all three stages, the budget and the data preset. Cached runs live in
    folders named with it, so editing a preset never silently reuses stale checkpoints.
    ``stage="vha"``: only what shapes the VHA (its settings, steps, data), so a change to BCP's
    settings does not retrain the prior. Budget fields left at None are omitted (adding an
    optional field keeps the old hashes)."""
    from vhakit.config import get_preset

    stages = get_preset(preset)
    budget = {k: v for k, v in asdict(get_budget(preset)).items() if v is not None}
    if stage == "vha":
        content = {"vha": stages.get("vha"), "vha_overrides": budget["overrides"].get("vha"),
                   **{k: budget[k] for k in ("data_preset", "vha_steps", "max_frames")}}
    elif stage is None:
        content = {"stages": {k: stages.get(k) for k in ("vha", "bcp", "baseline")},
                   "budget": budget}
    else:
        raise ValueError(f"stage must be None or 'vha', got {stage!r}")
    blob = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:6]


def prediction_fit_config():
    """The :class:`~vhakit.fitting.FitConfig` used to fit SMPL to predicted vertices:
    FitConfig's defaults with the data term's scale and the restart threshold matched to a
    prediction's error, :func:`~vhakit.fitting.analysis.noise_matched_config` of
    :data:`PREDICTION_NOISE_STD_M`.

    That one setting is tuned on validation frames, never on test frames: the frames of the
    training split's :data:`VALIDATION_SUBJECTS`, reconstructed by a predictor trained on the
    other training subjects, fitted with each of :data:`PREDICTION_NOISE_CANDIDATES_M`
    (:func:`tune_prediction_noise`; ``benchmarks/tune_prediction_fit.py`` runs it all, and
    ``docs/conventions.md``, "Fitting prior and tuning", records the measurement)."""
    from vhakit.fitting.analysis import noise_matched_config

    return noise_matched_config(PREDICTION_NOISE_STD_M)


# How the evaluation fits SMPL to *predicted* vertices: the data term's scale and the restart
# threshold matched to a prediction's error (per-coordinate std s: data scale sqrt(3) s, restarts
# above 2 sqrt(3) s) instead of FitConfig's 1 cm, which suits clean vertices: with it the fit
# restarts nearly every frame from all GMM means and lets noise bend the limbs. s is what
# tune_prediction_noise chose on h36m_like's validation subject (benchmarks/tune_prediction_fit.py,
# tiny preset; docs/conventions.md has the table).
PREDICTION_NOISE_STD_M = 0.04
#: The per-coordinate noise levels (metres) :func:`tune_prediction_noise` tries; 0 = FitConfig's
#: defaults. They stop at 4 cm: a heavier prior lowers the tiny predictor's validation error a
#: little further (MPJPE17 65.5 -> 64.2 mm at 12 cm) but biases the fit of good predictions (the
#: exact vertices of h36m_like test: 4.9 degrees at 4 cm, 8.5 at 12 cm), which would favour weak
#: models in the tables.
PREDICTION_NOISE_CANDIDATES_M = (0.0, 0.01, 0.02, 0.03, 0.04)
#: Training subjects held out of each split's train part to tune the evaluation's settings (a
#: predictor trained on the other training subjects reconstructs their frames). Never test
#: subjects.
VALIDATION_SUBJECTS = {"h36m_like": ("S8",), "lightstage_like": ("LS5",)}


def validation_indices(names, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``split``'s train part held out for tuning, and the frames left to train on.

    Args:
        names: the per-frame names of the train part (``"<split>/<subject>/<action>/<frame>"``,
            e.g. ``MultiViewDataset.names``).
        split: a split with :data:`VALIDATION_SUBJECTS`.
    Returns:
        ``(validation, rest)`` int64 index arrays, sorted: the frames of the validation
        subjects and all other frames.
    """
    if split not in VALIDATION_SUBJECTS:
        raise ValueError(f"split {split!r} has no validation subjects; choose one of "
                         f"{sorted(VALIDATION_SUBJECTS)}")
    held = {f"{split}/{s}" for s in VALIDATION_SUBJECTS[split]}
    is_val = np.array(["/".join(str(n).split("/")[:2]) in held for n in names], dtype=bool)
    if not is_val.any():
        raise ValueError(f"no frame of the validation subjects {VALIDATION_SUBJECTS[split]} "
                         f"among the {len(names)} names (e.g. {list(names[:1])}); pass the names "
                         f"of {split!r}'s train part")
    return np.flatnonzero(is_val), np.flatnonzero(~is_val)


def check_validation_frames(dataset) -> None:
    """Raise ``ValueError`` unless every frame of ``dataset`` is a validation frame: a frame of
    a :data:`VALIDATION_SUBJECTS` subject of a split's train part (by its name; a dataset
    folder's ``meta.json`` must also say ``part: train``). Test frames, and training frames a
    predictor learnt from, must never tune the evaluation."""
    from vhakit.data.splits import SPLITS
    from vhakit.data.store import read_meta

    root = getattr(dataset, "root", None)
    if root is not None and read_meta(root).get("part") != "train":
        raise ValueError(f"{root} holds the {read_meta(root).get('part')!r} part of its split; "
                         "tune on validation frames of the train part (validation_indices)")
    for name in dataset.names:
        split, subject = (str(name).split("/") + ["", ""])[:2]
        spec = SPLITS.get(split)
        if spec is None or spec.kind != "procedural":
            raise ValueError(f"frame {name!r} is not from a split with validation subjects "
                             f"{sorted(VALIDATION_SUBJECTS)}: cannot tell that it is not a test "
                             "frame; tune on validation_indices(...) of a train part")
        if subject not in {s.name for s in spec.train_subjects}:
            raise ValueError(f"frame {name!r} is a test frame (subject {subject} of {split}'s "
                             f"test part); tune on the validation subjects "
                             f"{VALIDATION_SUBJECTS.get(split)} of the train part instead")
        if subject not in VALIDATION_SUBJECTS.get(split, ()):
            raise ValueError(f"frame {name!r} is a training frame outside the validation "
                             f"subjects {VALIDATION_SUBJECTS.get(split)}: a predictor trained "
                             "on it flatters the tuning")


def tune_prediction_noise(pred108: torch.Tensor, dataset, body=None,
                          candidates=PREDICTION_NOISE_CANDIDATES_M,
                          criterion: str = "mpjpe17_mm") -> dict:
    """Pick the fitting's noise level (:data:`PREDICTION_NOISE_STD_M`) on validation frames.

    Fits SMPL to ``pred108`` with :func:`~vhakit.fitting.analysis.noise_matched_config` of every
    candidate and applies the one-standard-error rule to ``criterion`` (per frame): among the
    candidates whose mean lies within one standard error of the best one's (the s.e. of the
    per-frame differences to the best), the smallest noise level wins, i.e. the least
    regularised fit that the validation frames cannot tell from the best.

    Args:
        pred108: ``(F, 108, 3)`` metres: a predictor's output on ``dataset``'s frames; the
            predictor must not have trained on them.
        dataset: validation frames only (:func:`check_validation_frames`; test frames raise).
        candidates: per-coordinate noise levels, metres.
        criterion: a key of :func:`evaluate_vertices`' summary.
    Returns:
        ``{"noise_std_m": chosen, "best_noise_std_m": lowest mean, "criterion", "frames":
        [names], "table": {noise: summary}, "se": {noise: s.e. of the difference to the best}}``.
    """
    from vhakit.fitting.analysis import noise_matched_config

    check_validation_frames(dataset)
    runs = {float(c): evaluate_vertices(pred108, dataset, body,
                                        fit_config=noise_matched_config(float(c)))
            for c in candidates}
    table = {c: summary for c, (summary, _) in runs.items()}
    if criterion not in next(iter(table.values())):
        raise ValueError(f"criterion {criterion!r} is not a metric of evaluate_vertices; "
                         f"choose one of {sorted(next(iter(table.values())))}")
    best = min(table, key=lambda c: table[c][criterion])
    per = {c: np.asarray(d.get("per_frame", {}).get(criterion, [table[c][criterion]]),
                         np.float64) for c, (_, d) in runs.items()}
    se = {c: float(np.std(per[c] - per[best], ddof=1) / np.sqrt(len(per[c])))
          if len(per[c]) > 1 else 0.0 for c in per}
    chosen = min(c for c in table if table[c][criterion] - table[best][criterion] <= se[c])
    return {"noise_std_m": chosen, "best_noise_std_m": best, "criterion": criterion,
            "frames": list(dataset.names), "table": table, "se": se}


def eval_hash() -> str:
    """4 hex digits over the evaluation: the fitting settings, the fitter's prior (the GMM
    asset's bytes and the joint-limit table) and the reported joint sets (part of
    :func:`run_tag`)."""
    from vhakit.fitting.pose_prior import DEFAULT_GMM_PATH, FIT_LIMITS_DEG

    content = {"fit": asdict(prediction_fit_config()),
               "gmm": hashlib.sha1(DEFAULT_GMM_PATH.read_bytes()).hexdigest(),
               "limits": FIT_LIMITS_DEG.round(6).tolist(), "joint_sets": ("smpl24", "h36m17")}
    blob = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:4]


def run_tag(spec: ExperimentSpec) -> str:
    """The cache folder name of ``spec``'s result:
    ``[fast-]<spec.key()>-<recipe_hash>-<eval_hash>`` (a change of the fitting settings
    re-evaluates cached models without retraining them)."""
    return f"{'fast-' if fast_mode() else ''}{spec.key()}-{recipe_hash(spec.preset)}-{eval_hash()}"


def train_subset_indices(num_frames: int, fraction: float, seed: int = 0) -> np.ndarray:
    """The frames kept when training on ``fraction`` of a set: a prefix of one fixed random
    permutation, so smaller subsets are nested in larger ones (a fair data-efficiency curve)."""
    perm = np.random.default_rng(seed).permutation(num_frames)
    keep = max(1, int(round(fraction * num_frames)))
    return np.sort(perm[:keep])


def labelled_indices(spec: ExperimentSpec, num_frames: int) -> np.ndarray:
    """The frames of ``spec.train_split``'s train part that the run may learn from, BCP /
    baseline and prior alike: :func:`train_subset_indices` of ``spec.train_fraction``."""
    return train_subset_indices(num_frames, spec.train_fraction)


def training_plan(num_frames: int, batch_size: int, epochs: float, min_steps: int = 0,
                  max_steps: int = 0) -> dict:
    """How long a stage trains on ``num_frames`` frames at ``batch_size``.

    ``steps = max(ceil(epochs * steps_per_epoch), min_steps)``, capped at ``max_steps`` when
    it is > 0, with ``steps_per_epoch = num_frames // batch_size`` (the trainer drops the last
    partial batch). Returns ``{"frames", "batch_size", "steps_per_epoch", "steps", "epochs"
    (the passes the steps make), "samples" (steps * batch_size)}``.

    >>> training_plan(6, 2, epochs=6, min_steps=300)["epochs"]
    100.0
    """
    steps_per_epoch = num_frames // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"num_frames ({num_frames}) is less than one batch of {batch_size}; "
                         "use a larger train_fraction or a smaller batch_size")
    steps = max(math.ceil(round(epochs * steps_per_epoch, 6)), min_steps)
    if max_steps:
        steps = min(steps, max_steps)
    return {"frames": int(num_frames), "batch_size": int(batch_size),
            "steps_per_epoch": int(steps_per_epoch), "steps": int(steps),
            "epochs": steps / steps_per_epoch, "samples": int(steps * batch_size)}


def predictor_plan(spec: ExperimentSpec, budget: Budget, num_frames: int) -> dict:
    """:func:`training_plan` of ``spec``'s BCP or baseline on ``num_frames`` frames under
    ``budget`` (batch size from the preset and the budget's overrides)."""
    from vhakit.config import baseline_configs, bcp_configs

    stage = "bcp" if spec.method == "vha_bcp" else "baseline"
    make = bcp_configs if stage == "bcp" else baseline_configs
    train = make(spec.preset, **budget.overrides.get(stage, {})).train
    return training_plan(num_frames, train.batch_size, budget.epochs or train.epochs,
                         budget.min_steps)


def vha_plan(spec: ExperimentSpec, budget: Budget, num_frames: int) -> dict:
    """:func:`training_plan` of ``spec``'s VHA on ``num_frames`` frames: ``budget.vha_steps``
    steps, or the preset's own ``max_steps`` / epochs."""
    from vhakit.config import vha_configs

    train = vha_configs(spec.preset, **budget.overrides.get("vha", {})).train
    if budget.vha_steps:
        return training_plan(num_frames, train.batch_size, 0.0, min_steps=budget.vha_steps)
    return training_plan(num_frames, train.batch_size, train.epochs,
                         max_steps=train.max_steps)


def _steps(n: int) -> dict:
    return {"max_steps": n, "epochs": 10_000} if n else {}


def _curve(eval_data, eval_every: int) -> dict:
    """The keyword arguments of a training run that records a test curve (none without data)."""
    return {} if eval_data is None else {"eval_data": eval_data, "eval_every": int(eval_every)}


def _read_done(folder: Path) -> dict:
    """A trained stage's ``done.json`` ({} when absent or unreadable)."""
    try:
        done = json.loads((folder / "done.json").read_text())
    except (OSError, ValueError):
        return {}
    return done if isinstance(done, dict) else {}


def _dataset(budget: Budget, split: str, part: str, progress: bool) -> Path:
    from vhakit.data.build import ensure_dataset

    part = "test" if split == "real_mocap" else part
    if budget.max_frames:  # a cut-down copy, kept apart from the complete data sets
        return ensure_dataset(budget.data_preset, split, part, seed=0, progress=progress,
                              root=data_root() / f"first{budget.max_frames}",
                              max_frames=budget.max_frames)
    return ensure_dataset(budget.data_preset, split, part, seed=0, root=data_root(),
                          progress=progress)


def vha_key(spec: ExperimentSpec) -> str | None:
    """The name of the prior ``spec`` decodes through, e.g. ``"tiny-pool-h36m_like-s1"``
    (``-f0.03`` before the seed for a subset of the train split): runs with the same key share
    one trained VHA. None for the baseline, which has no prior."""
    if spec.method != "vha_bcp":
        return None
    subset = "" if spec.train_fraction == 1.0 else f"-f{spec.train_fraction:g}"
    return f"{spec.preset}-{spec.vha_prior}-{spec.train_split}{subset}-s{spec.vha_seed}"


def vha_dir(spec: ExperimentSpec, cache_dir: str | os.PathLike) -> Path:
    """The cache folder of ``spec``'s VHA under ``cache_dir``:
    ``vha-<vha_key>-<recipe_hash(preset, "vha")>``."""
    if spec.method != "vha_bcp":
        raise ValueError(f"spec.method is {spec.method!r}; only 'vha_bcp' runs have a VHA")
    return Path(cache_dir) / f"vha-{vha_key(spec)}-{recipe_hash(spec.preset, 'vha')}"


def vha_training_sets(spec: ExperimentSpec, budget: Budget, progress: bool = True) -> dict:
    """The mesh sets ``spec``'s VHA trains on, ``{name: MeshDataset}``: ``prior_pool`` (when
    ``vha_prior="pool"``; unlabelled poses, like the paper's AMASS) and the labelled frames of
    ``spec.train_split`` that BCP trains on (:func:`labelled_indices`): a prior for a 3 % point
    of the curve sees the pool and that 3 %, never the frames held out of it."""
    from vhakit.data.datasets import MeshDataset

    meshes = MeshDataset.from_dir(_dataset(budget, spec.train_split, "train", progress))
    if spec.train_fraction < 1.0:
        meshes = meshes.subset(labelled_indices(spec, len(meshes)))
    sets = {spec.train_split: meshes}
    if spec.vha_prior == "pool":
        sets = {"prior_pool": MeshDataset.from_dir(_dataset(budget, "prior_pool", "train",
                                                            progress)), **sets}
    return sets


def train_or_load_vha(spec: ExperimentSpec, cache_dir: Path, budget: Budget, progress: bool,
                      eval_data=None, eval_every: int = 0):
    """The VHA of ``spec`` (trained once per :func:`vha_key`, then cached in :func:`vha_dir`).
    ``eval_data`` (a dataset of ``vertices108``/``pelvis`` dicts) is evaluated every
    ``eval_every`` steps of a new run (the learning curve in its ``metrics.csv``)."""
    from torch.utils.data import ConcatDataset

    from vhakit.training.vha import load_vha, train_vha

    out = vha_dir(spec, cache_dir)
    if (out / "done.json").exists():
        return load_vha(out, device="cpu"), out
    sets = vha_training_sets(spec, budget, progress)
    data = ConcatDataset(list(sets.values())) if len(sets) > 1 else next(iter(sets.values()))
    plan = vha_plan(spec, budget, len(data))
    t0 = time.perf_counter()
    res = train_vha(spec.preset, data, out, resume=True, progress=progress, seed=spec.vha_seed,
                    **_steps(budget.vha_steps), **budget.overrides.get("vha", {}),
                    **_curve(eval_data, eval_every))
    write_json_atomic(out / "done.json", {"seconds": time.perf_counter() - t0, "frames": len(data),
                                    "sets": {k: len(v) for k, v in sets.items()},
                                    "key": vha_key(spec), "plan": plan})
    return res.model.cpu().eval(), out


def train_predictor(spec: ExperimentSpec, cache_dir: Path, budget: Budget, progress: bool,
                    vha=None, eval_data=None, evals_per_epoch: int = 1):
    """The BCP or baseline of ``spec`` (trained for :func:`predictor_plan`'s steps, cached in
    ``cache_dir/<method>-<model_key>-<recipe_hash>`` with the plan in its ``done.json``).
    ``vha``: a trained :class:`~vhakit.models.vha.VHA` the BCP builds on instead of the one of
    :func:`train_or_load_vha` (the caller then names the run folder apart, e.g. ``cache_dir``).
    ``eval_data`` (a :class:`~vhakit.data.datasets.MultiViewDataset`) is evaluated
    ``evals_per_epoch`` times per epoch of a new run: the learning curve in ``metrics.csv``."""
    from vhakit.data.datasets import MultiViewDataset
    from vhakit.training.bcp import load_baseline, load_bcp, train_baseline, train_bcp

    out = cache_dir / f"{spec.method}-{spec.model_key()}-{recipe_hash(spec.preset)}"
    loader = load_bcp if spec.method == "vha_bcp" else load_baseline
    if (out / "done.json").exists():
        return loader(out, device="cpu"), out
    train = MultiViewDataset(_dataset(budget, spec.train_split, "train", progress))
    if spec.train_fraction < 1.0:
        train = train.subset(labelled_indices(spec, len(train)))
    plan = predictor_plan(spec, budget, len(train))
    eval_every = max(1, plan["steps_per_epoch"] // max(1, int(evals_per_epoch)))
    if vha is None and spec.method == "vha_bcp":
        vha = train_or_load_vha(spec, cache_dir, budget, progress)[0]
    t0 = time.perf_counter()  # the predictor's own training time (the VHA records its own)
    if spec.method == "vha_bcp":
        res = train_bcp(spec.preset, train, vha, out, resume=True, progress=progress,
                        use_vertex_loss=spec.use_vertex_loss, use_code_loss=spec.use_code_loss,
                        init_from_vha=spec.init_from_vha, seed=spec.seed,
                        **{**budget.overrides.get("bcp", {}), **_steps(plan["steps"])},
                        **_curve(eval_data, eval_every))
    else:
        res = train_baseline(spec.preset, train, out, resume=True, progress=progress,
                             seed=spec.seed,
                             **{**budget.overrides.get("baseline", {}), **_steps(plan["steps"])},
                             **_curve(eval_data, eval_every))
    write_json_atomic(out / "done.json", {"seconds": time.perf_counter() - t0, "frames": len(train),
                                    "plan": plan})
    return res.model.cpu().eval(), out


def training_record(spec: ExperimentSpec, models_dir: str | os.PathLike) -> dict:
    """What ``spec``'s run trained, from the ``done.json`` files under ``models_dir``:
    ``{"predictor": {...}, "vha": {...} | None}``, each with ``plan`` (:func:`training_plan`:
    steps, epochs, samples seen), ``frames`` and ``seconds``; the VHA's also with its ``key``
    (:func:`vha_key`) and ``sets`` (frames per mesh set)."""
    models_dir = Path(models_dir)
    folder = models_dir / f"{spec.method}-{spec.model_key()}-{recipe_hash(spec.preset)}"
    out = {"predictor": {"folder": folder.name, **_read_done(folder)}, "vha": None}
    if spec.method == "vha_bcp":
        vdir = vha_dir(spec, models_dir)
        out["vha"] = {"folder": vdir.name, **_read_done(vdir), "key": vha_key(spec)}
    return out


def evaluate_vertices(pred108: torch.Tensor, dataset, body=None, fit: bool = True,
                      fit_config=None, h36m_regressor: str | os.PathLike | None = None
                      ) -> tuple[dict[str, float], dict]:
    """Metrics of predicted 108 vertices against a dataset's ground truth.

    Args:
        pred108: ``(F, 108, 3)`` metres, in the dataset's frame order.
        dataset: a :class:`~vhakit.data.datasets.MeshDataset` (or multi-view) of F frames.
        body: the body model (default the open one).
        fit: fit SMPL to the prediction (needed for MPJPE / MPVE / angle).
        fit_config: a :class:`~vhakit.fitting.FitConfig`; default
            :func:`prediction_fit_config` (tuned on validation frames).
        h36m_regressor: the official ``J_regressor_h36m.npy`` for licensed SMPL; default
            ``$VHAKIT_H36M_REGRESSOR`` for SMPL bodies, else the documented mesh equivalent
            (:func:`vhakit.body.h36m_regressor`).
    Returns:
        ``(summary, details)``: summary ``{metric: mean}`` with ``mpve108_mm`` and, when fitting,
        ``mpjpe_mm`` (pelvis-aligned, SMPL's 24 joints), ``pa_mpjpe_mm`` (24 joints),
        ``mpjpe17_mm`` and ``pa_mpjpe17_mm`` (the 17 Human3.6M joints regressed from each mesh,
        rooted at their pelvis, joint 0), ``mpve_mm`` (full mesh, pelvis-aligned), ``angle_deg``
        (local rotations, 24 joints); details holds per-frame arrays, the fitted ``vertices``,
        ``poses`` and ``joints17_source`` (which 17-joint regressor).
    """
    from vhakit.body.model import BodyModel
    from vhakit.body.model import h36m_regressor as make_h36m_regressor
    from vhakit.evaluation.metrics import angular_distance, mpjpe, mpve, pa_mpjpe, regress_joints
    from vhakit.fitting.fit import fit_smpl

    body = body if body is not None else BodyModel.open()
    gt = dataset.arrays
    pred108 = pred108.detach().float().cpu()
    F = len(pred108)
    check_shape(pred108, "pred108", tuple(gt["vertices108"].shape),
                hint="; one row per dataset frame")
    if not bool(torch.isfinite(pred108).all()):
        raise ValueError("pred108 contains NaN or inf: the model diverged; check its training log")
    per = {"mpve108_mm": mpve(pred108, gt["vertices108"], align="none") * 1000}
    details: dict = {}
    if fit:
        reg17, source17 = make_h36m_regressor(body, h36m_regressor)
        res = fit_smpl(pred108, body, fit_config if fit_config is not None
                       else prediction_fit_config())
        with torch.no_grad():
            true = body.from_poses(gt["poses"], gt["betas"], gt["transl"])
        per["mpjpe_mm"] = mpjpe(res.joints, true.joints) * 1000
        per["pa_mpjpe_mm"] = pa_mpjpe(res.joints, true.joints) * 1000
        fit17, true17 = regress_joints(res.vertices, reg17), regress_joints(true.vertices, reg17)
        per["mpjpe17_mm"] = mpjpe(fit17, true17, root_index=0) * 1000
        per["pa_mpjpe17_mm"] = pa_mpjpe(fit17, true17) * 1000
        details["joints17_source"] = source17
        per["mpve_mm"] = mpve(res.vertices, true.vertices, pred_root=res.joints[:, 0],
                              target_root=true.joints[:, 0]) * 1000
        per["angle_deg"] = angular_distance(res.poses, gt["poses"])
        details.update(vertices=res.vertices, poses=res.poses, gt_vertices=true.vertices,
                       joints=res.joints, gt_joints=true.joints)
    summary = {k: float(v.mean()) for k, v in per.items()}
    summary["num_frames"] = float(F)
    details["per_frame"] = {k: v.numpy() for k, v in per.items()}
    return summary, details


def eval_dataset(split: str, budget: Budget, progress: bool):
    from vhakit.data.datasets import MultiViewDataset

    ds = MultiViewDataset(_dataset(budget, split, "test", progress))
    n = budget.eval_frames
    if n and len(ds) > n:  # evenly spread frames: every action/subject stays represented
        ds = ds.subset(np.linspace(0, len(ds) - 1, n).round().astype(int))
    return ds


def run_experiment(spec: ExperimentSpec, cache_dir: str | os.PathLike = "runs/cache",
                   progress: bool = True) -> dict[str, dict[str, float]]:
    """Train what is missing for ``spec`` and evaluate it (see the module docstring).

    The result is cached in ``cache_dir/<spec.key()>/result.json``; a second call returns it at
    once. Budgets (steps, data size) come from :func:`get_budget` (``VHAKIT_FAST=1``: seconds).
    """
    from vhakit.training.bcp import predict_vertices

    cache_dir = Path(cache_dir)
    budget = get_budget(spec.preset)
    tag = "fast-" if fast_mode() else ""
    result_file = cache_dir / run_tag(spec) / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())["metrics"]
    model, run_dir = train_predictor(spec, cache_dir / f"{tag}models", budget, progress)
    metrics: dict[str, dict[str, float]] = {}
    for split in spec.test_splits:
        ds = eval_dataset(split, budget, progress)
        pred = predict_vertices(model, ds)
        metrics[split], _ = evaluate_vertices(pred, ds)
    write_json_atomic(result_file, {"spec": asdict(spec), "metrics": metrics, "model": str(run_dir),
                              "training": training_record(spec, cache_dir / f"{tag}models")})
    return metrics


def load_predictor(path: str | os.PathLike, device: str | torch.device | None = "cpu"):
    """A trained BCP or baseline from a run folder or checkpoint, whichever it holds."""
    from vhakit.training.bcp import load_baseline, load_bcp
    from vhakit.training.trainer import read_run

    try:
        ckpt_path, ckpt = read_run(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `vhakit train-bcp` or "
                                "`vhakit train-baseline` (or run `vhakit demo`)") from err
    task = ckpt["run_config"].get("task")
    if task == "bcp":
        return load_bcp(ckpt_path, device=device)
    if task == "baseline":
        return load_baseline(ckpt_path, device=device)
    raise ValueError(f"{ckpt_path} holds a {task!r} run; evaluate needs a BCP or baseline run "
                     "(a VHA alone reconstructs heatmaps, not images: see `vhakit train-vha`)")


def evaluate_run(model_path: str | os.PathLike, data: str | os.PathLike, frames: int = 0,
                 fit: bool = True, out: str | os.PathLike | None = None, progress: bool = True
                 ) -> dict[str, float]:
    """Reconstruct a multi-view dataset folder with a trained BCP/baseline, fit SMPL, and return
    the metrics (see :func:`evaluate_vertices`); ``frames`` > 0 evaluates that many evenly spread
    frames; ``out`` writes a :class:`~vhakit.evaluation.recon.Reconstructions` file for the viewer."""
    from vhakit.body.model import BodyModel
    from vhakit.data.datasets import MultiViewDataset
    from vhakit.evaluation.recon import Reconstructions
    from vhakit.training.bcp import predict_vertices

    model = load_predictor(model_path)
    ds = MultiViewDataset(data)
    if frames and len(ds) > frames:
        ds = ds.subset(np.linspace(0, len(ds) - 1, frames).round().astype(int))
    body = BodyModel.open()
    pred = predict_vertices(model, ds)
    summary, details = evaluate_vertices(pred, ds, body, fit=fit)
    if out is not None:
        gt = body.from_poses(ds.arrays["poses"], ds.arrays["betas"], ds.arrays["transl"])
        meshes = {Reconstructions.GT: gt.vertices.detach().numpy()}
        if fit:
            meshes["prediction fitted"] = details["vertices"].numpy()
        Reconstructions(faces=body.faces.numpy(), meshes=meshes,
                        points108={Reconstructions.GT: ds.arrays["vertices108"].numpy(),
                                   "prediction": pred.numpy()},
                        frame_names=list(ds.names), K=ds.arrays["K"].numpy(),
                        R=ds.arrays["R"].numpy(), t=ds.arrays["t"].numpy(),
                        subsample_indices=body.subsample_indices.numpy()).save(out)
    return summary
