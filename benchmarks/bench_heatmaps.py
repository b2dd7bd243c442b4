"""Time and peak extra memory of vhakit.heatmaps against naive coordinate-grid versions.

Cases, for B=10 items x N=108 vertices and each grid size G:
  encode_onehot         vs  nearest voxel centre by cdist against a materialised centre grid
  soft_argmax fwd       vs  softmax + einsum("bnxyz,bxyzc->bnc") with a materialised grid
  soft_argmax fwd+bwd   vs  the same, plus backward of coords.sum()
On the CPU, soft_argmax's default is the compiled kernel (vhakit/heatmaps/kernels.py) when it builds; the
"pure-torch" rows time fused=False against the same naive version.

Both versions of a case run in the same process, one after the other, so the ratios compare like
with like. Memory is the peak *extra* memory of one call (inputs excluded, everything the call
allocates included, e.g. the gradient of the logits for fwd+bwd):
  CUDA: torch.cuda.max_memory_allocated() minus memory_allocated() before the call;
  CPU (Linux): peak resident set size (VmHWM, reset through /proc/self/clear_refs) minus the RSS
  before the call, with glibc told to return every block >= 64 KiB to the OS when freed (mallopt),
  so freed tensors cannot hide in the heap. Page-granular; a few MB of noise.
CPU timings default to one thread (--threads) and to process CPU time (--clock cpu), because a
shared, loaded machine makes wall-clock and multi-threaded timings erratic; --clock wall measures
wall time (always used on CUDA, after synchronising).

  python benchmarks/bench_heatmaps.py            # G = 16, 32, 64, median of 3
  python benchmarks/bench_heatmaps.py --quick    # one timed run per case
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vhakit.heatmaps.core import Cuboid, encode_onehot, soft_argmax  # noqa: E402

M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number


def naive_soft_argmax(logits: torch.Tensor, cuboid: Cuboid) -> torch.Tensor:
    B, N = logits.shape[:2]
    probs = torch.softmax(logits.reshape(B, N, -1), dim=-1).view(logits.shape)
    return torch.einsum("bnxyz,bxyzc->bnc", probs, cuboid.voxel_centres())


def naive_onehot(vertices: torch.Tensor, cuboid: Cuboid) -> torch.Tensor:
    B, N = vertices.shape[:2]
    grid = cuboid.voxel_centres().reshape(B, -1, 3)  # (B, G^3, 3)
    nearest = torch.cdist(vertices, grid).argmin(-1)  # (B, N): the containing voxel
    out = vertices.new_zeros(B, N, grid.shape[1]).scatter_(-1, nearest[..., None], 1.0)
    return out.view(B, N, *cuboid.resolution)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def peak_extra_bytes(fn, device: torch.device, libc=None) -> float:
    """Peak memory one call of ``fn`` allocates beyond what was live before it (bytes)."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    libc.malloc_trim(0)  # hand free heap pages back, so the call cannot reuse them unseen
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _rss_status()["VmRSS"]
    fn()
    return float(_rss_status()["VmHWM"] - base)


def time_ms(fn, device: torch.device, repeats: int, clock: str = "wall") -> float:
    """Median over ``repeats`` calls of wall time, or of this process's CPU time (all threads)."""
    now = time.process_time if clock == "cpu" and device.type == "cpu" else time.perf_counter
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = now()
        fn()
        _sync(device)
        times.append((now() - t0) * 1e3)
    return statistics.median(times)


def make_cases(G: int, B: int, N: int, device: torch.device):
    gen = torch.Generator().manual_seed(G)
    cuboid = Cuboid((torch.rand(B, 3, generator=gen) - 0.5).to(device), 2.0, G)
    verts = cuboid.center[:, None] + (torch.rand(B, N, 3, generator=gen) - 0.5).to(device) * 1.9
    logits = torch.randn(B, N, G, G, G, generator=gen).to(device)
    leaf = logits.clone().requires_grad_()

    def unfused(x, c):
        return soft_argmax(x, c, fused=False)

    def fwd_bwd(f):
        def run():
            leaf.grad = None
            f(leaf, cuboid).sum().backward()
            leaf.grad = None  # freed inside the measured call, as in a training step
        return run

    return [
        ("encode_onehot", lambda: naive_onehot(verts, cuboid), lambda: encode_onehot(verts, cuboid)),
        ("soft_argmax fwd", lambda: naive_soft_argmax(logits, cuboid),
         lambda: soft_argmax(logits, cuboid)),
        ("soft_argmax fwd+bwd", fwd_bwd(naive_soft_argmax), fwd_bwd(soft_argmax)),
    ] + ([  # the pure-torch path too, where the default is the compiled kernel (float32 CPU)
        ("  pure-torch fwd", lambda: naive_soft_argmax(logits, cuboid),
         lambda: unfused(logits, cuboid)),
        ("  pure-torch fwd+bwd", fwd_bwd(naive_soft_argmax), fwd_bwd(unfused)),
    ] if device.type == "cpu" else []), (verts, logits, cuboid)


def check_agreement(verts, logits, cuboid) -> tuple[float, float]:
    """Max |naive - vhakit| of soft_argmax (m) and the fraction of one-hot heatmaps that agree."""
    d = (naive_soft_argmax(logits, cuboid) - soft_argmax(logits, cuboid)).abs().max().item()
    same = (naive_onehot(verts, cuboid) == encode_onehot(verts, cuboid)).flatten(2).all(-1)
    return d, same.float().mean().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed run per case")
    parser.add_argument("--grids", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--vertices", type=int, default=108)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="CPU device: time with process CPU time (default) or wall time")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    clock = args.clock if device.type == "cpu" else "wall"
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"B={args.batch}, N={args.vertices}, median of {repeats}, {clock} clock")

    rows = []
    for G in args.grids:
        cases, data = make_cases(G, args.batch, args.vertices, device)
        d, frac = check_agreement(*data)
        print(f"G={G}: max |naive - vhakit| soft-argmax {d:.2e} m; one-hot agree {frac:.1%}")
        for name, naive, ours in cases:
            naive(), ours()  # warm-up (allocator, kernels)
            rows.append([G, name, time_ms(naive, device, repeats, clock),
                         time_ms(ours, device, repeats, clock)])
        del cases, data
    libc = None if device.type == "cuda" else _glibc_for_memory()
    for row in rows:  # second pass: memory, with the allocator settings that make it measurable
        cases, _ = make_cases(row[0], args.batch, args.vertices, device)
        naive, ours = next((n, o) for name, n, o in cases if name == row[1])
        row += ([peak_extra_bytes(naive, device, libc), peak_extra_bytes(ours, device, libc)]
                if device.type == "cuda" or libc is not None else [float("nan")] * 2)
        del cases, naive, ours

    head = (f"{'G':>3} {'case':<20} {'naive ms':>10} {'vhakit ms':>10} {'speed-up':>9} "
            f"{'naive MB':>10} {'vhakit MB':>10} {'mem ratio':>10}")
    print(head + "\n" + "-" * len(head))  # mem ratio: vhakit floored at 1 MB
    for G, name, tn, to, mn, mo in rows:
        print(f"{G:>3} {name:<20} {tn:>10.1f} {to:>10.1f} {tn / to:>8.1f}x "
              f"{mn / 2**20:>10.1f} {mo / 2**20:>10.1f} {mn / max(mo, 2.0**20):>9.1f}x")


def _glibc_for_memory(mmap_threshold: int = 64 * 1024):
    """glibc, set to mmap (and so unmap on free) every block >= ``mmap_threshold`` bytes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        open("/proc/self/clear_refs", "w").close()
    except OSError:
        print("memory: needs Linux with glibc and /proc/self/clear_refs; skipped")
        return None
    return libc if libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 else None


if __name__ == "__main__":
    main()
