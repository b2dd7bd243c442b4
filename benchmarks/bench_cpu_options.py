"""CPU options for the VHA training step, side by side: memory format, bf16, compile, threads.

One training step is exactly the trainer's (``vhakit.training.trainer.fit``): ``VHATask.compute_loss``
(augmentation, sparse one-hot encoding, forward, loss of paper Eqs. 2-4) under the configured
autocast, then ``zero_grad``, backward and Adam. For each preset (tiny, teaching) the cases are

  base                 the trainer's defaults: channels_last_3d on, autocast off, eager, at
                       ``--threads`` torch threads (default: torch's, one per core)
  contiguous           channels_last_3d off
  bf16 autocast        ``torch.autocast("cpu", torch.bfloat16)``; few steps (slow on many CPUs)
  N threads            base at ``--alt-threads`` threads (default: 1, or 2 if ``--threads 1``)
  compiled             ``torch.compile(model)`` (only with ``--compile``: the first step compiles
                       with an empty inductor cache, which takes minutes on 2 cores)

``--presets bcp-tiny bcp-teaching``: the BCP step (4 views, ``BCPTask``: Eqs. 5-7 + visibility)
as built (its 3D layers in channels_last_3d), converted to contiguous, bf16, other thread count.

All cases of a run are timed round-robin, so that the load of a shared machine slows them alike:
the ratios to ``base`` are the result; absolute numbers drift with the load. Each case starts
from the same initial weights (a deep copy).

Where the time goes (base case): the step's convolutions (``aten::convolution`` and
``aten::convolution_backward``, wall time from ``torch.profiler``, FLOPs from torch's FLOP
counter) against two references measured in the same run: a plain ``Conv3d`` of the preset's
main shape (forward + backward, channels_last_3d) and a float32 matmul 1024^3 (the practical
peak of the CPU). Peak memory per step as in ``bench_vha.py``.

  python benchmarks/bench_cpu_options.py                  # tiny + teaching, ~2 min on 2 cores
  python benchmarks/bench_cpu_options.py --threads 1      # options compared at 1 thread, vs 2
  python benchmarks/bench_cpu_options.py --compile --presets teaching --steps 3
  python benchmarks/bench_cpu_options.py --presets bcp-teaching --threads 1   # BCP, 4 views
  python benchmarks/bench_cpu_options.py --json out.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vha import peak_extra_mb  # noqa: E402

from vhakit.config import vha_configs  # noqa: E402
from vhakit.models.vha import VHA  # noqa: E402
from vhakit.training.trainer import StepContext  # noqa: E402
from vhakit.training.vha import VHATask  # noqa: E402

CONV_OPS = ("aten::convolution", "aten::convolution_backward")
HEAD_OPS = ("aten::bmm",)  # the heads' 1x1 convolutions run as batched matrix products
# the main (most FLOP-heavy) convolution shape of each preset: (channels, grid, batch)
REFERENCE_CONV = {"tiny": (8, 8, 4), "teaching": (16, 16, 10)}


class StepCase:
    """One configuration of the trainer's step on a fixed synthetic batch (``data``; default: a
    VHA batch). ``channels_last``: True / False convert the model, None leaves it as built."""

    def __init__(self, name: str, model: nn.Module, task, batch_size: int, *,
                 channels_last: bool | None = True, bf16: bool = False, compiled: bool = False,
                 threads: int = 1, steps: int = 0, data: dict | None = None) -> None:
        self.name, self.batch, self.threads, self.steps = name, batch_size, threads, steps
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.first_s = float("nan")
        if data is None:
            gen = torch.Generator().manual_seed(batch_size)
            pelvis = (torch.rand(batch_size, 3, generator=gen) - 0.5) * 0.2
            verts = pelvis[:, None] + (torch.rand(batch_size, 108, 3, generator=gen) - 0.5) * 1.6
            data = {"vertices108": verts, "pelvis": pelvis, "sample_index": torch.arange(batch_size)}
        self.data = data
        self.model = model.train()
        if channels_last is not None:
            self.model.to(memory_format=torch.channels_last_3d if channels_last
                          else torch.contiguous_format)
        self.net = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.Adam([q for q in self.model.parameters() if q.requires_grad], lr=1e-3)
        self.amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        self.task = task

    def step(self) -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            ctx = StepContext(epoch=0, step=0, device=torch.device("cpu"), seed=0)
            with self.amp:
                loss, _ = self.task.compute_loss(self.net, self.data, ctx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        finally:
            torch.set_num_threads(before)

    def timed(self) -> float:
        t, c = time.perf_counter(), time.process_time()
        self.step()
        dt = time.perf_counter() - t
        self.wall.append(dt)
        self.cpu.append(time.process_time() - c)
        return dt


def conv_profile(case: StepCase) -> dict[str, float]:
    """FLOPs and wall time of the step's 3D convolutions, of the heads' 1x1 convolutions (bmm)
    and of the whole step."""
    with FlopCounterMode(display=False) as fc:
        case.step()
    counts = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    conv_flop = sum(v for k, v in counts.items() if "convolution" in k)
    head_flop = sum(v for k, v in counts.items() if k.endswith("bmm.default") or k.endswith("bmm"))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        case.step()
        step_s = time.perf_counter() - t
    events = prof.key_averages()
    conv_s = sum(e.cpu_time_total for e in events if e.key in CONV_OPS) / 1e6
    head_s = sum(e.cpu_time_total for e in events if e.key in HEAD_OPS) / 1e6
    return {"conv_gflop": conv_flop / 1e9, "head_gflop": head_flop / 1e9,
            "total_gflop": sum(counts.values()) / 1e9, "conv_s": conv_s, "head_s": head_s,
            "profiled_step_s": step_s, "conv_share": (conv_s + head_s) / step_s,
            "conv_gflop_s": conv_flop / 1e9 / max(conv_s, 1e-9),
            "head_gflop_s": head_flop / 1e9 / max(head_s, 1e-9),
            "all_conv_gflop_s": (conv_flop + head_flop) / 1e9 / max(conv_s + head_s, 1e-9)}


def reference_rates(channels: int, grid: int, batch: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of a plain Conv3d(channels, channels, 3) fwd+bwd at ``grid^3`` and of a 1024^3
    float32 matmul (median of ``repeats``), at the current number of torch threads."""
    conv = nn.Conv3d(channels, channels, 3, padding=1, bias=False).to(
        memory_format=torch.channels_last_3d)
    x = torch.randn(batch, channels, grid, grid, grid).to(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    conv_flop = 3 * 2 * batch * channels * channels * 27 * grid ** 3  # fwd + grad input + grad w
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)

    def conv_step():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x).sum().backward()

    out = {}
    for name, fn, flop in (("conv3d", conv_step, conv_flop), ("matmul", lambda: a @ b, 2 * 1024 ** 3)):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[f"{name}_gflop_s"] = flop / 1e9 / statistics.median(times)
    return out


def build_bcp_cases(preset: str, args) -> list[StepCase]:
    """BCP at ``preset`` (4 views): as built (its 3D layers in channels_last_3d), converted to
    contiguous, bf16, other thread count."""
    from gpu_paper_scale import bcp_case

    from vhakit.config import bcp_configs

    B, T = bcp_configs(preset).train.batch_size, args.threads
    model, task, data = bcp_case(preset, B, torch.device("cpu"))
    few = max(1, min(args.bf16_steps, args.steps))
    opts = [("as built", dict(channels_last=None, threads=T)),
            ("contiguous", dict(channels_last=False, threads=T)),
            ("bf16 autocast", dict(channels_last=None, bf16=True, threads=T, steps=few)),
            (f"{args.alt_threads} thread(s)", dict(channels_last=None, threads=args.alt_threads))]
    return [StepCase(f"bcp {preset}: {name}", copy.deepcopy(model), task, B, data=data, **kw)
            for name, kw in opts]


def build_cases(preset: str, args) -> list[StepCase]:
    if preset.startswith("bcp-"):
        return build_bcp_cases(preset[4:], args)
    cfg = vha_configs(preset)
    torch.manual_seed(0)
    model = VHA(cfg.model)
    task, B, T = VHATask(cfg.task), cfg.train.batch_size, args.threads
    few = max(1, min(args.bf16_steps, args.steps))
    cases = [StepCase(f"{preset}: base", copy.deepcopy(model), task, B, threads=T),
             StepCase(f"{preset}: contiguous", copy.deepcopy(model), task, B, channels_last=False,
                      threads=T),
             StepCase(f"{preset}: bf16 autocast", copy.deepcopy(model), task, B, bf16=True,
                      threads=T, steps=few),
             StepCase(f"{preset}: {args.alt_threads} thread(s)", copy.deepcopy(model), task, B,
                      threads=args.alt_threads)]
    if args.compile:
        cases.append(StepCase(f"{preset}: compiled", copy.deepcopy(model), task, B, compiled=True,
                              threads=T))
    return cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "teaching"],
                   choices=[*REFERENCE_CONV, "bcp-tiny", "bcp-teaching"])
    p.add_argument("--steps", type=int, default=5, help="timed steps per case (round-robin)")
    p.add_argument("--bf16-steps", type=int, default=1, help="timed steps of the bf16 cases")
    p.add_argument("--compile", action="store_true", help="add torch.compile cases (slow to compile)")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the cases (0: torch's)")
    p.add_argument("--alt-threads", type=int, default=0,
                   help="threads of the thread-count case (0: 1, or 2 if --threads is 1)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.threads = args.threads or torch.get_num_threads()
    args.alt_threads = args.alt_threads or (2 if args.threads == 1 else 1)
    torch.set_num_threads(args.threads)
    if args.compile:  # measure a cold compile, not a cached one
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="vhakit_inductor_")
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f}; {args.steps} timed steps per case (bf16: "
          f"{args.bf16_steps}) after one warm-up", flush=True)
    rows, analysis = [], {}
    for preset in args.presets:
        cases = build_cases(preset, args)
        for case in cases:  # warm-up (the compiled case compiles here), memory
            t = time.perf_counter()
            case.step()
            case.first_s = time.perf_counter() - t
            case.mem = peak_extra_mb(case.step, torch.device("cpu")) if case.steps == 0 else float("nan")
            print(f"  warm-up {case.name}: {case.first_s:.1f} s", flush=True)
        for i in range(args.steps):  # round-robin
            for case in cases:
                if not case.steps or i < case.steps:
                    case.timed()
        base = statistics.median(cases[0].wall)
        base_cpu = statistics.median(cases[0].cpu) / cases[0].threads
        for case in cases:
            med = statistics.median(case.wall)
            cpu = statistics.median(case.cpu) / case.threads  # per thread: the lower bound of wall
            rows.append({"case": case.name, "batch": case.batch, "steps": len(case.wall),
                         "step_s": med, "samples_per_s": case.batch / med,
                         "speed_vs_base": base / med, "cpu_s_per_thread": cpu,
                         "cpu_speed_vs_base": base_cpu / cpu, "first_step_s": case.first_s,
                         "peak_mb": case.mem})
        if preset not in REFERENCE_CONV:
            continue
        prof = conv_profile(cases[0])
        c, g, b = REFERENCE_CONV[preset]
        ref = reference_rates(c, g, b, repeats=args.steps)
        analysis[preset] = {**prof, **ref, "reference_conv": f"Conv3d {c}->{c} k3 @{g}^3 batch {b}",
                            "conv_of_conv3d": prof["conv_gflop_s"] / ref["conv3d_gflop_s"],
                            "all_conv_of_conv3d": prof["all_conv_gflop_s"] / ref["conv3d_gflop_s"],
                            "conv_of_matmul": prof["conv_gflop_s"] / ref["matmul_gflop_s"],
                            "conv3d_of_matmul": ref["conv3d_gflop_s"] / ref["matmul_gflop_s"]}
    print(f"\n{'case':<26}{'batch':>6}{'steps':>6}{'step s':>9}{'samples/s':>11}{'vs base':>9}"
          f"{'cpu-s/thr':>10}{'cpu vs base':>12}{'1st step s':>11}{'peak MB':>9}")
    for r in rows:
        print(f"{r['case']:<26}{r['batch']:>6}{r['steps']:>6}{r['step_s']:>9.3f}"
              f"{r['samples_per_s']:>11.2f}{r['speed_vs_base']:>9.2f}{r['cpu_s_per_thread']:>10.3f}"
              f"{r['cpu_speed_vs_base']:>12.2f}{r['first_step_s']:>11.1f}{r['peak_mb']:>9.0f}")
    for preset, a in analysis.items():
        print(f"\n{preset} (base): {a['total_gflop']:.2f} GFLOP per step; 3D convolutions "
              f"{a['conv_gflop']:.2f} GFLOP at {a['conv_gflop_s']:.1f} GFLOP/s, heads' 1x1 (bmm) "
              f"{a['head_gflop']:.2f} GFLOP at {a['head_gflop_s']:.1f} GFLOP/s; together "
              f"{a['conv_share']:.0%} of the step's time")
        print(f"  {a['reference_conv']}: {a['conv3d_gflop_s']:.1f} GFLOP/s; matmul 1024^3: "
              f"{a['matmul_gflop_s']:.1f} GFLOP/s")
        print(f"  VHA 3D convolutions / plain conv3d = {a['conv_of_conv3d']:.2f} (with the heads "
              f"{a['all_conv_of_conv3d']:.2f}); / matmul = {a['conv_of_matmul']:.2f}; "
              f"plain conv3d / matmul = {a['conv3d_of_matmul']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "load": load,
                                               "threads": args.threads, "rows": rows,
                                               "analysis": analysis}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
