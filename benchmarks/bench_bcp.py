"""Training speed and memory of BCP and the LMT-style baseline (tiny and teaching presets).

One training step = the task's loss on a batch of V = 4 views (BCP: Eqs. 5-7 with the code
target from the frozen VHA encoder, plus the visibility BCE; baseline: vertex L1 + BCE),
backward, Adam. Inputs are synthetic (random images, jittered 4-camera rings, random vertices
around the pelvis): the cost does not depend on the pixels. Cases, timed round-robin so that a
busy shared machine slows them alike:

  bcp tiny / bcp teaching              the presets (lift folded into the VHA encoder's stem)
  bcp teaching, 108-channel volume     the same model with the lift applied to the volume
                                       (the VHA encoder on a dense 108-channel volume):
                                       isolates the folding
  baseline tiny / baseline teaching    the presets
  ..., frozen backbone                 BCP / baseline with freeze_backbone=True (the
                                       pose-pretrained 2D backbone kept fixed)

Reported per case: samples/s (median step, wall clock), CPU seconds per sample, the peak extra
memory of a step (Linux: peak RSS above the RSS before the step) and the trainable / frozen
parameter counts.

  python benchmarks/bench_bcp.py --threads 2          # 3 timed steps per case
  python benchmarks/bench_bcp.py --quick --json out.json
  python benchmarks/bench_bcp.py --device cuda --presets paper   # bf16 autocast as the preset
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_vha import peak_extra_mb  # noqa: E402

from vhakit.config import baseline_configs, bcp_configs, vha_configs  # noqa: E402
from vhakit.geometry.camera import RigJitter, make_rig  # noqa: E402
from vhakit.models.baseline import LMTBaseline  # noqa: E402
from vhakit.models.bcp import BodyCodePredictor  # noqa: E402
from vhakit.models.vha import VHA  # noqa: E402
from vhakit.training.bcp import BaselineTask, BCPTask  # noqa: E402
from vhakit.training.trainer import StepContext  # noqa: E402

IMAGE_PX = {"tiny": 64, "teaching": 128, "paper": 384}  # the data presets' (vhakit.data.build)


def synthetic_batch(batch: int, px: int, views: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(batch):
        pelvis = torch.rand(3, generator=g) - 0.5
        rig = make_rig(views, distance_m=3.5, image_size=(px, px), target_m=pelvis,
                       jitter=RigJitter(), generator=g)
        samples.append({"images": torch.rand(views, 3, px, px, generator=g), "K": rig.K,
                        "R": rig.R, "t": rig.t, "dist": rig.dist.clone(), "pelvis": pelvis,
                        "vertices108": pelvis + 0.3 * torch.randn(108, 3, generator=g),
                        "visibility": (torch.rand(views, 108, generator=g) > 0.5).float(),
                        "sample_index": torch.tensor(i)})
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class UnfoldedBCP(BodyCodePredictor):
    """BCP with the lift applied to the dense volume (108 channels into the VHA encoder)."""

    def encode_volume(self, volume: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.lift(volume))


class Case:
    def __init__(self, name: str, model: torch.nn.Module, task, batch: dict,
                 device: torch.device, autocast: str = "off") -> None:
        self.device = device
        model = model.to(device).train()
        batch = {k: v.to(device) for k, v in batch.items()}
        self.name, self.model, self.batch = name, model, batch
        self.size = len(batch["images"])
        amp = autocast == "bf16" or (autocast == "auto" and device.type == "cuda")
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.params = {"trainable": sum(p.numel() for p in trainable),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)}
        opt = torch.optim.Adam(trainable, lr=1e-4)
        ctx = StepContext(epoch=0, step=0, device=device, seed=0)
        self.wall, self.cpu = [], []

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, _ = task.compute_loss(model, batch, ctx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.step = step

    def timed(self) -> None:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        w, c = time.perf_counter(), time.process_time()
        self.step()
        sync()
        self.wall.append(time.perf_counter() - w)
        self.cpu.append(time.process_time() - c)


def build_cases(presets: list[str], quick: bool, device: torch.device) -> list[Case]:
    cases = []
    for preset in presets:
        torch.manual_seed(0)
        cfg, bcfg = bcp_configs(preset), baseline_configs(preset)
        vha = VHA(vha_configs(preset).model)
        batch = synthetic_batch(cfg.train.batch_size, IMAGE_PX[preset])
        bcp = BodyCodePredictor(cfg.model, vha.config).init_from_vha(vha)
        cases.append(Case(f"bcp {preset}", bcp, BCPTask(cfg.task), batch, device, cfg.train.autocast))
        if preset == "teaching" and not quick:
            unfolded = UnfoldedBCP(cfg.model, vha.config).init_from_vha(vha)
            cases.append(Case("bcp teaching, 108-channel volume", unfolded, BCPTask(cfg.task),
                              batch, device, cfg.train.autocast))
        cases.append(Case(f"baseline {preset}", LMTBaseline(bcfg.model), BaselineTask(bcfg.task),
                          synthetic_batch(bcfg.train.batch_size, IMAGE_PX[preset]), device,
                          bcfg.train.autocast))
        if not quick:  # freeze_backbone=True: no backward through the 2D backbone
            frozen = BodyCodePredictor(cfg.model, vha.config).init_from_vha(vha)
            frozen.front.backbone.requires_grad_(False)
            cases.append(Case(f"bcp {preset}, frozen backbone", frozen, BCPTask(cfg.task), batch,
                              device, cfg.train.autocast))
            frozen = LMTBaseline(bcfg.model)
            frozen.front.backbone.requires_grad_(False)
            cases.append(Case(f"baseline {preset}, frozen backbone", frozen,
                              BaselineTask(bcfg.task),
                              synthetic_batch(bcfg.train.batch_size, IMAGE_PX[preset]), device,
                              bcfg.train.autocast))
    return cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--presets", default="tiny,teaching", help="comma-separated: tiny,teaching,paper")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per case")
    p.add_argument("--quick", action="store_true", help="2 steps; skip the 108-channel case")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = 2 if args.quick else args.steps
    device = torch.device(args.device)
    cases = build_cases(args.presets.split(","), args.quick, device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; {steps} timed "
          "steps per case after one warm-up", flush=True)
    for case in cases:
        case.step()  # warm-up
        case.mem = peak_extra_mb(case.step, device)
    for _ in range(steps):
        for case in cases:
            case.timed()
    rows = []
    print(f"{'case':<36}{'batch':>6}{'samples/s':>11}{'cpu-s/sample':>14}{'peak MB':>9}"
          f"{'trainable':>11}{'frozen':>9}")
    for case in cases:
        wall, cpu = statistics.median(case.wall), statistics.median(case.cpu)
        r = {"case": case.name, "batch": case.size, "samples_per_s": case.size / wall,
             "cpu_s_per_sample": cpu / case.size, "peak_mb": case.mem, **case.params}
        rows.append(r)
        print(f"{r['case']:<36}{r['batch']:>6}{r['samples_per_s']:>11.2f}"
              f"{r['cpu_s_per_sample']:>14.3f}{r['peak_mb']:>9.0f}{r['trainable']:>11,}"
              f"{r['frozen']:>9,}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
