"""The VHA's training task and entry points: :class:`VHATask` (heatmap inputs built on the
device, augmentation, the V and V' losses), :func:`train_vha`, :func:`load_vha`,
:func:`evaluate_vha` and its two evaluation sets. The loop itself is
:func:`vhakit.training.trainer.fit`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vhakit.config import VHATaskConfig, config_dict, vha_configs
from vhakit.runtime import default_device
from vhakit.training.trainer import (
    StepContext,
    TrainResult,
    _to_device,
    augment_params,
    fit,
    read_run,
    rotate_about_y,
)

__all__ = ["VHATask", "train_vha", "vha_test_sets", "evaluate_vha", "load_vha"]


@dataclass(frozen=True)
class VHATask:
    """Train the VHA on batches ``{"vertices108": (B, 108, 3), "pelvis": (B, 3)}`` (metres):
    augment on the device, encode the one-hot heatmaps, loss of paper Eqs. 2-4."""

    config: VHATaskConfig = field(default_factory=VHATaskConfig)
    name: str = "vha"
    primary_metric: str = "mpve_mm"

    def _inputs(self, batch: dict, ctx: StepContext | None) -> tuple[torch.Tensor, torch.Tensor]:
        for key in ("vertices108", "pelvis"):
            if key not in batch:
                raise ValueError(f"VHA batches need 'vertices108' (B, 108, 3) and 'pelvis' (B, 3);"
                                 f" got keys {sorted(batch)}")
        verts, pelvis = batch["vertices108"].float(), batch["pelvis"].float()
        if ctx is None or (not self.config.rotate and self.config.jitter_m == 0):
            return verts, pelvis
        angles, jitter = augment_params(ctx.seed, ctx.epoch, batch["sample_index"].cpu(),
                                        self.config.jitter_m, self.config.rotate)
        verts = rotate_about_y(verts, angles.to(verts.device), pelvis)
        return verts, pelvis + jitter.to(verts.device)

    def compute_loss(self, model, batch, ctx):
        from vhakit.models.vha import vha_loss

        verts, center = self._inputs(batch, ctx)
        out = model(verts, center, return_logits=False)
        loss, parts = vha_loss(out, verts)
        with torch.no_grad():
            mpve = (out.vertices - verts).norm(dim=-1).mean() * 1000
        return loss, {**parts, "mpve_mm": mpve}

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        """Mean per-vertex error (mm) of V and V' and the loss, over all samples, unaugmented."""
        tot = torch.zeros(4, dtype=torch.float64)
        for batch in loader:
            batch = _to_device(batch, device)
            verts, center = self._inputs(batch, None)
            out = model(verts, center, return_logits=False)
            err = (out.vertices - verts).norm(dim=-1).mean(-1) * 1000  # (B,) mm
            err_mid = (out.vertices_mid - verts).norm(dim=-1).mean(-1) * 1000
            loss = ((out.vertices - verts).abs().sum(-1).mean(-1)
                    + (out.vertices_mid - verts).abs().sum(-1).mean(-1))
            tot += torch.stack([err.sum(), err_mid.sum(), loss.sum(),
                                err.new_tensor(float(len(err)))]).double().cpu()
        n = max(tot[3].item(), 1.0)
        return {"mpve_mm": tot[0].item() / n, "mpve_mid_mm": tot[1].item() / n,
                "loss": tot[2].item() / n}


# ------------------------------------------------------------------------------------- VHA
def train_vha(preset: str = "teaching", data: Dataset | None = None,
              out_dir: str | os.PathLike = "runs/vha", resume: bool = False, *,
              eval_data: Dataset | None = None, overwrite: bool = False, progress: bool = True,
              **overrides) -> TrainResult:
    """Train the vertex heatmap autoencoder: preset ``preset`` (``tiny``, ``teaching``, ``paper``)
    with keyword overrides of any :class:`~vhakit.config.VHAConfig`,
    :class:`~vhakit.config.VHATaskConfig` or :class:`~vhakit.config.TrainConfig` field.

    Args:
        data: a torch Dataset of dicts with ``vertices108 (108, 3)`` and ``pelvis (3,)`` metres,
            or the folder of an on-disk dataset (``vhakit.data.MeshDataset.from_dir``).
        eval_data: the same, for evaluation (MPVE in mm of V and V').
        out_dir, resume, overwrite, progress: see :func:`fit`.
    Returns:
        :class:`TrainResult`; ``result.model`` is the trained :class:`~vhakit.models.vha.VHA`.
    """
    from vhakit.models.vha import VHA

    data, eval_data = _as_dataset(data, "data"), _as_dataset(eval_data, "eval_data")
    if data is None:
        raise TypeError("data is required: a torch Dataset or a dataset folder")
    cfg = vha_configs(preset, **overrides)
    torch.manual_seed(cfg.train.seed)
    model = VHA(cfg.model)
    run_config = {"model": config_dict(cfg.model), "task_config": config_dict(cfg.task),
                  "train": config_dict(cfg.train)}
    return fit(model, VHATask(cfg.task), data, cfg.train, out_dir, eval_data=eval_data,
               resume=resume, overwrite=overwrite, run_config=run_config, progress=progress)


def _as_dataset(data, name: str) -> Dataset | None:
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        from vhakit.data.datasets import MeshDataset

        if not Path(data).is_dir():
            raise FileNotFoundError(f"{name}: no dataset folder at {data}")
        return MeshDataset.from_dir(data)
    raise TypeError(f"{name} must be a torch Dataset of dicts with 'vertices108' and 'pelvis', "
                    f"or a dataset folder; got {type(data).__name__}")


def vha_test_sets(size: str = "teaching", seed: int = 0) -> dict[str, Dataset]:
    """The VHA's two evaluation sets (``MeshDataset``s): ``prior_pool`` test frames (same
    distribution as its training part) and ``real_mocap`` (the 20 real DeepMimic clips)."""
    from vhakit.data.datasets import MeshDataset

    return {"prior_pool": MeshDataset.from_split("prior_pool", "test", size=size, seed=seed),
            "real_mocap": MeshDataset.from_split("real_mocap", "test", size=size, seed=seed)}


@torch.no_grad()
def evaluate_vha(model: torch.nn.Module, datasets: dict[str, Dataset] | Dataset,
                 batch_size: int = 32, device: str | torch.device | None = None
                 ) -> dict[str, dict[str, float]]:
    """Reconstruction error of a VHA on unaugmented data: for each named dataset (dicts with
    ``vertices108 (108, 3)`` and ``pelvis (3,)``), ``{"mpve_mm": ..., "mpve_mid_mm": ...,
    "loss": ..., "frames": ...}``; MPVE is the mean over frames and the 108 vertices of the
    Euclidean error of V (and V') in millimetres. Default datasets: :func:`vha_test_sets`."""
    if isinstance(datasets, Dataset):
        datasets = {"data": datasets}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {}
    try:
        for name, data in datasets.items():
            if len(data) == 0:
                raise ValueError(f"datasets[{name!r}] is empty")
            loader = DataLoader(data, batch_size=batch_size, shuffle=False)
            out[name] = {**VHATask().evaluate(model, loader, device), "frames": len(data)}
    finally:
        model.train(was_training)
    return out


def load_vha(path: str | os.PathLike, device: str | torch.device | None = None):
    """The trained :class:`~vhakit.models.vha.VHA` in a checkpoint (``last.pt`` / ``best.pt``, or
    a run folder: its ``best.pt`` if from the same run as ``last.pt``, see :func:`read_run`), in
    eval mode."""
    from vhakit.config import VHAConfig
    from vhakit.models.vha import VHA

    _, ckpt = read_run(path, "vha")
    model = VHA(VHAConfig(**ckpt["run_config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device or default_device()).eval()
