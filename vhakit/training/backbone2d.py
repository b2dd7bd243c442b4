"""A pose-pretrained 2D backbone for BCP and the baseline (paper Sec. 3.1: their ResNet starts
from weights pretrained on human pose, via Learnable Triangulation).

The kit pretrains its own :class:`~vhakit.models.backbone.ResNetBackbone` on the synthetic world,
on a 2D task that needs no licence: from one view ``(3, H, W)`` predict the image position of
each of the 108 subsampled vertices. :class:`Pose2DNet` puts a 1x1 convolution (C -> 108 heatmap
logits) on the backbone's ``(C, H/4, W/4)`` features and takes the 2D soft-argmax of each
heatmap, with feature pixel ``k`` centred on image pixel ``4k`` (the backbone's
``pixel_centre``), so the features learn to be linearly decodable into vertex positions, which
is what unprojection needs. Loss: the L1 of the pixel positions ``(u, v)``, mean over vertices
(every vertex, occluded ones too: the network infers them, as it must for triangulation).
The target is the projection of ``vertices108`` with the view's calibrated camera
(:meth:`~vhakit.geometry.camera.Camera.project`).

Data: the views of a multi-view dataset, each view one 2D sample (a batch of ``B`` frames of
``V`` views trains on ``B V`` images). :func:`pretrain_backbone` defaults to the ``prior_pool``
poses rendered with the preset's cameras (images of the pool the VHA learns its prior from),
never ``h36m_like`` or ``lightstage_like``: a backbone pretrained on every training frame would
leak the frames that the data-efficiency curve withholds from BCP.

Use: ``MultiViewConfig.backbone_init`` = ``"pose2d"`` (the kit's shipped backbone for the
model's widths, :func:`shipped_backbone`: one per CPU preset in :data:`POSE2D_DIR`) or a path to a
:func:`pretrain_backbone` run folder / :func:`export_backbone` file; ``freeze_backbone=True``
keeps it fixed while BCP trains. :func:`load_backbone_weights` copies the weights.

Evaluation: ``err2d_px`` (mean pixel distance), ``pck`` (share of vertices within
:data:`PCK_FRACTION` of the image side), over all views of all frames.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vhakit._util import atomic_write_bytes
from vhakit.config import MultiViewConfig, bcp_configs, config_dict
from vhakit.data.datasets import as_multiview_dataset
from vhakit.models.backbone import ResNetBackbone
from vhakit.training.trainer import StepContext, TrainResult, fit, read_run

__all__ = ["Pose2DNet", "Pose2DTask", "soft_argmax_2d", "pretrain_backbone", "export_backbone",
           "load_backbone_weights", "read_backbone_file", "evaluate_backbone", "shipped_backbone",
           "torchvision_resnet18_weights", "POSE2D_DIR",
           "BACKBONE_FILE_FORMAT", "PCK_FRACTION", "BACKBONE_FIELDS"]

# the kit's pose-pretrained backbones, one per preset's widths: backbone2d-<preset>.pt
POSE2D_DIR = Path(__file__).resolve().parents[1] / "assets" / "pretrained"
BACKBONE_FILE_FORMAT = "vhakit-backbone2d-1"
PCK_FRACTION = 0.05  # a vertex counts as found within 5 % of the image side (6.4 px at 128 px)
# MultiViewConfig fields that fix the backbone's weights' shapes (and so must match to load)
BACKBONE_FIELDS = ("backbone", "backbone_channels", "feature_channels", "norm2d")


def soft_argmax_2d(logits: torch.Tensor, pixel_centre: tuple[int, float]) -> torch.Tensor:
    """Expected image position of each heatmap: ``logits (B, N, h, w)`` -> ``(B, N, 2)`` pixels
    ``(u, v)``; feature pixel ``k`` sits at image pixel ``stride k + offset``."""
    B, N, h, w = logits.shape
    prob = F.softmax(logits.float().flatten(2), dim=-1).view(B, N, h, w)
    stride, offset = pixel_centre
    xs = torch.arange(w, device=logits.device, dtype=prob.dtype) * stride + offset
    ys = torch.arange(h, device=logits.device, dtype=prob.dtype) * stride + offset
    u = (prob.sum(2) * xs).sum(-1)  # (B, N): marginal over rows, then expectation along x
    v = (prob.sum(3) * ys).sum(-1)
    return torch.stack([u, v], dim=-1)


class Pose2DNet(nn.Module):
    """Backbone + 1x1 heatmap head: images ``(B, 3, H, W)`` in [0, 1] -> vertex pixel positions
    ``(B, N, 2)``. ``self.backbone`` is exactly the BCP / baseline backbone of ``config``."""

    def __init__(self, config: MultiViewConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.feature_channels, config.backbone_channels,
                                       config.norm2d, config.backbone)
        self.head = nn.Conv2d(config.feature_channels, config.n_vertices, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(images))  # (B, N, H/4, W/4)
        return soft_argmax_2d(logits, self.backbone.pixel_centre)


def _views_and_targets(batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(images (B V, 3, H, W), target pixels (B V, N, 2), image side)`` of a multi-view batch."""
    from vhakit.geometry.camera import Camera

    for key in ("images", "K", "R", "t", "vertices108"):
        if key not in batch:
            raise ValueError(f"pose-2D pretraining needs multi-view batches with {key!r}")
    images = batch["images"]  # (B, V, 3, H, W)
    B, V, _, H, W = images.shape
    cam = Camera(K=batch["K"].float(), R=batch["R"].float(), t=batch["t"].float(),
                 dist=batch.get("dist"), image_size=(W, H))  # (B, V) cameras
    uv = cam.project(batch["vertices108"].float()[:, None])  # (B, V, N, 2)
    return images.reshape(B * V, 3, H, W), uv.reshape(B * V, *uv.shape[2:]), max(H, W)


@dataclass(frozen=True)
class Pose2DTask:
    """Train :class:`Pose2DNet` (see the module docstring)."""

    name: str = "pose2d"
    primary_metric: str = "err2d_px"

    def compute_loss(self, model, batch, ctx: StepContext):
        images, target, _ = _views_and_targets(batch)
        pred = model(images)
        loss = (pred - target).abs().sum(-1).mean()
        with torch.no_grad():
            err = (pred - target).norm(dim=-1).mean()
        return loss, {"err2d_px": err}

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        """``err2d_px`` and ``pck`` over every view of every sample."""
        tot = torch.zeros(3, dtype=torch.float64)
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            images, target, side = _views_and_targets(batch)
            dist = (model(images) - target).norm(dim=-1)  # (B V, N)
            tot += torch.tensor([dist.sum().item(), (dist <= PCK_FRACTION * side).sum().item(),
                                 dist.numel()], dtype=torch.float64)
        n = max(tot[2].item(), 1.0)
        return {"err2d_px": tot[0].item() / n, "pck": tot[1].item() / n}


def pretrain_backbone(preset: str = "teaching", data: Dataset | str | os.PathLike | None = None,
                      out_dir: str | os.PathLike = "runs/backbone2d", resume: bool = False, *,
                      eval_data: Dataset | str | os.PathLike | None = None,
                      overwrite: bool = False, progress: bool = True,
                      **overrides) -> TrainResult:
    """Pretrain the preset's BCP / baseline backbone on 2D vertex positions.

    Args:
        preset: ``tiny`` | ``teaching`` | ``paper``: the backbone's widths come from the
            preset's BCP model (the baseline's are the same), the optimiser settings from its BCP
            training; overrides: fields of :class:`~vhakit.config.BCPConfig` or
            :class:`~vhakit.config.TrainConfig` (e.g. ``max_steps=3000``, ``lr=1e-3``).
        data, eval_data: multi-view datasets or folders (see the module docstring for the
            choice of data); out_dir, resume, overwrite, progress: as
            :func:`vhakit.training.trainer.fit`.
    Returns:
        :class:`~vhakit.training.trainer.TrainResult`; ``result.model`` is the :class:`Pose2DNet`.
    """
    data = as_multiview_dataset(data, "data")
    eval_data = as_multiview_dataset(eval_data, "eval_data")
    if data is None:
        raise TypeError("data is required: a multi-view Dataset or a dataset folder")
    cfg = bcp_configs(preset, **overrides)
    torch.manual_seed(cfg.train.seed)
    model = Pose2DNet(cfg.model)
    run_config = {"model": config_dict(cfg.model), "train": config_dict(cfg.train)}
    # channels_last off: fit's whole-model conversion applies to 3D weights (there are none)
    return fit(model, Pose2DTask(), data, replace(cfg.train, channels_last=False), out_dir,
               eval_data=eval_data,
               resume=resume, overwrite=overwrite, run_config=run_config, progress=progress)


def _backbone_config(model: dict) -> dict:
    cfg = MultiViewConfig(**{k: model[k] for k in BACKBONE_FIELDS if k in model})
    return {k: config_dict(cfg)[k] for k in BACKBONE_FIELDS}


def _payload(ckpt: dict, card: dict | None = None) -> dict:
    """The backbone file's content from a :func:`pretrain_backbone` checkpoint."""
    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v.float().clone() for k, v in ckpt["model"].items()
                if k.startswith(prefix)}

    return {"format": BACKBONE_FILE_FORMAT,
            "config": _backbone_config(ckpt["run_config"]["model"]),
            "backbone": part("backbone."), "head": part("head."), "card": dict(card or {}),
            "steps": int(ckpt["position"]["step"])}


def export_backbone(run: str | os.PathLike, path: str | os.PathLike, card: dict | None = None) -> Path:
    """Write the backbone (and its 2D head, to check the card) of a :func:`pretrain_backbone`
    run (folder or checkpoint) as a small float32 file with its config and ``card``, for
    ``backbone_init``. Atomic."""
    buf = io.BytesIO()
    torch.save(_payload(read_run(run, "pose2d")[1], card), buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def shipped_backbone(config: MultiViewConfig) -> Path:
    """The shipped pose-pretrained backbone file (``POSE2D_DIR/backbone2d-*.pt``) whose widths
    are ``config``'s; FileNotFoundError naming the shipped ones otherwise."""
    mine, found = _backbone_config(config_dict(config)), []
    for path in sorted(POSE2D_DIR.glob("backbone2d-*.pt")):
        if torch.load(path, map_location="cpu", weights_only=True)["config"] == mine:
            return path
        found.append(path.stem.removeprefix("backbone2d-"))
    raise FileNotFoundError(
        f"backbone_init='pose2d': the kit ships pose-pretrained backbones for the "
        f"{', '.join(found) or 'no'} preset(s), none with this model's widths ({mine}); "
        "pretrain one with `vhakit pretrain-backbone --preset ...` and pass its run folder")


def read_backbone_file(source: str | os.PathLike, config: MultiViewConfig | None = None) -> dict:
    """``{"format", "config", "backbone", "head", "card", "steps"}`` of ``source``: ``"pose2d"``
    (the shipped file for ``config``'s widths, :func:`shipped_backbone`), an
    :func:`export_backbone` file, or a :func:`pretrain_backbone` run folder or checkpoint."""
    if str(source) == "pose2d":
        if config is None:
            raise ValueError("source='pose2d' needs the model's config to choose a shipped file")
        source = shipped_backbone(config)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"backbone_init: {path} does not exist; pass a `vhakit "
                                "pretrain-backbone` run folder, its last.pt, or a file written by "
                                "export_backbone")
    if path.is_dir():
        return _payload(read_run(path, "pose2d")[1])
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, ...
        raise ValueError(f"backbone_init: {path} cannot be read as a torch file "
                         f"({type(err).__name__}); pass a pretrain-backbone run folder or an "
                         "exported backbone file") from err
    if isinstance(payload, dict) and payload.get("format") == BACKBONE_FILE_FORMAT:
        return payload
    if isinstance(payload, dict) and payload.get("run_config", {}).get("task") == "pose2d":
        return _payload(payload)
    raise ValueError(f"backbone_init: {path} is neither a pose-2D pretraining run nor a file "
                     "written by export_backbone")


# torchvision's ResNet-18 names -> the kit's backbone (kind "torchvision-resnet18"): the stem is
# conv1 + bn1 (+ relu), stage4 is maxpool + layer1, stage8 is layer2; layer3/4 and fc are unused
_TV_PREFIXES = (("conv1.", "stem.0."), ("bn1.", "stem.1."), ("layer1.", "stage4.1."),
                ("layer2.", "stage8."))


def torchvision_resnet18_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a torchvision ResNet-18 ``state_dict`` that the kit's
    ``backbone="torchvision-resnet18"`` uses, renamed to its parameter names (``conv1``/``bn1``
    -> ``stem.0``/``stem.1``, ``layer1`` -> ``stage4.1``, ``layer2`` -> ``stage8``); ``layer3``,
    ``layer4`` and ``fc`` are dropped. ValueError when an entry of those four parts is missing.
    """
    out = {}
    for tv, mine in _TV_PREFIXES:
        part = {mine + k[len(tv):]: v for k, v in state.items() if k.startswith(tv)}
        if not part:
            raise ValueError(f"no '{tv}*' entries: not a torchvision ResNet-18 state_dict (its keys "
                             f"start with conv1., bn1., layer1. ... ; got {sorted(state)[:4]} ...)")
        out.update(part)
    return out


def _load_torchvision_state(backbone: ResNetBackbone, state: dict, path: Path) -> dict:
    """Load a torchvision ResNet-18 ``state`` (read from ``path``) into the stem and first two
    stages of a ``torchvision-resnet18`` backbone (its lateral and head layers stay as they
    are). Returns a small card."""
    if isinstance(state.get("state_dict"), dict):  # {"state_dict": ...} checkpoints
        state = state["state_dict"]
    weights = torchvision_resnet18_weights(state)
    own = backbone.state_dict()
    bad = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in weights.items()
           if k not in own or own[k].shape != v.shape}
    if bad:
        raise ValueError(f"backbone_init: {path} does not fit the ResNet-18 stages "
                         f"(name: shape there, here): {dict(list(bad.items())[:3])}")
    missing = [k for k in own if k.startswith(("stem.", "stage4.", "stage8."))
               and k not in weights]
    if missing:
        raise ValueError(f"backbone_init: {path} lacks {missing[:3]}")
    backbone.load_state_dict(weights, strict=False)
    return {"source": str(path), "kind": "torchvision-resnet18 state_dict",
            "loaded": len(weights)}


def load_backbone_weights(backbone: ResNetBackbone, config: MultiViewConfig,
                          source: str | os.PathLike) -> dict:
    """Copy pretrained weights from ``source`` (see :func:`read_backbone_file`) into
    ``backbone``, built from ``config``; the widths must match. Returns the file's card.

    With ``config.backbone == "torchvision-resnet18"``, ``source`` may also be a file holding a
    torchvision ResNet-18 ``state_dict`` (e.g. ImageNet weights saved on a machine with internet:
    ``torch.save(torchvision.models.resnet18(weights="DEFAULT").state_dict(), "resnet18.pt")``;
    the kit itself never downloads): its stem and first two stages are loaded
    (:func:`torchvision_resnet18_weights`), the lateral and head layers stay random."""
    path = Path(source)
    if config.backbone == "torchvision-resnet18" and str(source) != "pose2d" and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # read_backbone_file below says what is wrong with the file
            state = None
        if isinstance(state, dict) and state.get("format") != BACKBONE_FILE_FORMAT \
                and "run_config" not in state:
            return _load_torchvision_state(backbone, state, path)
    payload = read_backbone_file(source, config)
    mine = _backbone_config(config_dict(config))
    if payload["config"] != mine:
        diff = {k: (payload["config"][k], mine[k]) for k in mine if payload["config"][k] != mine[k]}
        raise ValueError(f"backbone_init={str(source)!r} was pretrained with other widths "
                         f"({', '.join(f'{k}: {a} there, {b} here' for k, (a, b) in diff.items())})"
                         "; pretrain one for this preset with `vhakit pretrain-backbone --preset "
                         "...` and pass its run folder, or set backbone_init=''")
    backbone.load_state_dict(payload["backbone"])
    return payload["card"]


@torch.no_grad()
def evaluate_backbone(source: str | os.PathLike, data: Dataset | str | os.PathLike,
                      batch_size: int = 4, config: MultiViewConfig | None = None) -> dict[str, float]:
    """``err2d_px`` and ``pck`` of a pretrained backbone with its 2D head (``source`` and
    ``config`` as :func:`read_backbone_file`) on ``data``, on the CPU."""
    from torch.utils.data import DataLoader

    payload = read_backbone_file(source, config)
    model = Pose2DNet(MultiViewConfig(**payload["config"]))
    model.backbone.load_state_dict(payload["backbone"])
    model.head.load_state_dict(payload["head"])
    loader = DataLoader(as_multiview_dataset(data, "data"), batch_size=batch_size, shuffle=False)
    return Pose2DTask().evaluate(model.eval(), loader, torch.device("cpu"))


def pretraining_data(preset: str = "teaching", root: str | os.PathLike = "data",
                     progress: bool = True) -> Path:
    """The default pose-2D pretraining set of a preset, built (or resumed) under ``root``: the
    2,000 held-out frames of ``prior_pool`` at its teaching size (1,000 sampled poses and 1,000
    frames of procedural clips of every action, each with a random body), rendered with the
    preset's cameras and image size. Leak-free for every table: no frame of ``h36m_like`` or
    ``lightstage_like``, and none the VHA trains on."""
    from vhakit.data.build import build_dataset, get_data_preset

    cfg = replace(get_data_preset(preset), size="teaching")
    out = Path(root) / preset / "pose2d-prior_pool-test-s0"
    return build_dataset(cfg, "prior_pool", "test", out, seed=0, images=True, progress=progress)
