"""Training speed and memory of the VHA presets against a dense V2V-style autoencoder.

One training step = build the input from the batch's vertices, forward, the loss of paper
Eqs. 2-4, backward, Adam. Cases (all in this process, timed round-robin so that a busy shared
machine slows them alike; the ratios are the result, absolute numbers drift with the load):

  vha tiny / vha teaching     the presets (sparse first convolution, chunked heads)
  vha teaching, dense stem    the teaching model fed the dense one-hot volume (its first
                              convolution as an ordinary conv3d): isolates the sparse stem
  v2v dense G                 a V2V-style autoencoder as DESIGN.md's speed notes describe it:
                              one-hot volume -> dense Basic3D(108->16, k7) and Res3D at G,
                              channels 16-32-64-128 with a 128 x (G/8)^3 code, decoder back to
                              G, two 1x1 heads, soft-argmax
  conv3d reference            a plain Conv3d 32->32, k3, at 16^3, batch 10, forward+backward:
                              the convolution throughput torch reaches on this machine

Reported per case: samples/s (median step, wall clock) and CPU seconds per sample, model
GFLOP per sample (torch's FLOP counter: convolutions and matrix products, forward + backward),
achieved GFLOP/s and its ratio to the conv3d reference, and the peak extra memory of a step
(Linux CPU: peak RSS above the RSS before the step, after returning free heap pages to the OS;
CUDA: max_memory_allocated).

  python benchmarks/bench_vha.py                 # CPU, all cores, 5 timed steps per case
  python benchmarks/bench_vha.py --quick         # 2 timed steps, no 32^3 dense V2V (~1 min)
  python benchmarks/bench_vha.py --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vhakit.config import vha_configs  # noqa: E402
from vhakit.heatmaps.core import Cuboid, encode_onehot, soft_argmax  # noqa: E402
from vhakit.models.blocks import Basic3D, Pool3D, Res3D, Upsample3D  # noqa: E402
from vhakit.models.vha import VHA, VHAOutput, vha_loss  # noqa: E402


class DenseV2VAutoencoder(nn.Module):
    """The dense baseline: V2V blocks at full resolution, 108-channel dense input."""

    def __init__(self, G: int, n: int = 108, ch=(16, 32, 64, 128), norm: str = "batch") -> None:
        super().__init__()
        c0, c1, c2, c3 = ch
        self.G = G
        self.encoder = nn.Sequential(
            Basic3D(n, c0, 7, norm), Res3D(c0, c1, norm),  # full resolution G
            Pool3D(), Res3D(c1, c2, norm), Pool3D(), Res3D(c2, c3, norm),  # G/2, G/4
            Pool3D(), Res3D(c3, c3, norm))  # code at G/8
        self.decoder = nn.Sequential(
            Res3D(c3, c3, norm), Upsample3D(c3, c3, norm), Res3D(c3, c3, norm),
            Upsample3D(c3, c2, norm), Res3D(c2, c2, norm), Upsample3D(c2, c1, norm),
            Res3D(c1, c1, norm))
        self.head_mid = nn.Conv3d(c1, n, 1)
        self.refine = Res3D(c1, c1, norm)
        self.head = nn.Conv3d(c1, n, 1)

    def forward(self, vertices: torch.Tensor, center: torch.Tensor, return_logits: bool = False):
        cub = Cuboid(center, 2.0, self.G)
        z = self.encoder(encode_onehot(vertices, cub, outside="clamp"))
        x = self.decoder(z)
        v_mid = soft_argmax(self.head_mid(x), cub)
        v = soft_argmax(self.head(self.refine(x)), cub)
        return VHAOutput(z, v_mid, v)


class DenseStem(nn.Module):
    """A VHA whose encoder gets the dense one-hot volume (same weights, ordinary conv3d)."""

    def __init__(self, vha: VHA) -> None:
        super().__init__()
        self.vha = vha

    def forward(self, vertices, center, return_logits=False):
        vol = encode_onehot(vertices, self.vha.cuboid(center), outside="clamp")
        return self.vha.decode(self.vha.encoder(vol), center, return_logits)


def _rss() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def peak_extra_mb(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return float("nan")
    base = _rss()["VmRSS"]
    fn()
    return (_rss()["VmHWM"] - base) / 2 ** 20


class Case:
    def __init__(self, name: str, model: nn.Module | None, batch: int, G: int,
                 device: torch.device, step=None, channels_last: bool = False) -> None:
        self.name, self.batch, self.G, self.device = name, batch, G, device
        self.wall, self.cpu = [], []
        if step is not None:
            self.step = step
            return
        gen = torch.Generator().manual_seed(G + batch)
        center = (torch.rand(batch, 3, generator=gen) - 0.5)
        verts = center[:, None] + (torch.rand(batch, 108, 3, generator=gen) - 0.5) * 1.6
        self.model = model.to(device).train()
        if channels_last:  # the dense V2V's best layout; the VHA trains contiguous (the default)
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        verts, center = verts.to(device), center.to(device)

        def step():
            out = self.model(verts, center, return_logits=False)
            loss, _ = vha_loss(out, verts)
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

    def flops(self) -> float:
        with FlopCounterMode(display=False) as fc:
            self.step()
        return fc.get_total_flops()


def conv3d_reference(device: torch.device) -> Case:
    conv = nn.Conv3d(32, 32, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last_3d)
    x = torch.randn(10, 32, 16, 16, 16, device=device).to(memory_format=torch.channels_last_3d)
    x.requires_grad_()

    def step():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x).sum().backward()
    return Case("conv3d reference (32->32 k3 @16^3)", None, 10, 16, device, step)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per case")
    p.add_argument("--dense-batch", type=int, default=4, help="batch of the dense V2V cases")
    p.add_argument("--quick", action="store_true", help="2 steps; skip the 32^3 dense V2V")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = 2 if args.quick else args.steps
    torch.manual_seed(0)
    tiny, teach = vha_configs("tiny"), vha_configs("teaching")
    cases = [
        conv3d_reference(device),
        Case("vha tiny (16^3)", VHA(tiny.model), tiny.train.batch_size, 16, device),
        Case("vha teaching (32^3)", VHA(teach.model), teach.train.batch_size, 32, device),
        Case("vha teaching, one-hot input", VHA(vha_configs("teaching", input_encoding="onehot").model),
             teach.train.batch_size, 32, device),
        Case("vha teaching, dense stem", DenseStem(VHA(teach.model)), teach.train.batch_size, 32,
             device),
        Case("v2v dense 16^3", DenseV2VAutoencoder(16), args.dense_batch, 16, device,
             channels_last=True),
    ]
    if not args.quick:
        cases.append(Case("v2v dense 32^3", DenseV2VAutoencoder(32), args.dense_batch, 32, device,
                          channels_last=True))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
          f"{steps} timed steps per case after one warm-up", flush=True)
    gflop = {}
    for case in cases:  # warm-up, FLOP count, memory
        case.step()
        gflop[case.name] = case.flops() / 1e9 / case.batch
        case.mem = peak_extra_mb(case.step, device)
    for _ in range(steps):  # round-robin
        for case in cases:
            case.timed()
    ref = cases[0]
    ref_gfs = gflop[ref.name] * ref.batch / statistics.median(ref.wall)
    rows = []
    for case in cases:
        wall, cpu = statistics.median(case.wall), statistics.median(case.cpu)
        gfs = gflop[case.name] * case.batch / wall
        rows.append({"case": case.name, "batch": case.batch, "samples_per_s": case.batch / wall,
                     "cpu_s_per_sample": cpu / case.batch, "gflop_per_sample": gflop[case.name],
                     "gflop_per_s": gfs, "of_conv3d_peak": gfs / ref_gfs, "peak_mb": case.mem})
    by = {r["case"]: r for r in rows}
    print(f"{'case':<36}{'batch':>6}{'samples/s':>11}{'cpu-s/sample':>14}{'GFLOP/sample':>14}"
          f"{'GFLOP/s':>9}{'of conv3d':>10}{'peak MB':>9}")
    for r in rows:
        print(f"{r['case']:<36}{r['batch']:>6}{r['samples_per_s']:>11.2f}{r['cpu_s_per_sample']:>14.3f}"
              f"{r['gflop_per_sample']:>14.2f}{r['gflop_per_s']:>9.1f}{r['of_conv3d_peak']:>10.2f}"
              f"{r['peak_mb']:>9.0f}")
    speedups = {}
    for ours, dense in (("vha tiny (16^3)", "v2v dense 16^3"),
                        ("vha teaching (32^3)", "v2v dense 32^3"),
                        ("vha teaching (32^3)", "vha teaching, dense stem")):
        if ours in by and dense in by:
            s = by[ours]["samples_per_s"] / by[dense]["samples_per_s"]
            c = by[dense]["cpu_s_per_sample"] / by[ours]["cpu_s_per_sample"]
            speedups[f"{ours} vs {dense}"] = {"wall": s, "cpu": c}
            print(f"speed-up {ours} over {dense}: {s:.1f}x (wall), {c:.1f}x (CPU time)")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows,
                                               "speedups": speedups}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
