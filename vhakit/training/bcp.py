"""Training and inference for BCP (paper Sec. 2.4, Eqs. 5-7) and the LMT-style baseline, on the
kit's one trainer (:func:`vhakit.training.trainer.fit`).

Batches are multi-view samples (:class:`vhakit.data.datasets.MultiViewDataset`): ``images
(B, V, 3, H, W)``, ``K, R (B, V, 3, 3)``, ``t (B, V, 3)``, optional ``dist (B, V, 5)``,
``visibility (B, V, 108)``, ``vertices108 (B, 108, 3)``, ``pelvis (B, 3)`` (metres).

The cuboid is centred on the ground-truth pelvis, plus a per-sample jitter of up to ``jitter_m``
per axis at training time (drawn from ``(seed, epoch, sample index)`` as for the VHA). At test
time the kit uses the ground-truth pelvis, as LMT / learnable-triangulation with
``use_gt_pelvis`` (the paper's "ground-truth/estimated pelvis"): the errors reported are those
of the mesh given the pelvis position, not of locating the person.

BCP loss (Eqs. 5-7): ``L = sum_i |V_hat_i - V_i|_1 / N + lambda * mean_voxels |z_hat - z|`` with
``z = VHAEncoder(H_gt)`` (the frozen trained encoder) and lambda = 100, each term switchable
(Table 1), plus ``visibility_weight * s * BCE(visibility logits, rendered visibility)``. The
vertex L1 is in ``config.vertex_loss_unit`` (mm by default: the unit of the paper's data, to
which lambda is tuned), ``s`` = 1000 in mm, 1 in metres (the visibility weight is relative to
the vertex L1 in metres; see :class:`~vhakit.config.BCPTaskConfig`). Baseline loss: the vertex
term and the visibility term. Each training step also reports every weighted term's share of
the loss (``share_vertex``, ``share_code``, ``share_visibility``: term / total, summing to 1; a
log row holds their mean over its steps). Evaluation: MPVE of the 108 vertices in mm.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vhakit.config import (
    LEGACY_VERTEX_LOSS_UNIT,
    BaselineConfig,
    BaselineTaskConfig,
    BCPConfig,
    BCPTaskConfig,
    MultiViewConfig,
    TrainConfig,
    VHAConfig,
    baseline_configs,
    bcp_configs,
    config_dict,
)
from vhakit.data.datasets import as_multiview_dataset as _as_multiview
from vhakit.runtime import default_device
from vhakit.training.trainer import (
    StepContext,
    TrainResult,
    augment_params,
    fit,
    load_checkpoint,
    read_run,
)
from vhakit.training.vha import load_vha

__all__ = ["BCPTask", "BaselineTask", "train_bcp", "train_baseline", "load_bcp", "load_baseline",
           "predict_vertices", "batch_center"]

_KEYS = ("images", "K", "R", "t", "vertices108", "pelvis")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel


def batch_center(batch: dict, ctx: StepContext | None, jitter_m: float) -> torch.Tensor:
    """Cuboid centres ``(B, 3)``: the pelvis, + the sample's jitter when training (``ctx``)."""
    missing = [k for k in _KEYS if k not in batch]
    if missing:
        raise ValueError(f"multi-view batches need {list(_KEYS)}; missing {missing} (got keys "
                         f"{sorted(batch)}); use vhakit.data.MultiViewDataset")
    pelvis = batch["pelvis"].float()
    if ctx is None or jitter_m == 0:
        return pelvis
    _, jitter = augment_params(ctx.seed, ctx.epoch, batch["sample_index"].cpu(), jitter_m, False)
    return pelvis + jitter.to(pelvis.device)


def _run(model, batch: dict, center: torch.Tensor, **kwargs):
    return model(batch["images"].float(), batch["K"].float(), batch["R"].float(),
                 batch["t"].float(), center, batch["dist"].float() if "dist" in batch else None,
                 **kwargs)


def _vertex_l1(pred: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 5: mean over vertices (and batch) of the L1 norm of ``V_hat_i - V_i``; ``pred,
    target (B, N, 3)`` metres, the loss in metres x ``scale`` (1000: millimetres)."""
    return (pred - target).abs().sum(-1).mean() * scale


def _total_and_shares(terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The sum of the weighted loss ``terms`` and each one's share of it (``share_<name>``,
    detached; the shares sum to 1)."""
    total = sum(terms.values())
    denom = total.detach().clamp_min(torch.finfo(total.dtype).tiny)
    return total, {f"share_{k}": v.detach() / denom for k, v in terms.items()}


def _visibility_bce(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    if "visibility" not in batch:
        raise ValueError("batches need 'visibility' (B, V, 108) to train the visibility module")
    return F.binary_cross_entropy_with_logits(logits, batch["visibility"].to(logits.dtype))


@torch.no_grad()
def _evaluate(model, loader, device, with_code: bool, scale: float) -> dict[str, float]:
    """Means over the samples; ``loss_vertex`` in the training loss's unit (metres x ``scale``)."""
    tot = torch.zeros(5, dtype=torch.float64)
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        verts, center = batch["vertices108"].float(), batch_center(batch, None, 0.0)
        out = _run(model, batch, center)
        err = (out.vertices - verts).norm(dim=-1).mean(-1) * 1000  # (B,) mm
        vis_acc = ((out.visibility_logits > 0) == (batch["visibility"] > 0.5)).float().mean((1, 2))
        code = (torch.zeros_like(err) if not with_code else
                (out.latent - _unwrap(model).target_code(verts, center)).abs().flatten(1).mean(1))
        loss = (out.vertices - verts).abs().sum(-1).mean(-1) * scale
        tot += torch.stack([err.sum(), vis_acc.sum(), code.sum(), loss.sum(),
                            torch.tensor(float(len(err)), device=err.device)]).double().cpu()
    n = max(tot[4].item(), 1.0)
    out = {"mpve_mm": tot[0].item() / n, "visibility_acc": tot[1].item() / n,
           "loss_vertex": tot[3].item() / n}
    if with_code:
        out["code_l1"] = tot[2].item() / n
    return out


@dataclass(frozen=True)
class BCPTask:
    """Train :class:`~vhakit.models.bcp.BodyCodePredictor` (see the module docstring)."""

    config: BCPTaskConfig = field(default_factory=BCPTaskConfig)
    name: str = "bcp"
    primary_metric: str = "mpve_mm"

    def compute_loss(self, model, batch, ctx):
        cfg = self.config
        verts = batch["vertices108"].float()
        center = batch_center(batch, ctx, cfg.jitter_m)
        out = _run(model, batch, center, decode=cfg.use_vertex_loss)
        l_vis = _visibility_bce(out.visibility_logits, batch)
        terms = {"visibility": cfg.visibility_weight * cfg.vertex_loss_scale * l_vis}
        metrics = {"loss_visibility": l_vis.detach()}
        pred = out.vertices
        if cfg.use_vertex_loss:
            l_vert = _vertex_l1(pred, verts, cfg.vertex_loss_scale)
            terms["vertex"] = l_vert
            metrics["loss_vertex"] = l_vert.detach()
        else:  # still report the vertex error (no gradient through the decoder)
            with torch.no_grad():
                pred = _unwrap(model).decode(out.latent.detach(), center)[0]
        if cfg.use_code_loss:
            target = _unwrap(model).target_code(verts, center)
            l_code = (out.latent - target).abs().mean()
            terms["code"] = cfg.code_weight * l_code
            metrics["loss_code"] = l_code.detach()
        loss, shares = _total_and_shares(terms)
        with torch.no_grad():
            metrics["mpve_mm"] = (pred - verts).norm(dim=-1).mean() * 1000
        return loss, {**metrics, **shares}

    def evaluate(self, model, loader, device):
        """MPVE (mm) of the 108 vertices, visibility accuracy, code L1, over all samples
        (cuboid at the ground-truth pelvis, no jitter)."""
        return _evaluate(model, loader, device, with_code=True, scale=self.config.vertex_loss_scale)


@dataclass(frozen=True)
class BaselineTask:
    """Train :class:`~vhakit.models.baseline.LMTBaseline`: vertex L1 (in
    ``config.vertex_loss_unit``) + ``visibility_weight`` x 1000 (in mm) x visibility BCE."""

    config: BaselineTaskConfig = field(default_factory=BaselineTaskConfig)
    name: str = "baseline"
    primary_metric: str = "mpve_mm"

    def compute_loss(self, model, batch, ctx):
        cfg = self.config
        verts = batch["vertices108"].float()
        out = _run(model, batch, batch_center(batch, ctx, cfg.jitter_m))
        l_vert = _vertex_l1(out.vertices, verts, cfg.vertex_loss_scale)
        l_vis = _visibility_bce(out.visibility_logits, batch)
        loss, shares = _total_and_shares(
            {"vertex": l_vert, "visibility": cfg.visibility_weight * cfg.vertex_loss_scale * l_vis})
        with torch.no_grad():
            mpve = (out.vertices - verts).norm(dim=-1).mean() * 1000
        return loss, {"loss_vertex": l_vert.detach(), "loss_visibility": l_vis.detach(),
                      "mpve_mm": mpve, **shares}

    def evaluate(self, model, loader, device):
        return _evaluate(model, loader, device, with_code=False, scale=self.config.vertex_loss_scale)


# ----------------------------------------------------------------------------- entry points
def _fit_config(train: TrainConfig) -> TrainConfig:
    """``channels_last``: the models keep their 3D convolutions in channels-last-3d themselves
    (:func:`vhakit.models.bcp.channels_last_3d`); ``fit``'s whole-model conversion would fail on
    the 2D layers' weights, so it is switched off here (the run config keeps the setting)."""
    return replace(train, channels_last=False)


def _init_backbone(model: torch.nn.Module, config: MultiViewConfig, resuming: bool) -> None:
    """``config.backbone_init``: load the pretrained 2D backbone into ``model.front.backbone``
    (not when resuming: the checkpoint holds the weights); ``freeze_backbone``: no gradients
    for it."""
    backbone = model.front.backbone
    if config.backbone_init and not resuming:
        from vhakit.training.backbone2d import load_backbone_weights

        load_backbone_weights(backbone, config, config.backbone_init)
    if config.freeze_backbone:
        backbone.requires_grad_(False)


def _model_section(model: MultiViewConfig) -> dict:
    """The model's run-config dict without the backbone-initialisation fields when they hold
    their defaults, so that a run with a random backbone has the run config it had before those
    fields existed (its cached and resumable runs stay valid)."""
    section = config_dict(model)
    for name in ("backbone_init", "freeze_backbone"):
        if section[name] == MultiViewConfig.__dataclass_fields__[name].default:
            del section[name]
    return section


def _task_section(task, out_dir, resume: bool, overrides: dict):
    """``(task config, its run-config dict)``. A run folder written before ``vertex_loss_unit``
    existed trained its vertex L1 in metres: resuming it keeps metres and stores the section as
    it was (no ``vertex_loss_unit`` key), unless the unit is overridden (then :func:`fit` reports
    the difference)."""
    ckpt_path = Path(out_dir) / "last.pt"
    if not (resume and ckpt_path.exists()):
        return task, config_dict(task)
    saved = load_checkpoint(ckpt_path)["run_config"].get("task_config", {})
    if "vertex_loss_unit" in saved:
        return task, config_dict(task)
    if not {"vertex_loss_unit", "task.vertex_loss_unit"} & set(overrides):
        task = replace(task, vertex_loss_unit=LEGACY_VERTEX_LOSS_UNIT)
    section = config_dict(task)
    if task.vertex_loss_unit == LEGACY_VERTEX_LOSS_UNIT:
        del section["vertex_loss_unit"]
    return task, section


def train_bcp(preset: str = "teaching", data: Dataset | str | os.PathLike | None = None,
              vha=None, out_dir: str | os.PathLike = "runs/bcp", resume: bool = False, *,
              eval_data: Dataset | str | os.PathLike | None = None, overwrite: bool = False,
              progress: bool = True, **overrides) -> TrainResult:
    """Train the body code predictor on top of a trained VHA.

    Args:
        preset: ``tiny`` | ``teaching`` | ``paper``; overrides: any field of
            :class:`~vhakit.config.BCPConfig`, :class:`~vhakit.config.BCPTaskConfig` (e.g.
            ``use_code_loss=False``, ``init_from_vha=False``) or :class:`~vhakit.config.TrainConfig`.
        data: multi-view training data: a Dataset or a dataset folder.
        vha: the trained :class:`~vhakit.models.vha.VHA`, or its run folder / checkpoint. Its
            config fixes the grid, the cuboid and the encoder/decoder structure.
        eval_data: evaluated after every epoch (MPVE in mm); out_dir, resume, overwrite,
            progress: see :func:`vhakit.training.trainer.fit`.
    Returns:
        :class:`~vhakit.training.trainer.TrainResult`; ``result.model`` is the trained BCP.
    """
    from vhakit.models.bcp import BodyCodePredictor

    data, eval_data = _as_multiview(data, "data"), _as_multiview(eval_data, "eval_data")
    if data is None:
        raise TypeError("data is required: a multi-view Dataset or a dataset folder")
    if vha is None:
        raise TypeError("vha is required: a trained VHA or its run folder (vhakit train-vha)")
    if isinstance(vha, (str, os.PathLike)):
        vha = load_vha(vha, device="cpu")
    cfg = bcp_configs(preset, **overrides)
    task, task_dict = _task_section(cfg.task, out_dir, resume, overrides)
    torch.manual_seed(cfg.train.seed)
    model = BodyCodePredictor(cfg.model, vha.config).init_from_vha(
        vha.cpu(), encoder=task.init_from_vha)
    _init_backbone(model, cfg.model, resume and (Path(out_dir) / "last.pt").exists())
    run_config = {"model": _model_section(cfg.model), "vha": config_dict(vha.config),
                  "task_config": task_dict, "train": config_dict(cfg.train)}
    return fit(model, BCPTask(task), data, _fit_config(cfg.train), out_dir,
               eval_data=eval_data, resume=resume, overwrite=overwrite, run_config=run_config,
               progress=progress)


def train_baseline(preset: str = "teaching", data: Dataset | str | os.PathLike | None = None,
                   out_dir: str | os.PathLike = "runs/baseline", resume: bool = False, *,
                   eval_data: Dataset | str | os.PathLike | None = None, overwrite: bool = False,
                   progress: bool = True, **overrides) -> TrainResult:
    """Train the LMT-style baseline (overrides: fields of :class:`~vhakit.config.BaselineConfig`,
    :class:`~vhakit.config.BaselineTaskConfig` or :class:`~vhakit.config.TrainConfig`); the
    other arguments as :func:`train_bcp`."""
    from vhakit.models.baseline import LMTBaseline

    data, eval_data = _as_multiview(data, "data"), _as_multiview(eval_data, "eval_data")
    if data is None:
        raise TypeError("data is required: a multi-view Dataset or a dataset folder")
    cfg = baseline_configs(preset, **overrides)
    task, task_dict = _task_section(cfg.task, out_dir, resume, overrides)
    torch.manual_seed(cfg.train.seed)
    model = LMTBaseline(cfg.model)
    _init_backbone(model, cfg.model, resume and (Path(out_dir) / "last.pt").exists())
    run_config = {"model": _model_section(cfg.model), "task_config": task_dict,
                  "train": config_dict(cfg.train)}
    return fit(model, BaselineTask(task), data, _fit_config(cfg.train), out_dir,
               eval_data=eval_data, resume=resume, overwrite=overwrite, run_config=run_config,
               progress=progress)


def load_bcp(path: str | os.PathLike, device: str | torch.device | None = None):
    """The trained :class:`~vhakit.models.bcp.BodyCodePredictor` (frozen VHA parts included) in
    a checkpoint or run folder (its ``best.pt`` if present, else ``last.pt``), in eval mode."""
    from vhakit.models.bcp import BodyCodePredictor

    _, ckpt = read_run(path, "bcp")
    rc = ckpt["run_config"]
    model = BodyCodePredictor(BCPConfig(**rc["model"]), VHAConfig(**rc["vha"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device or default_device()).eval()


def load_baseline(path: str | os.PathLike, device: str | torch.device | None = None):
    """The trained :class:`~vhakit.models.baseline.LMTBaseline` in a checkpoint or run folder."""
    from vhakit.models.baseline import LMTBaseline

    _, ckpt = read_run(path, "baseline")
    model = LMTBaseline(BaselineConfig(**ckpt["run_config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device or default_device()).eval()


@torch.no_grad()
def predict_vertices(model: torch.nn.Module, data: Dataset | DataLoader | str | os.PathLike,
                     batch_size: int = 4, device: str | torch.device | None = None) -> torch.Tensor:
    """Vertices ``(F, 108, 3)`` metres (CPU, float32) predicted by BCP or the baseline for every
    sample of ``data`` (a Dataset, a DataLoader that does not shuffle, or a dataset folder), in
    order, with the cuboid at the ground-truth pelvis (see the module docstring)."""
    loader = data if isinstance(data, DataLoader) else DataLoader(
        _as_multiview(data, "data"), batch_size=batch_size, shuffle=False)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    out = []
    try:
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            out.append(_run(model, batch, batch_center(batch, None, 0.0)).vertices.float().cpu())
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("data is empty")
    return torch.cat(out)
