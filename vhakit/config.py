"""Configuration: small frozen dataclasses and the named presets, as one literal dict.

Every default lives in exactly one place: the dataclass field. A preset lists only values; a run
is ``preset + overrides``, and an override with an unknown name raises (no silent typos)::

    cfg = vha_configs("teaching", epochs=3, lr=5e-4)   # -> VHARunConfig(model, task, train)
    cfg.model.grid, cfg.train.batch_size                # 32, 10

Presets (``PRESETS``; DESIGN.md "Presets"):

* ``tiny``: CI and smoke tests, 16^3 grid, batch 4; seconds per epoch on a 2-core CPU.
* ``teaching``: a 2-core CPU laptop, 32^3 grid, batch 10. Built for speed: the first
  convolution is a strided scatter (no full-resolution feature maps in the encoder), the work
  happens at G/2 = 16^3 and below, and each head is one upsampling step to 32 thin
  full-resolution channels followed by the 1x1 convolution to the 108 logit volumes.
  Built to learn fast too (measured on ``prior_pool``, see docs): the latent code stays spatial
  at G/4 (16 x 8^3: each cell is 25 cm, so encoding and decoding stay local; a G/8 code
  learned ~1.6x slower), the heads have 32 channels (the 108 logit maps are linear
  combinations of them: 8 or 16 channels learned far slower), and the soft-argmax inverse
  temperature is 20 with heads initialised 10x smaller (near-uniform heatmaps at the start,
  but logits of order 1 suffice to sharpen them; with beta = 1 they must grow to ~10 first).
  The budget is 1000 steps of batch 10 with Adam at a peak lr of 4e-3, 30 warm-up steps and a
  cosine decay. Unlike the paper (one-hot, Eq. 1) the input heatmaps are Gaussian on 3^3
  voxels: one-hot loses ~30 mm of position to quantisation at 32^3, which the short budget
  cannot learn to undo. Measured after 1000 steps (GPU runs of the same steps, prior_pool test
  MPVE): one-hot lr 1e-3 constant 42-44 mm; + cosine 4e-3 38-40; + beta 20 35; Gaussian
  input 29-30; + beta 20 27 mm (docs/vha.md).
* ``paper``: the paper's values (Sec. 3.1: 64^3 grid, 2.0 m cuboid, 108 vertices, Adam lr 1e-3,
  batch 10, 55 epochs, no augmentation) and an LMT/V2V-like structure at full resolution
  (BatchNorm, 7^3 first convolution at stride 1, 32 channels at 64^3, 1x1 output convolutions).
  The paper's Fig. 2 is not available to us: the channel and latent sizes are the kit's choice.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import asdict, dataclass, fields

__all__ = ["VHAConfig", "VHATaskConfig", "TrainConfig", "VHARunConfig", "PRESETS",
           "get_preset", "build_configs", "vha_configs", "config_dict"]

AUTOCAST_MODES = ("off", "bf16", "auto")
COMPILE_MODES = ("off", "on", "auto")
NORMS = ("batch", "group", "none")  # as vhakit.models.blocks.NORMS (this module imports no torch)
INPUT_ENCODINGS = ("onehot", "trilinear", "gaussian")
LR_SCHEDULES = ("constant", "cosine")


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _check_positive(value, name: str, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"number, got {value!r}")


@dataclass(frozen=True)
class VHAConfig:
    """Vertex heatmap autoencoder (``vhakit.models.vha.VHA``).

    Grid sizes: the stem maps the ``grid^3`` heatmaps to ``grid/stem_stride`` (level 0); each
    further entry of ``channels`` halves the grid; the latent code is
    ``(latent_channels, g, g, g)`` with ``g = grid / stem_stride / 2^(len(channels)-1)``.
    """

    n_vertices: int = 108  # subsampled mesh vertices (paper Sec. 3.1)
    grid: int = 32  # voxels per cuboid axis, G (paper: 64)
    side_m: float = 2.0  # cuboid edge length in metres (paper: 2.0)
    stem_channels: int = 16  # output channels of the first (sparse) convolution
    stem_kernel: int = 7  # V2V's first kernel size
    stem_stride: int = 2  # 1 = full-resolution stem (paper); 2 = strided (teaching)
    channels: tuple[int, ...] = (16, 32, 64)  # per level, level 0 at grid / stem_stride
    latent_channels: int = 32
    front_blocks: int = 1  # Res3D blocks at level 0 of the encoder (V2V front: 3)
    blocks: int = 1  # Res3D blocks per level elsewhere (encoder and decoder)
    refine_blocks: int = 1  # Res3D blocks between the intermediate head H' and the final head H
    head_channels: int = 32  # full-resolution channels of each head (stem_stride 2 only)
    head_init_scale: float = 1.0  # multiplies the Xavier init of the heads' 1x1 convolutions
    norm: str = "group"  # "batch" | "group" | "none" (see vhakit.models.blocks)
    beta: float = 1.0  # soft-argmax inverse temperature (LT's volume_multiplier)
    input_encoding: str = "onehot"  # encoder input: "onehot" (paper Eq. 1), "trilinear" or
    # "gaussian" (sigma 1 voxel on the 3^3 voxels around the vertex): both keep the sub-voxel
    # position that one-hot quantisation drops; all three run through the sparse first layer
    outside: str = "clamp"  # vertices outside the cuboid: "clamp" to the nearest voxel or "error"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        for name in ("n_vertices", "grid", "stem_channels", "stem_kernel", "stem_stride",
                     "latent_channels", "head_channels", "side_m", "beta", "head_init_scale"):
            _check_positive(getattr(self, name), name)
        for name in ("front_blocks", "blocks", "refine_blocks"):
            _check_positive(getattr(self, name), name, allow_zero=True)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels}")
        _check_choice(self.norm, "norm", NORMS)
        _check_choice(self.outside, "outside", ("clamp", "error"))
        _check_choice(self.input_encoding, "input_encoding", INPUT_ENCODINGS)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2 (the heads upsample by it), got "
                             f"{self.stem_stride}")
        if self.stem_kernel % 2 != 1:
            raise ValueError(f"stem_kernel must be odd, got {self.stem_kernel}")
        down = self.stem_stride * 2 ** (len(self.channels) - 1)
        if self.grid % down:
            raise ValueError(f"grid={self.grid} must be divisible by stem_stride * "
                             f"2^(len(channels)-1) = {down}; change grid, stem_stride or channels")

    @property
    def latent_grid(self) -> int:
        """Voxels per axis of the latent code volume."""
        return self.grid // (self.stem_stride * 2 ** (len(self.channels) - 1))

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        g = self.latent_grid
        return (self.latent_channels, g, g, g)


@dataclass(frozen=True)
class VHATaskConfig:
    """Augmentation of VHA training (evaluation never augments). Paper Sec. 3.1 uses none.

    The VHA's loss (Eqs. 2-4) is in metres: it has two vertex L1 terms and nothing else, so
    their unit only scales the whole loss, which Adam's steps do not depend on (up to its
    eps = 1e-8; BCP and the baseline, whose vertex term meets other terms, take it in mm:
    :class:`BCPTaskConfig`). ``TrainConfig.grad_clip`` is a gradient norm in this unit."""

    rotate: bool = True  # random rotation about the vertical (y) axis through the pelvis
    jitter_m: float = 0.05  # cuboid centre = pelvis + U[-jitter_m, jitter_m]^3 metres

    def __post_init__(self) -> None:
        _check_positive(self.jitter_m, "jitter_m", allow_zero=True)


@dataclass(frozen=True)
class TrainConfig:
    """The generic trainer (``vhakit.training.trainer.fit``); shared by VHA, BCP and the baseline."""

    lr: float = 1e-3  # Adam learning rate (the peak, with a schedule)
    lr_schedule: str = "constant"  # "constant" or "cosine": decays to 0 at the last step
    # (max_steps, or epochs x steps per epoch); a pure function of the step (exact resume)
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps to lr
    batch_size: int = 10  # global batch; split evenly over DDP ranks
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimiser steps in total (0: no limit)
    seed: int = 0
    device: str = "auto"  # "auto" (cuda, mps, cpu), or e.g. "cpu", "cuda:1"
    autocast: str = "off"  # "off", "bf16" or "auto" (bf16 on CUDA only; bf16 is slow on CPUs)
    # channels_last_3d weights for the 3D convolutions. Off by default: measured side by side
    # (docs/performance.md) the VHA step is 1.15-1.6x faster on CPU without it (ReLU and GroupNorm
    # backward are slow in that layout) and no faster on an H100 (60.1 vs 59.1 samples/s).
    channels_last: bool = False
    # torch.compile the training forward (and backward): "off", "on", or "auto" (CUDA only).
    # Measured (docs/performance.md): on an H100 / H200 the paper VHA step is 1.4-1.5x and the
    # paper BCP step 1.15-1.3x faster after about a minute of compiling; on 2 CPU cores compiling
    # takes 80-130 s for 1.1x, so "auto" leaves CPUs eager. The paper presets use "auto".
    compile: str = "off"
    deterministic: bool = False  # torch.use_deterministic_algorithms(True)
    grad_clip: float = 0.0  # max gradient norm (0: off)
    log_every: int = 10  # steps between train log rows
    eval_every: int = 0  # steps between evaluations (0: at the end of every epoch)
    save_every: int = 50  # steps between checkpoints (0: only at the end of every epoch)
    # DataLoader worker processes (training and evaluation). 0 suits mesh datasets (small
    # tensors) and the CPU presets; multi-view images on a GPU need workers: the paper BCP trainer
    # ran at 25.5 samples/s with 0 and 47.9 with 6 on an H200 (4 PNG views of 384 px per sample,
    # ~15 ms to decode; docs/performance.md). The paper BCP and baseline presets use 6.
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check_positive(self.lr, "lr")
        for name in ("batch_size", "epochs"):
            _check_positive(getattr(self, name), name)
        for name in ("max_steps", "log_every", "eval_every", "save_every", "num_workers",
                     "grad_clip", "warmup_steps"):
            _check_positive(getattr(self, name), name, allow_zero=True)
        _check_choice(self.autocast, "autocast", AUTOCAST_MODES)
        _check_choice(self.compile, "compile", COMPILE_MODES)
        _check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)


@dataclass(frozen=True)
class VHARunConfig:
    """Everything one VHA training run is built from."""

    model: VHAConfig
    task: VHATaskConfig
    train: TrainConfig


# Presets: values only (defaults live in the dataclasses). Stage "vha" has three sections.
PRESETS: dict[str, dict[str, dict[str, dict]]] = {
    "tiny": {
        "vha": {
            "model": {"grid": 16, "stem_channels": 8, "channels": (8, 16), "latent_channels": 8,
                      "head_channels": 16, "beta": 10.0, "head_init_scale": 0.1},
            "task": {},
            "train": {"batch_size": 4, "epochs": 2, "log_every": 5, "save_every": 20},
        },
    },
    "teaching": {
        "vha": {
            "model": {"grid": 32, "stem_channels": 16, "channels": (16, 32), "latent_channels": 16,
                      "head_channels": 32, "beta": 20.0, "head_init_scale": 0.1,
                      "input_encoding": "gaussian"},
            "task": {},
            # The budget is max_steps (~10 min on 2 cores); epochs only caps small datasets.
            "train": {"batch_size": 10, "epochs": 100, "max_steps": 1000, "lr": 4e-3,
                      "lr_schedule": "cosine", "warmup_steps": 30},
        },
    },
    "paper": {
        "vha": {
            "model": {"grid": 64, "stem_channels": 16, "stem_stride": 1,
                      "channels": (32, 64, 128, 128, 128), "latent_channels": 64,
                      "front_blocks": 3, "refine_blocks": 2, "norm": "batch"},
            "task": {"rotate": False, "jitter_m": 0.0},  # "No augmentation" (Sec. 3.1)
            "train": {"lr": 1e-3, "batch_size": 10, "epochs": 55, "autocast": "auto",
                      "compile": "auto", "save_every": 500, "log_every": 50},
        },
    },
}


def get_preset(name: str) -> dict[str, dict[str, dict]]:
    """A deep copy of ``PRESETS[name]``; ValueError naming the known presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_configs(values: dict[str, dict], classes: dict[str, type],
                  overrides: dict | None = None) -> dict[str, object]:
    """Instantiate ``classes[section](**values[section])`` with ``overrides`` applied.

    An override is a bare field name (``lr=1e-4``) and goes to the one section that has it, or
    ``"section.field"`` when a name is in several sections. Unknown names raise ValueError with
    the close matches; so do unknown keys inside ``values``.
    """
    values = {sec: dict(values.get(sec, {})) for sec in classes}
    owners: dict[str, list[str]] = {}
    for sec, cls in classes.items():
        names = {f.name for f in fields(cls)}
        unknown = set(values[sec]) - names
        if unknown:
            raise ValueError(f"preset section {sec!r} has unknown keys {sorted(unknown)} for "
                             f"{cls.__name__}; known: {sorted(names)}")
        for n in names:
            owners.setdefault(n, []).append(sec)
    for key, val in (overrides or {}).items():
        sec, _, name = key.rpartition(".")
        if sec:
            if sec not in classes or sec not in owners.get(name, []):
                raise ValueError(f"unknown override {key!r}; sections: {sorted(classes)}")
        else:
            secs = owners.get(name)
            if not secs:
                close = difflib.get_close_matches(name, list(owners), n=3)
                hint = f"; did you mean {close}?" if close else ""
                raise ValueError(f"unknown override {name!r}{hint} Known: {sorted(owners)}")
            if len(secs) > 1:
                raise ValueError(f"override {name!r} is ambiguous; write one of "
                                 f"{[s + '.' + name for s in secs]}")
            sec = secs[0]
        values[sec][name] = val
    return {sec: cls(**values[sec]) for sec, cls in classes.items()}


def vha_configs(preset: str = "teaching", **overrides) -> VHARunConfig:
    """The configs of a VHA run: preset ``preset`` with keyword overrides (field names of
    :class:`VHAConfig`, :class:`VHATaskConfig` or :class:`TrainConfig`)."""
    cfg = build_configs(get_preset(preset)["vha"],
                        {"model": VHAConfig, "task": VHATaskConfig, "train": TrainConfig},
                        overrides)
    return VHARunConfig(**cfg)


def config_dict(cfg) -> dict:
    """A plain dict of a config dataclass (tuples become lists: JSON and checkpoint friendly)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(asdict(cfg))


# ------------------------------------------------------------- BCP and the LMT-style baseline
AGGREGATIONS = ("softmax", "sum", "mean")  # as vhakit.models.unproject.AGGREGATIONS
BACKBONES = ("resnet", "torchvision-resnet18")  # as vhakit.models.backbone.BACKBONES


@dataclass(frozen=True)
class MultiViewConfig:
    """The multi-view front end shared by BCP and the baseline (``vhakit.models.bcp``): the
    visibility module, the 2D backbone (features at 1/4 of the image size), unprojection into
    the cuboid and the aggregation over views."""

    n_vertices: int = 108  # subsampled vertices (visibility logits per view)
    backbone: str = "resnet"  # "resnet" (the kit's) | "torchvision-resnet18" (needs torchvision)
    backbone_channels: tuple[int, ...] = (16, 32, 64)  # widths at H/2, H/4, H/8
    feature_channels: int = 16  # channels unprojected into the cuboid (LT: 32)
    visibility_channels: tuple[int, ...] = (16, 32, 64, 64)  # visibility CNN, one stride-2 conv each
    aggregation: str = "softmax"  # "softmax" | "sum" | "mean" over views (LT H36M: softmax)
    norm2d: str = "group"  # 2D normalisation: "group" | "batch"
    # "" (random) | "pose2d" (the kit's pose-pretrained backbone) | a pretrain-backbone run/file
    backbone_init: str = ""
    freeze_backbone: bool = False  # keep the (pretrained) backbone fixed while training

    def __post_init__(self) -> None:
        if self.freeze_backbone and not self.backbone_init:
            raise ValueError("freeze_backbone=True needs backbone_init ('pose2d' or a "
                             "`vhakit pretrain-backbone` run): a frozen random backbone "
                             "cannot learn")
        for name in ("backbone_channels", "visibility_channels"):
            object.__setattr__(self, name, tuple(int(c) for c in getattr(self, name)))
        for name in ("n_vertices", "feature_channels"):
            _check_positive(getattr(self, name), name)
        if len(self.backbone_channels) != 3 or min(self.backbone_channels) < 1:
            raise ValueError(f"backbone_channels must be 3 positive ints, got {self.backbone_channels}")
        if not self.visibility_channels or min(self.visibility_channels) < 1:
            raise ValueError(f"visibility_channels must be positive ints, got {self.visibility_channels}")
        _check_choice(self.backbone, "backbone", BACKBONES)
        _check_choice(self.aggregation, "aggregation", AGGREGATIONS)
        _check_choice(self.norm2d, "norm2d", ("group", "batch"))


@dataclass(frozen=True)
class BCPConfig(MultiViewConfig):
    """Body code predictor (``vhakit.models.bcp.BodyCodePredictor``). The grid, cuboid and 3D
    encoder come from the trained VHA's :class:`VHAConfig`."""


@dataclass(frozen=True)
class BaselineConfig(MultiViewConfig):
    """LMT-style baseline (``vhakit.models.baseline.LMTBaseline``): a V2V-style encoder-decoder
    with additive skips at ``grid / stem_stride`` and below, regressing the vertex heatmaps."""

    grid: int = 32  # voxels per cuboid axis (paper: 64)
    side_m: float = 2.0  # cuboid edge, metres
    stem_channels: int = 16
    stem_kernel: int = 7  # V2V's first kernel size
    stem_stride: int = 2  # 1 = full resolution (V2V); 2 = the 3D work at G/2 and below
    channels: tuple[int, ...] = (16, 32, 64)  # per level, level 0 at grid / stem_stride
    head_channels: int = 32  # full-resolution channels before the 1x1 output (stride 2 only)
    head_init_scale: float = 0.1  # multiplies the Xavier init of the output convolution
    beta: float = 10.0  # soft-argmax inverse temperature
    norm: str = "group"  # 3D normalisation: "batch" | "group" | "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        for name in ("grid", "side_m", "stem_channels", "stem_kernel", "head_channels",
                     "head_init_scale", "beta"):
            _check_positive(getattr(self, name), name)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels}")
        _check_choice(self.norm, "norm", NORMS)
        _check_choice(self.stem_stride, "stem_stride", (1, 2))
        if self.stem_kernel % 2 != 1:
            raise ValueError(f"stem_kernel must be odd, got {self.stem_kernel}")
        down = self.stem_stride * 2 ** (len(self.channels) - 1)
        if self.grid % down:
            raise ValueError(f"grid={self.grid} must be divisible by stem_stride * "
                             f"2^(len(channels)-1) = {down}")


# Unit of the vertex L1 in the multi-view losses -> metres to that unit. The library computes in
# metres; the loss states its unit because the weights of the other terms are tuned to it.
VERTEX_LOSS_UNITS = {"mm": 1000.0, "m": 1.0}
# A run config written before ``vertex_loss_unit`` existed trained its vertex L1 in metres.
LEGACY_VERTEX_LOSS_UNIT = "m"


@dataclass(frozen=True)
class BCPTaskConfig:
    """BCP training (paper Eqs. 5-7): ``L = L_vertex + code_weight * mean|z_hat - z| +
    visibility_weight * vertex_loss_scale * BCE``, with ``L_vertex`` the mean over the vertices
    of ``|V_hat_i - V_i|_1`` in ``vertex_loss_unit`` and BCE that of the visibility module. The
    switches are Table 1's columns. The cuboid is centred on the ground-truth pelvis +
    U[-jitter_m, jitter_m]^3 at training time and on the ground-truth pelvis at evaluation (as
    LMT's use_gt_pelvis).

    ``vertex_loss_unit`` ("mm" | "m"): the paper's data (Human3.6M, LT/LMT code) are in
    millimetres, and lambda = 100 (Sec. 3.1) weighs the code term against a vertex L1 in mm.
    In metres the same lambda gives the code term 95-98 % of the loss (docs/bcp.md).
    ``TrainConfig.grad_clip`` is an absolute gradient norm and so depends on it.

    ``visibility_weight`` weighs the BCE against the vertex L1 **in metres**, whatever the unit
    (hence the factor ``vertex_loss_scale``, 1000 in mm): the unit then moves only the code
    term, the one the paper balances. The paper's loss (Eqs. 5-7) has no visibility term, and
    LMT's visibility module is not public: the BCE is the kit's reconstruction. Its gradient
    reaches only the visibility module, which also gets the vertex and code terms' gradients
    through the view weights; with a plain weight 1 against the vertex L1 in mm those drown it
    (tiny preset, 630 steps: test visibility accuracy 0.58 against 0.75 with the factor, at
    the same MPVE, 168 mm; docs/bcp.md).
    """

    use_vertex_loss: bool = True
    use_code_loss: bool = True
    init_from_vha: bool = True  # start the 3D encoder from the trained VHA encoder
    code_weight: float = 100.0  # lambda (paper Sec. 3.1)
    visibility_weight: float = 1.0
    jitter_m: float = 0.05
    vertex_loss_unit: str = "mm"  # "mm" (the paper's data) | "m"

    def __post_init__(self) -> None:
        if not (self.use_vertex_loss or self.use_code_loss):
            raise ValueError("use_vertex_loss and use_code_loss are both False: nothing to train")
        for name in ("code_weight", "visibility_weight", "jitter_m"):
            _check_positive(getattr(self, name), name, allow_zero=True)
        _check_choice(self.vertex_loss_unit, "vertex_loss_unit", VERTEX_LOSS_UNITS)

    @property
    def vertex_loss_scale(self) -> float:
        """Metres -> ``vertex_loss_unit`` (1000 for mm)."""
        return VERTEX_LOSS_UNITS[self.vertex_loss_unit]


@dataclass(frozen=True)
class BaselineTaskConfig:
    """Baseline training: ``L_vertex + visibility_weight * vertex_loss_scale * BCE``, the vertex
    L1 in ``vertex_loss_unit`` (mm by default, the unit of LMT's data) and ``visibility_weight``
    against the vertex L1 in metres, as :class:`BCPTaskConfig`: with only these two terms the
    unit scales the whole loss. Cuboid centre as :class:`BCPTaskConfig`."""

    visibility_weight: float = 1.0
    jitter_m: float = 0.05
    vertex_loss_unit: str = "mm"  # "mm" | "m"

    def __post_init__(self) -> None:
        for name in ("visibility_weight", "jitter_m"):
            _check_positive(getattr(self, name), name, allow_zero=True)
        _check_choice(self.vertex_loss_unit, "vertex_loss_unit", VERTEX_LOSS_UNITS)

    @property
    def vertex_loss_scale(self) -> float:
        """Metres -> ``vertex_loss_unit`` (1000 for mm)."""
        return VERTEX_LOSS_UNITS[self.vertex_loss_unit]


@dataclass(frozen=True)
class BCPRunConfig:
    model: BCPConfig
    task: BCPTaskConfig
    train: TrainConfig


@dataclass(frozen=True)
class BaselineRunConfig:
    model: BaselineConfig
    task: BaselineTaskConfig
    train: TrainConfig


# channels_last is off: vhakit.training.trainer.fit would convert every weight, 2D ones included (an error);
# the models put their 3D convolutions in channels-last-3d themselves.
# lr: tiny/teaching train for minutes from scratch on a CPU, where 1e-3 learns much faster than the
# paper's 1e-4 (tiny h36m_like, 3 epochs, test MPVE: BCP 143 / 127 / 116 mm at lr 1e-4 / 3e-4 /
# 1e-3; baseline 199 / 128 mm at 3e-4 / 1e-3). The paper preset keeps the paper's 1e-4.
_MULTIVIEW_PRESETS: dict[str, dict[str, dict[str, dict]]] = {
    "tiny": {
        "bcp": {
            "model": {"backbone_channels": (8, 16, 32), "feature_channels": 8,
                      "visibility_channels": (8, 16, 32)},
            "task": {},
            "train": {"lr": 1e-3, "batch_size": 2, "epochs": 2, "log_every": 5, "save_every": 20,
                      "channels_last": False},
        },
        "baseline": {
            "model": {"backbone_channels": (8, 16, 32), "feature_channels": 8,
                      "visibility_channels": (8, 16, 32), "grid": 16, "stem_channels": 8,
                      "channels": (8, 16), "head_channels": 16},
            "task": {},
            "train": {"lr": 1e-3, "batch_size": 2, "epochs": 2, "log_every": 5, "save_every": 20,
                      "channels_last": False},
        },
    },
    "teaching": {
        "bcp": {"model": {}, "task": {}, "train": {"lr": 1e-3, "batch_size": 3, "epochs": 2,
                                                   "channels_last": False}},
        "baseline": {"model": {}, "task": {}, "train": {"lr": 1e-3, "batch_size": 3, "epochs": 2,
                                                        "channels_last": False}},
    },
    "paper": {  # Sec. 3.1: 384^2 images (data preset), 64^3, lr 1e-4, batch 3, 20 epochs, no augmentation
        "bcp": {
            "model": {"backbone_channels": (64, 128, 256), "feature_channels": 32,
                      "visibility_channels": (32, 64, 128, 256), "norm2d": "batch"},
            "task": {"jitter_m": 0.0},
            "train": {"lr": 1e-4, "batch_size": 3, "epochs": 20, "autocast": "auto",
                      "compile": "auto", "num_workers": 6, "save_every": 500,
                      "log_every": 50, "channels_last": False},
        },
        "baseline": {
            "model": {"backbone_channels": (64, 128, 256), "feature_channels": 32,
                      "visibility_channels": (32, 64, 128, 256), "norm2d": "batch", "grid": 64,
                      "stem_stride": 1, "channels": (32, 64, 128, 128, 128), "norm": "batch",
                      "beta": 1.0, "head_init_scale": 1.0},
            "task": {"jitter_m": 0.0},
            "train": {"lr": 1e-4, "batch_size": 3, "epochs": 20, "autocast": "auto",
                      "compile": "auto", "num_workers": 6, "save_every": 500,
                      "log_every": 50, "channels_last": False},
        },
    },
}
for _name, _stages in _MULTIVIEW_PRESETS.items():
    PRESETS[_name].update(_stages)

__all__ += ["MultiViewConfig", "BCPConfig", "BaselineConfig", "BCPTaskConfig",
            "BaselineTaskConfig", "BCPRunConfig", "BaselineRunConfig", "bcp_configs",
            "baseline_configs"]


def bcp_configs(preset: str = "teaching", **overrides) -> BCPRunConfig:
    """The configs of a BCP run: preset ``preset`` with keyword overrides (field names of
    :class:`BCPConfig`, :class:`BCPTaskConfig` or :class:`TrainConfig`)."""
    cfg = build_configs(get_preset(preset)["bcp"],
                        {"model": BCPConfig, "task": BCPTaskConfig, "train": TrainConfig},
                        overrides)
    return BCPRunConfig(**cfg)


def baseline_configs(preset: str = "teaching", **overrides) -> BaselineRunConfig:
    """The configs of a baseline run (fields of :class:`BaselineConfig`,
    :class:`BaselineTaskConfig` or :class:`TrainConfig`)."""
    cfg = build_configs(get_preset(preset)["baseline"],
                        {"model": BaselineConfig, "task": BaselineTaskConfig, "train": TrainConfig},
                        overrides)
    return BaselineRunConfig(**cfg)


# ---------------------------------------------------------------- command-line overrides
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_value(text: str, like, key: str):
    """``text`` as the type of ``like`` (a field's default): bool, int, float, str or a tuple
    written with commas (``16,32,64``)."""
    try:
        if isinstance(like, bool):
            low = text.strip().lower()
            if low not in _TRUE + _FALSE:
                raise ValueError
            return low in _TRUE
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, tuple):
            items = [t for t in text.replace("(", "").replace(")", "").split(",") if t.strip()]
            kind = type(like[0]) if like else float
            return tuple(_parse_value(t, kind(0), key) for t in items)
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected {type(like).__name__} "
                         f"(like {like!r})") from None
    return text


def parse_overrides(items, classes: dict[str, type]) -> dict:
    """``["epochs=20", "train.lr=3e-4"]`` -> ``{"epochs": 20, "train.lr": 0.0003}``, each value
    converted to the type of the field it sets (the dataclass default's type).

    ``classes`` maps section names to config classes, as in :func:`build_configs`, which then
    checks the names and values; a key here must name a field of some section (close matches
    are suggested otherwise) and an item must contain ``=``.
    """
    defaults: dict[str, object] = {}
    for sec, cls in classes.items():
        for f in fields(cls):
            defaults.setdefault(f.name, f.default)
            defaults[f"{sec}.{f.name}"] = f.default
    out: dict[str, object] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write FIELD=VALUE, e.g. --set epochs=20")
        if key not in defaults:
            close = difflib.get_close_matches(key.rpartition(".")[2], list(defaults), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"--set {key}: no such config field{hint}")
        out[key] = _parse_value(text.strip(), defaults[key], key)
    return out


RUN_CLASSES = {"vha": {"model": VHAConfig, "task": VHATaskConfig, "train": TrainConfig},
               "bcp": {"model": BCPConfig, "task": BCPTaskConfig, "train": TrainConfig},
               "baseline": {"model": BaselineConfig, "task": BaselineTaskConfig,
                            "train": TrainConfig},
               # pose-2D pretraining of the BCP / baseline backbone (vhakit.training.backbone2d)
               "pose2d": {"model": BCPConfig, "train": TrainConfig}}
__all__ += ["parse_overrides", "RUN_CLASSES"]
