"""Pretrained classroom checkpoints: small inference-only copies of a VHA, a BCP and a baseline,
so that a class sees real reconstructions in seconds instead of waiting for training.

``vhakit pretrain-classroom`` (:func:`pretrain_classroom`) trains the three models through the
pipeline (:func:`vhakit.experiments.pipeline.train_or_load_vha`, :func:`~vhakit.experiments.pipeline.train_predictor`:
the same code, seeds and budgets as ``run_experiment``), then writes ``vha.pt``, ``bcp.pt`` and
``baseline.pt`` into ``vhakit/assets/pretrained/``: the weights only (parameters stored as
float16, buffers as they are; loading converts back to float32) and the configs to rebuild each
model, no optimiser or history. The metrics in ``card.json`` / ``MODEL_CARD.md`` are measured on
the *stored* weights, so they reproduce exactly wherever the same code runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vhakit._util import atomic_write_bytes, write_json_atomic

__all__ = ["PRETRAINED_DIR", "PRETRAINED_NAMES", "load_pretrained", "pretrained_available",
           "read_card", "card_frames", "evaluate_pretrained", "pretrain_classroom",
           "pretrained_reconstructions", "viewer_frames", "viewer_cache_path",
           "cached_pretrained_reconstructions", "viewer_reconstructions"]

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "assets" / "pretrained"
PRETRAINED_NAMES = ("vha", "bcp", "baseline")
PRETRAINED_FORMAT = "vhakit-pretrained-1"
MAX_TOTAL_BYTES = 10 * 1024 * 1024  # size budget of the three committed files
EVAL_SPLIT = "h36m_like"  # test subjects S9, S11 (paper Sec. 4.1)
LABELS = {"bcp": "VHA+BCP", "baseline": "baseline (LMT-style)"}  # method names as vhakit.experiments.demo
_CMD = "vhakit pretrain-classroom"


def _dir(directory: str | os.PathLike | None) -> Path:
    return PRETRAINED_DIR if directory is None else Path(directory)


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"no pretrained classroom file {path}; create the checkpoints with `{_CMD} --preset "
        f"teaching` (minutes to hours on a CPU; `--preset tiny` for a quick set), or restore "
        "vhakit/assets/pretrained/ from git")


# --------------------------------------------------------------------------- save and load
def _export(model: torch.nn.Module, name: str, configs: dict, path: Path) -> int:
    """Write ``model``'s weights (parameters float16, buffers unchanged) and ``configs``
    atomically to ``path``; returns the file size in bytes."""
    params = {k for k, _ in model.named_parameters()}
    state = {k: (v.detach().cpu().half() if k in params and v.is_floating_point()
                 else v.detach().cpu().clone()) for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": PRETRAINED_FORMAT, "name": name, "configs": configs,
                "state_dict": state}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return len(buf.getvalue())


def _build(name: str, configs: dict) -> torch.nn.Module:
    from vhakit.config import BaselineConfig, BCPConfig, VHAConfig

    if name == "vha":
        from vhakit.models.vha import VHA

        return VHA(VHAConfig(**configs["model"]))
    if name == "bcp":
        from vhakit.models.bcp import BodyCodePredictor

        return BodyCodePredictor(BCPConfig(**configs["model"]), VHAConfig(**configs["vha"]))
    from vhakit.models.baseline import LMTBaseline

    return LMTBaseline(BaselineConfig(**configs["model"]))


def load_pretrained(name: str, directory: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> torch.nn.Module:
    """The pretrained classroom model ``name`` (``"vha"``, ``"bcp"`` or ``"baseline"``) in eval
    mode, float32, on ``device``. Read with ``torch.load(weights_only=True)``.

    Args:
        directory: where the checkpoints are (default ``vhakit/assets/pretrained``).
    Raises:
        FileNotFoundError naming the command that creates the files; ValueError for an
        unknown name or a file that is not a classroom checkpoint.
    """
    if name not in PRETRAINED_NAMES:
        raise ValueError(f"name must be one of {PRETRAINED_NAMES}, got {name!r}")
    path = _dir(directory) / f"{name}.pt"
    if not path.is_file():
        raise _missing(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != PRETRAINED_FORMAT or \
            ckpt.get("name") != name:
        raise ValueError(f"{path} is not a {name!r} classroom checkpoint ({PRETRAINED_FORMAT}); "
                         f"regenerate it with `{_CMD}`")
    model = _build(name, ckpt["configs"])
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v
                           for k, v in ckpt["state_dict"].items()})
    return model.to(device).eval()


def pretrained_available(directory: str | os.PathLike | None = None) -> bool:
    """True when the three checkpoints and ``card.json`` are in ``directory``."""
    d = _dir(directory)
    return all((d / f).is_file() for f in ("card.json", *(f"{n}.pt" for n in PRETRAINED_NAMES)))


def read_card(directory: str | os.PathLike | None = None) -> dict:
    """The model card (``card.json``) of the checkpoints in ``directory``."""
    path = _dir(directory) / "card.json"
    if not path.is_file():
        raise _missing(path)
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------ evaluation
def card_frames(card: dict, n_frames: int | None = None, progress: bool = False):
    """The card's test frames as a :class:`~vhakit.data.datasets.MultiViewDataset` (built from
    the deterministic data recipe if missing); ``n_frames`` evenly spread frames instead of the
    card's number (the same rule, so ``n_frames=None`` gives exactly the card's frames)."""
    from vhakit.experiments.pipeline import Budget, eval_dataset

    data = card["data"]
    n = data["eval_frames"] if n_frames is None else int(n_frames)
    if n < 1:
        raise ValueError(f"n_frames must be a positive int, got {n_frames}")
    return eval_dataset(data["test_split"], Budget(data["data_preset"], eval_frames=n), progress)


def evaluate_pretrained(directory: str | os.PathLike | None = None, fit: bool = True,
                        progress: bool = False) -> dict[str, dict[str, float]]:
    """Re-measure the card's metrics on its test frames: ``{"vha": {"mpve108_mm"}, "bcp": ...,
    "baseline": ...}`` where BCP and the baseline have the keys of
    :func:`vhakit.experiments.pipeline.evaluate_vertices` (``fit=False``: ``mpve108_mm`` only).

    The VHA's number is its autoencoding error on the frames' true 108 vertices (cuboid at the
    true pelvis); the others are the predictions from the four views."""
    card = read_card(directory)
    ds = card_frames(card, progress=progress)
    if ds.names != card["data"]["eval_frame_names"]:
        raise ValueError("the card's test frames differ from the frames built now (the data "
                         f"recipe changed); regenerate the checkpoints with `{card['command']}`")
    return _evaluate_on(_dir(directory), ds, fit)


def _evaluate_on(directory: Path, ds, fit: bool = True) -> dict[str, dict[str, float]]:
    from vhakit.body.model import BodyModel
    from vhakit.experiments.pipeline import evaluate_vertices
    from vhakit.training.bcp import predict_vertices
    from vhakit.training.vha import evaluate_vha

    vha = load_pretrained("vha", directory)
    out = {"vha": {"mpve108_mm": evaluate_vha(vha, ds)["data"]["mpve_mm"]}}
    body = BodyModel.open()
    for name in ("bcp", "baseline"):
        pred = predict_vertices(load_pretrained(name, directory), ds)
        out[name], _ = evaluate_vertices(pred, ds, body, fit=fit)
    return out


def reevaluate_card(directory: str | os.PathLike | None = None, note: str = "",
                    progress: bool = False) -> dict:
    """Re-measure the card's metrics of the checkpoints in ``directory`` with the kit as it is
    now (same frames, same stored weights), record when and why (``note``) in
    ``card["reevaluations"]`` with the previous metrics, and rewrite ``card.json`` and
    ``MODEL_CARD.md``. For evaluation or model-geometry changes that do not retrain: the weights
    and the training budget stay what the card says."""
    from vhakit.teaching.classroom_card import write_model_card

    d = _dir(directory)
    card = read_card(d)
    ds = card_frames(card, progress=progress)
    previous = card["metrics"]
    card["metrics"] = _evaluate_on(d, ds)
    card.setdefault("reevaluations", []).append({
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "note": note,
        "previous_metrics": previous})
    write_json_atomic(d / "card.json", card, sort_keys=False)
    write_model_card(card, d / "MODEL_CARD.md")
    return card


# -------------------------------------------------------------------------------- training
def _seconds(run_dir: Path) -> float:
    return float(json.loads((run_dir / "done.json").read_text())["seconds"])


def pretrain_classroom(out_dir: str | os.PathLike = PRETRAINED_DIR, preset: str = "teaching",
                       seed: int = 0, *, cache_dir: str | os.PathLike | None = None,
                       eval_frames: int = 24, progress: bool = True,
                       reuse_vha: str | os.PathLike | None = None,
                       epochs: float | None = None, backbone_init: str = "",
                       vha_steps: int | None = None, curve_frames: int = 0) -> dict:
    """Train (or reuse from ``cache_dir``) the ``preset`` VHA, BCP and baseline with ``seed``,
    write ``vha.pt``, ``bcp.pt``, ``baseline.pt``, ``card.json`` and ``MODEL_CARD.md`` to
    ``out_dir`` and return the card.

    Args:
        preset: ``tiny`` | ``teaching`` | ``paper`` (budgets of :func:`vhakit.experiments.pipeline.get_budget`;
            ``VHAKIT_FAST=1`` swaps in the seconds-long one and the card says so).
        cache_dir: training runs (default ``runs/classroom``; ``runs/classroom-fast`` in fast mode).
        eval_frames: test frames (evenly spread over the ``h36m_like`` test set) the card's
            metrics are measured on; 24 keeps the re-evaluation test under a minute.
        reuse_vha: a classroom ``vha.pt`` (e.g. the committed one) to keep instead of training
            a VHA: only the BCP and the baseline are trained (in ``cache_dir/reuse-<sha>``), and
            the card records the reused file's sha256 and its training seconds as 0.
        epochs: passes of the BCP and the baseline over their training frames, instead of the
            preset budget's rule (its step floor is then dropped); the card records the budget.
        backbone_init: the BCP's and the baseline's 2D backbone start (``"pose2d"``: the kit's
            pose-pretrained one; see :class:`~vhakit.config.MultiViewConfig`), alike for both.
        vha_steps: VHA training steps instead of the preset budget's (the VHA and the predictors
            built on it are then cached in ``cache_dir/vha-steps<N>``).
        curve_frames: when > 0, new runs evaluate that many ``h36m_like`` test frames (evenly
            spread) as they train: the VHA every 250 steps, the BCP and the baseline every half
            epoch; the learning curves are the ``eval_*`` columns of each run's ``metrics.csv``
            (:func:`vhakit.viz.figures.plot_learning_curves` draws them).
    Runs with ``epochs`` or ``backbone_init`` are cached apart (``cache_dir/<setting>``).
    """
    from vhakit.config import config_dict
    from vhakit.experiments.pipeline import (
        ExperimentSpec,
        get_budget,
        train_or_load_vha,
        train_predictor,
    )
    from vhakit.runtime import fast_mode
    from vhakit.teaching.classroom_card import write_model_card

    out_dir = Path(out_dir)
    fast = fast_mode()
    cache = Path(cache_dir) if cache_dir is not None else Path(
        "runs/classroom-fast" if fast else "runs/classroom")
    budget = get_budget(preset)
    if vha_steps is not None:
        if reuse_vha is not None:
            raise ValueError("vha_steps trains a VHA and reuse_vha keeps one: give one of them")
        if vha_steps < 1:
            raise ValueError(f"vha_steps must be >= 1, got {vha_steps}")
        budget = dataclasses.replace(budget, vha_steps=int(vha_steps))
        cache = cache / f"vha-steps{int(vha_steps)}"
    variant = []
    if epochs is not None:
        budget = dataclasses.replace(budget, epochs=float(epochs), min_steps=0)
        variant.append(f"epochs{float(epochs):g}")
    if backbone_init:
        overrides = {**budget.overrides, **{stage: {**budget.overrides.get(stage, {}),
                                                    "backbone_init": backbone_init}
                                            for stage in ("bcp", "baseline")}}
        budget = dataclasses.replace(budget, overrides=overrides)
        variant.append("backbone-" + hashlib.sha1(backbone_init.encode()).hexdigest()[:8])
    specs = {"bcp": ExperimentSpec("vha_bcp", preset=preset, train_split=EVAL_SPLIT, seed=seed),
             "baseline": ExperimentSpec("baseline", preset=preset, train_split=EVAL_SPLIT,
                                        seed=seed)}
    curve = {}
    if curve_frames > 0:
        test = card_frames({"data": {"test_split": EVAL_SPLIT, "data_preset": budget.data_preset,
                                     "eval_frames": curve_frames}}, progress=progress)
        curve = {"eval_data": test, "evals_per_epoch": 2}
    t0 = time.perf_counter()
    reused = None
    if reuse_vha is None:
        vha, vha_dir = train_or_load_vha(specs["bcp"], cache, budget, progress,
                                         **({"eval_data": curve["eval_data"], "eval_every": 250}
                                            if curve else {}))
    else:
        reuse_vha = Path(reuse_vha)
        if reuse_vha.name != "vha.pt":
            raise ValueError(f"reuse_vha must be a classroom vha.pt, got {reuse_vha}")
        reused = hashlib.sha256(reuse_vha.read_bytes()).hexdigest()
        vha, vha_dir = load_pretrained("vha", reuse_vha.parent), None
        cache = cache / f"reuse-{reused[:12]}"
    if variant:  # the predictors' cache folder names do not see these settings
        cache = cache / "-".join(variant)
    models = {"vha": (vha, {"model": config_dict(vha.config)}, vha_dir)}
    for name, spec in specs.items():
        # the VHA trained or loaded above: predictors cached in a variant folder reuse it
        model, run_dir = train_predictor(spec, cache, budget, progress, vha=vha, **curve)
        cfgs = {"model": config_dict(model.config)}
        if name == "bcp":
            cfgs["vha"] = config_dict(model.vha_config)
        models[name] = (model, cfgs, run_dir)
    wall = time.perf_counter() - t0
    (out_dir / "card.json").unlink(missing_ok=True)  # no card for a half-written set
    files = {}
    for name, (model, cfgs, _) in models.items():
        size = _export(model, name, cfgs, out_dir / f"{name}.pt")
        digest = hashlib.sha256((out_dir / f"{name}.pt").read_bytes()).hexdigest()
        files[f"{name}.pt"] = {"bytes": size, "sha256": digest,
                               "parameters": sum(p.numel() for p in model.parameters())}
    total = sum(f["bytes"] for f in files.values())
    if total > MAX_TOTAL_BYTES:
        raise ValueError(f"the checkpoints take {total / 2**20:.1f} MiB, over the "
                         f"{MAX_TOTAL_BYTES / 2**20:.0f} MiB budget; use a smaller preset")
    ds = card_frames({"data": {"test_split": EVAL_SPLIT, "data_preset": budget.data_preset,
                               "eval_frames": eval_frames}}, progress=progress)
    command = (("VHAKIT_FAST=1 " if fast else "") + f"{_CMD} --preset {preset} --seed {seed}"
               + ("" if out_dir.resolve() == PRETRAINED_DIR else f" --out {out_dir}")
               + ("" if reuse_vha is None else f" --reuse-vha {reuse_vha}")
               + ("" if epochs is None else f" --epochs {float(epochs):g}")
               + (f" --backbone-init {backbone_init}" if backbone_init else "")
               + ("" if vha_steps is None else f" --vha-steps {int(vha_steps)}")
               + (f" --curve-frames {curve_frames}" if curve_frames > 0 else ""))
    card = {
        "format": "vhakit-classroom-card-1", "preset": preset, "seed": seed, "fast_mode": fast,
        "command": command, "budget": asdict(budget),
        "data": {"data_preset": budget.data_preset, "train_split": EVAL_SPLIT,
                 "vha_prior": specs["bcp"].vha_prior, "test_split": EVAL_SPLIT,
                 "eval_frames": len(ds), "eval_frame_names": list(ds.names),
                 "eval_frame_index": [int(i) for i in ds.frame_index],
                 "body_model": "open"},
        "vha_reused_sha256": reused,
        "training_seconds": {**{n: round(_seconds(m[2]), 1) if m[2] else 0.0
                                for n, m in models.items()},
                             "this_call": round(wall, 1)},
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "files": files, "total_bytes": total,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if curve_frames > 0:
        from vhakit.viz.figures import eval_curve

        card["curves"] = {"frames": curve_frames, **{n: eval_curve(m[2]) if m[2] else []
                                                     for n, m in models.items()}}
    card["metrics"] = _evaluate_on(out_dir, ds)  # the stored (float16) weights, as shipped
    write_json_atomic(out_dir / "card.json", card, sort_keys=False)
    write_model_card(card, out_dir / "MODEL_CARD.md")
    return card


# ------------------------------------------------------------------------- for the viewer
def pretrained_reconstructions(n_frames: int = 4, directory: str | os.PathLike | None = None,
                               progress: bool = False):
    """:class:`~vhakit.evaluation.recon.Reconstructions` of the pretrained BCP and baseline on ``n_frames``
    test frames (evenly spread over the card's test set): ground truth, the 108 predicted
    vertices and the SMPL fits, with the input views and cameras (method names as the demo's)."""
    from vhakit.body.model import BodyModel
    from vhakit.evaluation.recon import Reconstructions
    from vhakit.experiments.pipeline import evaluate_vertices
    from vhakit.training.bcp import predict_vertices

    ds = card_frames(read_card(directory), n_frames, progress)
    body = BodyModel.open()
    points, meshes = {}, {}
    for name in ("baseline", "bcp"):
        pred = predict_vertices(load_pretrained(name, directory), ds)
        _, details = evaluate_vertices(pred, ds, body)
        points[LABELS[name]] = pred.numpy()
        meshes[f"{LABELS[name]} fitted"] = details["vertices"].numpy()
    images = np.stack([(ds[i]["images"].permute(0, 2, 3, 1).numpy() * 255).round()
                       .astype(np.uint8) for i in range(len(ds))])  # (N, views, H, W, 3)
    return Reconstructions(
        faces=body.faces.numpy(),
        meshes={Reconstructions.GT: details["gt_vertices"].numpy(), **meshes},
        points108={Reconstructions.GT: ds.arrays["vertices108"].numpy(), **points},
        frame_names=list(ds.names), images=images, K=ds.arrays["K"].numpy(),
        R=ds.arrays["R"].numpy(), t=ds.arrays["t"].numpy(),
        subsample_indices=body.subsample_indices.numpy())


def viewer_frames(n_frames: int | None = None) -> int:
    """Frames the viewer's pretrained path shows: ``n_frames``, or 4 with ``VHAKIT_FAST=1``,
    else 12."""
    from vhakit.runtime import fast_mode

    return int(n_frames) if n_frames is not None else (4 if fast_mode() else 12)


def viewer_cache_path(n_frames: int, directory: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_pretrained_reconstructions` keeps the reconstructions of
    ``n_frames`` frames: ``<data root>/classroom_viewer/`` (next to the data sets they are
    made from), named by a hash of the checkpoints, the frames, the evaluation's fitting
    settings and the kit's source code, so a new checkpoint, setting or model code never reads
    a stale file."""
    from vhakit.experiments.pipeline import data_root, eval_hash

    card = read_card(directory)
    key = json.dumps({"files": {k: v["sha256"] for k, v in sorted(card["files"].items())},
                      "data": card["data"]["data_preset"], "split": card["data"]["test_split"],
                      "n": int(n_frames), "eval": eval_hash(), "code": _source_hash()},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return data_root() / "classroom_viewer" / f"pretrained-{int(n_frames)}f-{digest}.npz"


def _source_hash() -> str:
    """A hash of the kit's Python sources (what predicts, fits and renders the frames)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cached_pretrained_reconstructions(n_frames: int,
                                      directory: str | os.PathLike | None = None):
    """:func:`pretrained_reconstructions` of ``n_frames`` frames, read from
    :func:`viewer_cache_path` when an earlier call (or ``vhakit.teaching.classroom.prepare``) stored
    them there: about 1 s instead of ~15 s of prediction and SMPL fitting on 2 cores."""
    from vhakit.evaluation.recon import Reconstructions

    path = viewer_cache_path(n_frames, directory)
    if path.is_file():
        try:
            return Reconstructions.load(path)
        except (OSError, ValueError, KeyError):
            pass  # unreadable (e.g. a half-copied file): computed again below
    recons = pretrained_reconstructions(n_frames, directory)
    try:
        recons.save(path)
    except OSError:
        pass  # a read-only data folder: the viewer works, it just computes again next time
    return recons


def viewer_reconstructions(use_pretrained: bool = True, n_frames: int | None = None):
    """What the viewer shows, best first: the demo's output (``runs/demo``) if it exists, else
    the pretrained models' reconstructions (``use_pretrained`` and the checkpoints present;
    cached, see :func:`cached_pretrained_reconstructions`), else the labelled stand-in.
    Returns ``(recons, source)``, ``source`` in words.

    ``n_frames``: frames of the pretrained path (default :func:`viewer_frames`)."""
    from vhakit.teaching.standin import DEMO_RECONSTRUCTIONS, load_reconstructions

    demo = Path(DEMO_RECONSTRUCTIONS)
    found = any((base / demo).is_file() for base in [Path.cwd(), *list(Path.cwd().parents)[:3]])
    if found or not (use_pretrained and pretrained_available()):
        return load_reconstructions()
    n = viewer_frames(n_frames)
    card = read_card()
    return cached_pretrained_reconstructions(n), (
        f"pretrained classroom models ({card['preset']} preset, seed {card['seed']}; "
        f"vhakit/assets/pretrained/MODEL_CARD.md) on {n} {card['data']['test_split']} test frames")
