"""One trainer for every model of the kit (VHA now; BCP and the LMT-style baseline plug in).

A model is trained by :func:`fit` together with a *task*: an object with
``compute_loss(model, batch, ctx) -> (loss, metrics)`` and ``evaluate(model, loader, device) ->
metrics`` (:class:`Task`). The trainer owns everything else:

* Adam, seeding, device choice (cuda, mps, cpu; ``VHAKIT_DEVICE`` overrides), optional bf16
  autocast (never the default on CPU: ~60x slower there), channels-last-3d memory format,
  optional ``torch.compile`` (``TrainConfig.compile``; if compiling fails the run warns and goes
  on eagerly).
* A run that diverges stops with ``FloatingPointError``: a NaN or infinite loss at the next log
  row, NaN or infinite weights at the next checkpoint, which is then not written.
* tqdm progress with the running loss; train rows every ``log_every`` steps and evaluation rows
  (``eval_every`` steps or each epoch) in ``metrics.csv`` and ``metrics.json``; see
  :func:`vhakit.viz.plot_history`.
* Checkpoints (``last.pt``, and ``best.pt`` for the best evaluation) holding the model, the
  optimiser, the RNG states, the position (epoch, batch within the epoch, step), the history, the
  run's configuration and its run id. Written atomically: a temporary file in the same folder,
  fsync, then ``os.replace``; a crash leaves either the old or the new file, never a torn one.
* A run folder holds only :data:`RUN_FILES`. ``overwrite=True`` deletes them (and refuses while
  the folder holds anything else); :func:`read_run` takes ``best.pt`` only when it records the
  same run id as ``last.pt``, so a best model of an earlier run is never read as this run's.
* ``resume=True`` continues exactly: the same weights as a run that was never interrupted. The
  sample order of epoch ``e`` is a permutation seeded by ``seed + e`` (``DistributedSampler``), so
  a mid-epoch resume skips the batches already done; augmentation is drawn per sample from
  ``(seed, epoch, sample index)`` and needs no generator state (it is therefore also independent
  of the number of processes).
* DDP under ``torchrun`` (detected from ``WORLD_SIZE``): NCCL on GPUs, gloo on CPUs; the
  configured ``batch_size`` is the global batch, split evenly over the ranks; rank 0 logs,
  evaluates and writes checkpoints.

Datasets yield dicts of tensors; ``fit`` adds ``sample_index``. Batches are moved to the training
device and everything derived from them (heatmaps, voxel indices) is computed there.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
import uuid
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vhakit._util import atomic_write_bytes
from vhakit.config import TrainConfig, config_dict
from vhakit.runtime import default_device

__all__ = ["Task", "StepContext", "TrainResult", "fit", "save_checkpoint", "load_checkpoint",
           "check_compatible", "augment_params", "rotate_about_y", "lr_at", "read_run",
           "CHECKPOINT_FORMAT", "RUN_FILES"]

CHECKPOINT_FORMAT = "vhakit-checkpoint-1"
# Settings that may change when resuming: they do not change what the run computes.
RESUME_MUTABLE = {"train.epochs", "train.max_steps", "train.log_every", "train.eval_every",
                  "train.save_every", "train.device", "train.num_workers", "train.channels_last",
                  "train.compile"}
#: Every file a training run writes into its folder: the checkpoints and the history (``fit``) and
#: the marker of a finished cached run (``done.json``, :mod:`vhakit.experiments.pipeline`). ``overwrite=True``
#: deletes exactly these, plus their temporary files (``.NAME.*.tmp``) left by a crash.
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "done.json")


# ----------------------------------------------------------------------------- task protocol
@dataclass(frozen=True)
class StepContext:
    """What a task may need to know about the current step."""

    epoch: int
    step: int
    device: torch.device
    seed: int


class Task(Protocol):
    name: str
    primary_metric: str  # evaluation metric to minimise (selects best.pt)

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor],
                     ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def evaluate(self, model: torch.nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]: ...


def augment_params(seed: int, epoch: int, indices: torch.Tensor, jitter_m: float,
                   rotate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample augmentation, a pure function of ``(seed, epoch, sample index)``.

    Returns ``angles (B,)`` radians in ``[0, 2 pi)`` (zeros if not ``rotate``) and
    ``jitter (B, 3)`` metres in ``[-jitter_m, jitter_m]``, float32 on the CPU.
    """
    out = torch.empty(len(indices), 4)
    for row, idx in enumerate(indices.tolist()):
        g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + int(idx))
        out[row] = torch.rand(4, generator=g)
    angles = out[:, 0] * (2 * math.pi) if rotate else torch.zeros(len(indices))
    return angles, (2 * out[:, 1:] - 1) * jitter_m


def rotate_about_y(points: torch.Tensor, angles: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Rotate ``points (B, N, 3)`` by ``angles (B,)`` radians about the vertical (y) axis through
    ``origin (B, 3)``; positive angles turn +z towards +x (right-handed about +y)."""
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    R = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).view(-1, 3, 3)  # (B, 3, 3)
    return (points - origin[:, None]) @ R.transpose(1, 2) + origin[:, None]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint dict (see :func:`fit` for its keys)."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; ValueError if it is truncated,
    corrupt or not a vhakit checkpoint, FileNotFoundError if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                         "truncated or corrupt. Delete it to start over, or restore a copy") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a vhakit checkpoint (format {got!r}, expected "
                         f"{CHECKPOINT_FORMAT!r})")
    missing = {"model", "optimizer", "run_config", "position"} - set(ckpt)
    if missing:
        raise ValueError(f"checkpoint {path} lacks {sorted(missing)}; it is incomplete")
    return ckpt


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_compatible(saved: dict, current: dict, path: str | os.PathLike = "checkpoint",
                     ignore: set[str] = frozenset(RESUME_MUTABLE)) -> None:
    """ValueError listing every setting in which two run configurations differ (``ignore``d
    keys excepted), e.g. ``model.grid: checkpoint 16, this run 32``."""
    a, b = _flatten(saved), _flatten(current)
    diffs = [f"{k}: checkpoint {a.get(k, '<absent>')!r}, this run {b.get(k, '<absent>')!r}"
             for k in sorted(set(a) | set(b)) if k not in ignore and a.get(k) != b.get(k)]
    if diffs:
        raise ValueError(f"{path} was written by a different configuration:\n  " + "\n  ".join(diffs)
                         + "\nResume with the original settings, or train into another out_dir.")


def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
             "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ------------------------------------------------------------------------ data and processes
class _Indexed(Dataset):
    """Adds ``sample_index`` (the dataset index) to each sample dict."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        sample = self.data[i]
        if not isinstance(sample, dict):
            raise TypeError(f"datasets must yield dicts of tensors, got {type(sample).__name__}")
        return {**sample, "sample_index": torch.tensor(i)}


class _ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (permutation seeded by ``seed + epoch``, rank ``r`` takes every
    ``world``-th index) that can start an epoch after ``skip`` of its indices."""

    skip = 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_dist(cfg: TrainConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.device == "auto":
        device = default_device()
    else:
        device = torch.device(cfg.device)
    if world <= 1:
        return _Dist(device=device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        device = torch.device("cpu")  # gloo: CPU tensors only
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(world, dist.get_rank(), device, owns)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def lr_at(config: TrainConfig, step: int, horizon: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``horizon`` steps: ``config.lr``,
    after a linear warm-up of ``config.warmup_steps``, constant or cosine-decayed to 0 at
    ``horizon`` (``config.lr_schedule``)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        span = max(horizon - config.warmup_steps, 1)
        frac = min(max(step - config.warmup_steps, 0) / span, 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return config.lr


# ---------------------------------------------------------------------------------- history
def _write_history(out_dir: Path, history: list[dict]) -> None:
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(out_dir / "metrics.csv", buf.getvalue().encode())
    atomic_write_bytes(out_dir / "metrics.json", json.dumps({"history": history}, indent=1).encode())


# -------------------------------------------------------------------------------------- fit
@dataclass
class TrainResult:
    model: torch.nn.Module  # the trained model (unwrapped from DDP)
    history: list[dict]
    out_dir: Path
    checkpoint: Path  # last.pt
    best: float | None  # best evaluation value of the task's primary metric


def fit(model: torch.nn.Module, task: Task, train_data: Dataset, config: TrainConfig,
        out_dir: str | os.PathLike, *, eval_data: Dataset | None = None, resume: bool = False,
        overwrite: bool = False, run_config: dict | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``train_data`` with ``task``'s loss; see the module docstring.

    Args:
        config: optimiser, schedule, device, logging and checkpoint settings.
        out_dir: checkpoints and metrics go here.
        eval_data: evaluated every ``config.eval_every`` steps (0: after every epoch).
        resume: continue from ``out_dir/last.pt`` if it exists (exactly); it must have been
            written with the same ``run_config`` (except ``RESUME_MUTABLE`` settings). Without
            ``last.pt`` a new run starts, and the files of the run that wrote none are deleted.
        overwrite: start afresh in a used ``out_dir``: its :data:`RUN_FILES` are deleted first.
            Without it, a folder holding any of them is a FileExistsError; with it, a folder that
            also holds other files is one (nothing is deleted then).
        run_config: everything that defines the run, stored in the checkpoint and compared on
            resume; default ``{"train": config}``.
        progress: tqdm bars (rank 0 only).
    """
    out_dir = Path(out_dir)
    if resume and overwrite:
        raise ValueError(f"resume=True continues the run in {out_dir} and overwrite=True deletes "
                         "it; pass only one of them")
    run_config = {**(run_config or {"train": config_dict(config)}), "task": task.name}
    ckpt_path = out_dir / "last.pt"
    # A new run (no resume, or nothing to resume from) starts in a folder free of an earlier
    # run's files: rank 0 deletes these before training.
    stale = [] if resume and ckpt_path.exists() else _run_files(out_dir)
    if stale and not (resume or overwrite):
        raise FileExistsError(f"{out_dir} already holds a run ({', '.join(p.name for p in stale)});"
                              " pass resume=True to continue it, overwrite=True to start afresh, "
                              "or choose another out_dir")
    if stale and overwrite:
        other = sorted(p.name for p in out_dir.iterdir() if p not in stale)
        if other:
            raise FileExistsError(
                f"{out_dir} holds files a training run does not write ({', '.join(other[:5])}"
                f"{', ...' if len(other) > 5 else ''}); overwrite=True deletes only "
                f"{', '.join(RUN_FILES)}. Move the other files out of {out_dir}, or choose "
                "another out_dir")
    env = _setup_dist(config)
    det_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _fit(model, task, config, env, out_dir, run_config, train_data=train_data,
                    eval_data=eval_data, resume=resume, progress=progress, stale=stale)
    finally:
        torch.use_deterministic_algorithms(det_before)
        if env.owns_group:
            dist.destroy_process_group()


def _run_files(out_dir: Path) -> list[Path]:
    """The :data:`RUN_FILES` in ``out_dir`` and their temporary files, ``[]`` if it is absent."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if p.name in RUN_FILES or (
        p.name.startswith(".") and p.name.endswith(".tmp")
        and any(p.name.startswith(f".{name}.") for name in RUN_FILES)))


def _fit(model, task, config, env, out_dir, run_config, *, train_data, eval_data, resume,
         progress, stale) -> TrainResult:
    """:func:`fit` once its arguments are checked and its processes are set up."""
    if env.main:
        for path in stale:
            path.unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        for tmp in _run_files(out_dir):  # temporary files left by a crash during a save
            if tmp.name.endswith(".tmp"):
                tmp.unlink(missing_ok=True)
    if config.batch_size % env.world:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the number of "
                         f"processes ({env.world})")
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    _seed_everything(config.seed)
    model.to(env.device)
    if config.channels_last:  # 3D convolutions only: 2D layers (BCP's backbone) keep theirs
        from vhakit.models.bcp import channels_last_3d

        channels_last_3d(model)
    run = _Run(model, task, config, env, out_dir, run_config)
    if resume:
        run.resume(stale)
    return run.train(train_data, eval_data, progress)


class _Run:
    """One :func:`fit` call: the model and what trains it (``net``: the model, in DDP and/or
    compiled; the optimiser), where it stands (``epoch``, ``skip`` batches into it, ``step``),
    the history and the best evaluation. The methods are the steps of :meth:`train`'s loop."""

    def __init__(self, model, task: Task, config: TrainConfig, env: _Dist, out_dir: Path,
                 run_config: dict) -> None:
        self.model, self.task, self.config, self.env = model, task, config, env
        self.out_dir, self.ckpt_path, self.run_config = out_dir, out_dir / "last.pt", run_config
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.epoch, self.skip, self.step, self.history, self.best = 0, 0, 0, [], None
        self.run_id = uuid.uuid4().hex  # in every checkpoint; a resumed run keeps its id
        self.saved_step = -1  # the step of last.pt as written or resumed from

    def resume(self, stale: list[Path]) -> None:
        """Continue from ``last.pt`` (weights, optimiser, RNG states, position, history) if it
        exists; else a new run starts (``stale``: the files deleted for it)."""
        if self.ckpt_path.exists():
            ckpt = load_checkpoint(self.ckpt_path, map_location=self.env.device)
            self.run_id = ckpt.get("run_id") or self.run_id
            check_compatible(ckpt["run_config"], json.loads(json.dumps(self.run_config)),
                             self.ckpt_path)
            try:
                self.model.load_state_dict(ckpt["model"])
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                raise ValueError(f"{self.ckpt_path} does not fit this model: {err}") from err
            _set_rng_state(ckpt["rng"])
            pos = ckpt["position"]
            self.epoch, self.skip, self.step = pos["epoch"], pos["batch"], pos["step"]
            self.history, self.best = list(ckpt.get("history", [])), ckpt.get("best")
            if self.env.main:
                _write_history(self.out_dir, self.history)  # drop rows logged after the checkpoint
        elif self.env.main:
            deleted = f" (deleted {', '.join(p.name for p in stale)})" if stale else ""
            print(f"resume: no checkpoint in {self.out_dir}; starting a new run{deleted}")
        self.saved_step = self.step

    def _prepare(self, train_data: Dataset, eval_data: Dataset | None):
        """``net``, the loaders, ``horizon`` and ``amp``; returns (loader, sampler, local batch)."""
        cfg, env, device = self.config, self.env, self.env.device
        net = self.model
        if env.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None)
        # untried: the net is compiled and its first step has not run yet
        self.eager_net = net
        self.net, self.untried = _maybe_compile(net, cfg, device, env.main)
        local_batch = cfg.batch_size // env.world
        indexed = _Indexed(train_data)
        sampler = _ResumableSampler(indexed, num_replicas=env.world, rank=env.rank, shuffle=True,
                                    seed=cfg.seed, drop_last=True)
        loader = DataLoader(indexed, batch_size=local_batch, sampler=sampler,
                            drop_last=True, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed))
        self.steps_per_epoch = sampler.num_samples // local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"train_data has {len(train_data)} samples, fewer than one batch of "
                             f"{cfg.batch_size}; lower batch_size or add data")
        self.eval_loader = None if eval_data is None else DataLoader(
            _Indexed(eval_data), batch_size=cfg.batch_size, shuffle=False,
            num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
        self.horizon = min(cfg.max_steps or math.inf, cfg.epochs * self.steps_per_epoch)  # lr
        use_amp = cfg.autocast == "bf16" or (cfg.autocast == "auto" and device.type == "cuda")
        self.amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()
        return loader, sampler, local_batch

    def train(self, train_data: Dataset, eval_data: Dataset | None, progress: bool) -> TrainResult:
        from tqdm.auto import tqdm

        loader, sampler, local_batch = self._prepare(train_data, eval_data)
        cfg, per_epoch = self.config, self.steps_per_epoch
        self.model.train()
        done = cfg.max_steps and self.step >= cfg.max_steps
        self.sums, self.count, self.t0 = None, 0, time.perf_counter()  # since the last log row
        # one bar over the whole run: its total is the real budget (max_steps or epochs x steps)
        last_epoch = math.ceil(self.horizon / per_epoch)
        # (the description is there from the first render: a short run may finish before tqdm's
        # minimum refresh interval and show only that render)
        bar = tqdm(total=int(self.horizon), initial=min(self.step, int(self.horizon)),
                   unit="step", desc=f"epoch {self.epoch + 1}/{last_epoch}",
                   disable=not (progress and self.env.main), leave=False)
        while self.epoch < cfg.epochs and not done:
            sampler.set_position(self.epoch, self.skip * local_batch)
            bar.set_description(f"epoch {self.epoch + 1}/{last_epoch}", refresh=False)
            for batch in loader:
                metrics = self._optimizer_step(_to_device(batch, self.env.device))
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.skip == per_epoch:
                    bar.set_postfix(loss=f"{self._log_train(metrics):.4f}", refresh=False)
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self.evaluate()
                if cfg.save_every and self.step % cfg.save_every == 0 and self.skip < per_epoch:
                    self.save()  # (the end of an epoch saves after its evaluation, below)
                if cfg.max_steps and self.step >= cfg.max_steps:
                    done = True
                    break
            if self.skip >= per_epoch:
                if not cfg.eval_every:
                    self.evaluate()
                self.save()  # position: start of the next epoch
                self.epoch, self.skip = self.epoch + 1, 0
        bar.close()
        self.save()
        return TrainResult(self.model, self.history, self.out_dir, self.ckpt_path, self.best)

    def _optimizer_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Loss, backward, one Adam step at the schedule's learning rate; adds the loss and the
        task's metrics (returned) to the sums of the next log row."""
        cfg = self.config
        ctx = StepContext(epoch=self.epoch, step=self.step, device=self.env.device, seed=cfg.seed)
        try:
            loss, metrics = _loss_and_backward(self.task, self.net, batch, ctx, self.amp,
                                               self.optimizer)
        except Exception as err:
            if not self.untried:
                raise
            # The first compiled step failed (no Triton, an unsupported op, ...): the same
            # step eagerly raises the error if it was not compile's, else training goes on.
            self.net, self.untried = self.eager_net, False
            loss, metrics = _loss_and_backward(self.task, self.net, batch, ctx, self.amp,
                                               self.optimizer)
            warnings.warn(f"torch.compile failed ({_first_line(err)}); training without "
                          "it. Set compile='off' to skip the attempt.", stacklevel=2)
        self.untried = False  # only the first compiled step falls back
        for group in self.optimizer.param_groups:  # a pure function of the step: exact resume
            group["lr"] = lr_at(cfg, self.step, self.horizon)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step, self.skip = self.step + 1, self.skip + 1
        vals = torch.stack([loss.detach().float()] + [v.float() for v in metrics.values()])
        self.sums, self.count = (vals if self.sums is None else self.sums + vals), self.count + 1
        return metrics

    def _log_train(self, names) -> float:
        """A train row (rank 0): the means since the last row over all processes, and the
        throughput; FloatingPointError if the loss is not finite. Returns the mean loss."""
        if self.env.world > 1:
            dist.all_reduce(self.sums)
            self.sums /= self.env.world
        mean = (self.sums / self.count).tolist()
        if not math.isfinite(mean[0]):
            raise _diverged(f"the training loss became {mean[0]} (the mean of the last "
                            f"{self.count} steps)", self.step, self.ckpt_path)
        seconds = time.perf_counter() - self.t0
        row = {"split": "train", "step": self.step, "epoch": self.epoch,
               "loss": mean[0], **dict(zip(names, mean[1:], strict=True)),
               "samples_per_s": self.count * self.config.batch_size / seconds}
        self.sums, self.count, self.t0 = None, 0, time.perf_counter()
        if self.env.main:
            self.history.append(row)
            _write_history(self.out_dir, self.history)
        return row["loss"]

    def state(self) -> dict:
        over = self.skip >= self.steps_per_epoch  # then the position is the next epoch's start
        ep, b = (self.epoch + 1, 0) if over else (self.epoch, self.skip)
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": _rng_state(), "position": {"epoch": ep, "batch": b, "step": self.step},
                "history": self.history, "best": self.best, "run_config": self.run_config,
                "run_id": self.run_id}

    def evaluate(self) -> None:
        """An eval row (rank 0) and ``best.pt`` when the primary metric improves."""
        if self.eval_loader is not None and self.env.main:
            self.model.eval()
            with self.amp:
                metrics = self.task.evaluate(self.model, self.eval_loader, self.env.device)
            self.model.train()
            self.history.append({"split": "eval", "step": self.step, "epoch": self.epoch, **metrics})
            value = metrics.get(self.task.primary_metric)
            if value is not None and (self.best is None or value < self.best):
                self.best = value
                save_checkpoint(self.out_dir / "best.pt", self.state())
            _write_history(self.out_dir, self.history)
        if self.env.world > 1:
            dist.barrier()

    def save(self) -> None:
        """``last.pt`` (unless it holds this step); FloatingPointError if a weight is not finite."""
        if self.saved_step != self.step:
            # every rank checks (DDP keeps the weights equal), so all stop together
            if not _all_finite(self.model):
                raise _diverged("the weights became NaN or infinite", self.step, self.ckpt_path)
            if self.env.main:
                save_checkpoint(self.ckpt_path, self.state())
        self.saved_step = self.step


def _maybe_compile(net: torch.nn.Module, config: TrainConfig, device: torch.device,
                   main: bool) -> tuple[torch.nn.Module, bool]:
    """(net to train with, whether it is compiled) for ``config.compile``."""
    if not (config.compile == "on" or (config.compile == "auto" and device.type == "cuda")):
        return net, False
    if main:
        print("torch.compile: the first training step compiles the model (about a minute on a "
              "GPU, longer on a CPU)")
    return torch.compile(net), True


def _loss_and_backward(task, net, batch, ctx, amp, optimizer):
    with amp:
        loss, metrics = task.compute_loss(net, batch, ctx)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return loss, metrics


def _all_finite(model: torch.nn.Module) -> bool:
    """No NaN or inf in the model's floating-point parameters and buffers (one sync)."""
    flags = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _diverged(what: str, step: int, ckpt_path: Path) -> FloatingPointError:
    return FloatingPointError(
        f"{what} by step {step}; {ckpt_path} holds the last good checkpoint (if one was "
        "written). Lower the learning rate, set grad_clip or autocast='off', or look for NaN in "
        "the data, then resume or restart.")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def read_run(path: str | os.PathLike, task: str | None = None) -> tuple[Path, dict]:
    """Load the checkpoint of a run: ``path`` is a checkpoint file, or a run folder (its
    ``best.pt`` if it records the same run id as ``last.pt``, else ``last.pt``; a ``best.pt`` of
    another run is skipped with a warning). With ``task`` given, a checkpoint of another task
    is a ValueError. Returns ``(checkpoint path, checkpoint dict)``."""
    path = Path(path)
    if path.is_dir():
        best, last = path / "best.pt", path / "last.pt"
        path = last
        if best.exists() and not last.exists():
            path = best
        elif best.exists():
            ids = _run_id(best), _run_id(last)
            if ids[0] is not None and ids[0] == ids[1]:
                path = best
            else:
                warnings.warn(f"{best} is not from the run that wrote {last} (run ids "
                              f"{ids[0]} and {ids[1]}); using last.pt. Pass {best} itself to "
                              "load it anyway", stacklevel=2)
    ckpt = load_checkpoint(path)
    found = ckpt["run_config"].get("task")
    if task is not None and found != task:
        raise ValueError(f"{path} holds a {found!r} run, not a {task!r} run")
    return path, ckpt


def _run_id(path: Path) -> str | None:
    """The run id a checkpoint records (None if it has none or cannot be read); memory-mapped,
    so the weights are not read."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable: load_checkpoint reports it when the file is loaded
        return None
    return ckpt.get("run_id") if isinstance(ckpt, dict) else None
