"""The paper preset on one CUDA GPU: training samples/s, peak memory, projected training time.

Cases (each wrapped in try/except: a failure is recorded and the run goes on):

  vha  fp32 | fp32 + channels_last_3d | bf16 | bf16 + channels_last_3d | + cudnn.benchmark
       the VHA paper preset (64^3, 108 vertices, full-resolution V2V-like, batch 10)
  bcp  fp32 | bf16   the BCP paper preset (4 views of 384^2, 64^3, batch 3; the frozen VHA
       decoder and code target; the model keeps its 3D layers in channels_last_3d itself)
  vha / bcp  bf16 + compile   ``torch.compile`` in a child process: skipped if it does not
       compile within ``--compile-limit-s`` (90 s), or if too little of ``--budget-s`` is left

A step is the trainer's (``vhakit.training.trainer.fit``): the task's loss under autocast, zero_grad,
backward, Adam, on a synthetic batch already on the GPU (data loading is not measured). Reported:
samples/s (median step), peak GPU memory (``max_memory_allocated``), and the projected time of
55 VHA epochs and 20 BCP epochs next to the paper's ~16 and ~4.5 days on one RTX 3090
(Sec. 3.1). Epoch sizes (assumptions, overridable):

  VHA: AMASS sampled every 10th frame (~1.5 M meshes: ~15 M frames at the source rates, see
       docs/datasets.md) + the Human3.6M training meshes (S1, S5, S6, S7, S8: ~159 k frames
       with learnable-triangulation's frame counts) = 1.66 M samples per epoch
  BCP: the Human3.6M training frames, 159 k samples (4 views each) per epoch

  python benchmarks/gpu_paper_scale.py                 # on a CUDA machine, < 6 min
  python benchmarks/gpu_paper_scale.py --smoke         # CPU, tiny shapes, 1 step: does it run?
  OUT=/some/dir python benchmarks/gpu_paper_scale.py   # also writes $OUT/gpu_paper_scale.json
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vhakit.config import vha_configs  # noqa: E402
from vhakit.geometry.camera import make_rig  # noqa: E402
from vhakit.models.vha import VHA  # noqa: E402
from vhakit.training.trainer import StepContext  # noqa: E402
from vhakit.training.vha import VHATask  # noqa: E402

PAPER_DAYS = {"vha": 16.0, "bcp": 4.5}  # one RTX 3090 (paper Sec. 3.1)
PAPER_EPOCHS = {"vha": 55, "bcp": 20}
EPOCH_SAMPLES = {"vha": 1_500_000 + 159_000, "bcp": 159_000}
IMAGE_PX = {"paper": 384, "teaching": 128, "tiny": 64}  # the data presets' image sizes


def vha_case(preset: str, batch: int, device: torch.device, vha_set: dict | None = None):
    """(model, task, batch dict) of the VHA preset (with ``vha_set`` overrides) on a synthetic
    batch."""
    cfg = vha_configs(preset, **(vha_set or {}))
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    pelvis = (torch.rand(batch, 3, generator=g) - 0.5) * 0.2
    verts = pelvis[:, None] + (torch.rand(batch, 108, 3, generator=g) - 0.5) * 1.6
    data = {"vertices108": verts, "pelvis": pelvis, "sample_index": torch.arange(batch)}
    return VHA(cfg.model).to(device), VHATask(cfg.task), {k: v.to(device) for k, v in data.items()}


def bcp_case(preset: str, batch: int, device: torch.device, vha_set: dict | None = None):
    """(model, task, batch dict) of the BCP preset: 4 views of IMAGE_PX[preset]^2 pixels (the
    VHA it mirrors built with ``vha_set`` overrides)."""
    from vhakit.config import bcp_configs
    from vhakit.models.bcp import BodyCodePredictor
    from vhakit.training.bcp import BCPTask

    cfg, vha_cfg = bcp_configs(preset), vha_configs(preset, **(vha_set or {})).model
    torch.manual_seed(0)
    model = BodyCodePredictor(cfg.model, vha_cfg).init_from_vha(VHA(vha_cfg))
    g, px, views = torch.Generator().manual_seed(0), IMAGE_PX[preset], 4
    samples = []
    for i in range(batch):
        pelvis = torch.rand(3, generator=g) - 0.5
        rig = make_rig(views, distance_m=3.5, image_size=(px, px), target_m=pelvis, generator=g)
        samples.append({"images": torch.rand(views, 3, px, px, generator=g), "K": rig.K,
                        "R": rig.R, "t": rig.t, "pelvis": pelvis,
                        "vertices108": pelvis + 0.3 * torch.randn(108, 3, generator=g),
                        "visibility": (torch.rand(views, 108, generator=g) > 0.5).float(),
                        "sample_index": torch.tensor(i)})
    data = {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}
    return model.to(device), BCPTask(cfg.task), data


def run_case(model_name: str, preset: str, batch: int, device: torch.device, *, bf16: bool,
             channels_last: bool, compile_: bool = False, cudnn_benchmark: bool = False,
             max_steps: int = 10, max_s: float = 8.0, compile_limit_s: float = 90.0,
             vha_set: dict | None = None) -> dict:
    """Build the case, warm up (compiling if asked), time up to ``max_steps`` steps or
    ``max_s`` seconds (at least 2); samples/s, peak memory."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    model, task, data = (vha_case if model_name == "vha" else bcp_case)(preset, batch, device,
                                                                          vha_set)
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    model.train()
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    ctx = StepContext(epoch=0, step=0, device=device, seed=0)

    def step() -> float:
        sync()
        t = time.perf_counter()
        with amp:
            loss, _ = task.compute_loss(net, data, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - t

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if compile_ and hasattr(signal, "SIGALRM"):
        def too_slow(*_):
            raise TimeoutError(f"torch.compile took more than {compile_limit_s:.0f} s")
        signal.signal(signal.SIGALRM, too_slow)
        signal.alarm(int(compile_limit_s))
    try:
        first = step()  # compiles when compile_
    finally:
        if compile_ and hasattr(signal, "SIGALRM"):
            signal.alarm(0)
    step()
    times, t0 = [], time.perf_counter()
    while len(times) < max_steps and (len(times) < 2 or time.perf_counter() - t0 < max_s):
        times.append(step())
    med = statistics.median(times)
    out = {"model": model_name, "preset": preset, "batch": batch, "bf16": bf16,
           "channels_last": channels_last, "compile": compile_, "cudnn_benchmark": cudnn_benchmark,
           "vha_set": dict(vha_set or {}),
           "steps": len(times), "step_s": med, "samples_per_s": batch / med,
           "first_step_s": first}
    if not compile_:  # FLOPs of one step (convolutions and matrix products, fwd + bwd)
        with FlopCounterMode(display=False) as fc:
            step()
        out["tflop_per_step"] = fc.get_total_flops() / 1e12
        out["achieved_tflop_s"] = out["tflop_per_step"] / med
    if cuda:
        out["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return out


@contextmanager
def case_alarm(seconds: float):
    """Raise TimeoutError in this (main) thread after ``seconds`` (no-op without SIGALRM)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def too_slow(*_):
        raise TimeoutError(f"case stopped after {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(max(1, int(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def compile_in_child(args, model_name: str, timeout_s: float, variant: list[str] | None = None) -> dict:
    """Run one compiled case in a child process (a stuck compile cannot hold this one)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", model_name,
           "--compile-limit-s", str(args.compile_limit_s)] + (["--smoke"] if args.smoke else [])
    cmd += ["--variant", *variant] if variant else []
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"compiled case killed after {timeout_s:.0f} s"}
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("CHILD_RESULT "):
            return json.loads(line[len("CHILD_RESULT "):])
    return {"error": f"child exited {res.returncode}: {(res.stderr or res.stdout)[-400:]}"}


def parse_sets(items: list[str] | None) -> dict:
    """``["stem_stride=2", "head_channels=16"]`` -> ``{"stem_stride": 2, "head_channels": 16}``."""
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant takes KEY=VALUE items (VHAConfig fields), got {item!r}")
        try:
            out[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key] = val
    return out


def plan(args) -> tuple[str, torch.device, dict[str, int], list[tuple[str, dict]]]:
    if args.smoke:
        preset, device, batches = "tiny", torch.device("cpu"), {"vha": 2, "bcp": 1}
    else:
        preset, device, batches = "paper", torch.device("cuda"), {"vha": 10, "bcp": 3}
    cases = [("vha", dict(bf16=False, channels_last=False)),
             ("vha", dict(bf16=False, channels_last=True)),
             ("vha", dict(bf16=True, channels_last=False)),
             ("vha", dict(bf16=True, channels_last=True)),
             ("vha", dict(bf16=True, channels_last=True, cudnn_benchmark=True)),
             ("bcp", dict(bf16=False, channels_last=False)),
             ("bcp", dict(bf16=True, channels_last=False))]
    if args.smoke:
        cases = [cases[0], cases[3], cases[5], cases[6]]
    if args.skip_fp32:
        cases = [c for c in cases if c[1]["bf16"]]
    variant = parse_sets(args.variant)
    if variant:  # the same model with VHAConfig overrides, eager bf16 (compiled ones come later)
        cases += [("vha", dict(bf16=True, channels_last=True, vha_set=variant)),
                  ("bcp", dict(bf16=True, channels_last=False, vha_set=variant))]
    return preset, device, batches, cases


def label(r: dict) -> str:
    parts = ["bf16" if r.get("bf16") else "fp32"]
    parts += ["channels_last_3d"] * bool(r.get("channels_last")) + ["compile"] * bool(r.get("compile"))
    parts += ["cudnn.benchmark"] * bool(r.get("cudnn_benchmark")) + variant_tags(r)
    return f"{r['model']} " + " + ".join(parts)


def variant_tags(r: dict) -> list[str]:
    """``["stem_stride=2", ...]``: the row's VHAConfig overrides (empty for the preset itself)."""
    return [f"{k}={v}" for k, v in sorted((r.get("vha_set") or {}).items())]


def summarise(rows: list[dict], info: dict) -> dict:
    proj = {}
    variants = sorted({tuple(variant_tags(r)) for r in rows})
    for name, tags in [(n, t) for t in variants for n in ("vha", "bcp")]:
        ok = [r for r in rows if r.get("model") == name and "samples_per_s" in r
              and tuple(variant_tags(r)) == tags]
        if not ok:
            continue
        best = max(ok, key=lambda r: r["samples_per_s"])
        paper_rate = PAPER_EPOCHS[name] * info["epoch_samples"][name] / (PAPER_DAYS[name] * 86400)
        days = PAPER_EPOCHS[name] * info["epoch_samples"][name] / best["samples_per_s"] / 86400
        proj[" ".join((name, *tags))] = {
            "best_case": label(best), "samples_per_s": best["samples_per_s"],
            "epochs": PAPER_EPOCHS[name], "epoch_samples": info["epoch_samples"][name],
            "projected_days": days, "paper_days": PAPER_DAYS[name],
            "paper_samples_per_s": paper_rate, "speedup_vs_paper": PAPER_DAYS[name] / days}
    return proj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny preset, 1 timed step per case")
    p.add_argument("--budget-s", type=float, default=330.0, help="stop starting cases after this")
    p.add_argument("--compile-limit-s", type=float, default=90.0)
    p.add_argument("--case-limit-s", type=float, default=120.0, help="stop an eager case after this")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--skip-fp32", action="store_true", help="only the bf16 cases")
    p.add_argument("--variant", nargs="*", default=None, metavar="KEY=VALUE",
                   help="also run the preset with these VHAConfig overrides (e.g. stem_stride=2)")
    p.add_argument("--no-variant-compile", action="store_true",
                   help="run the variant eager only")
    p.add_argument("--vha-epoch-samples", type=int, default=EPOCH_SAMPLES["vha"])
    p.add_argument("--bcp-epoch-samples", type=int, default=EPOCH_SAMPLES["bcp"])
    p.add_argument("--json", default=None, help="write the results here (default $OUT/...)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    preset, device, batches, cases = plan(args)
    steps = dict(max_steps=1, max_s=0.0) if args.smoke else {}
    if args.child:  # one compiled case, result on stdout
        variant = parse_sets(args.variant)
        try:
            r = run_case(args.child, preset, batches[args.child], device, bf16=not args.smoke,
                         channels_last=args.child == "vha", compile_=True,
                         compile_limit_s=args.compile_limit_s, vha_set=variant, **steps)
        except Exception as err:  # noqa: BLE001 - reported to the parent
            r = {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"}
        print("CHILD_RESULT " + json.dumps({"model": args.child, "compile": True,
                                            "bf16": not args.smoke,
                                            "channels_last": args.child == "vha",
                                            "vha_set": variant, **r}))
        return 0
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or --smoke on CPU", file=sys.stderr)
        return 2
    with FlopCounterMode(display=False):  # import its lazy dependencies (sympy) now: a case
        torch.ones(2, 2) @ torch.ones(2, 2)  # stopped by its alarm must not stop mid-import
    info = {"torch": torch.__version__, "device": str(device), "preset": preset,
            "epoch_samples": {"vha": args.vha_epoch_samples, "bcp": args.bcp_epoch_samples},
            "batches": batches, "smoke": args.smoke}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    tf32_conv=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    print(json.dumps(info), flush=True)
    if args.smoke:
        print("smoke run: tiny preset on the CPU; the numbers and projections mean nothing")
    rows = []
    for name, opts in cases:
        left = args.budget_s - (time.perf_counter() - t_start)
        if left < 5:
            rows.append({"model": name, **opts, "error": "skipped: time budget spent"})
            continue
        try:
            with case_alarm(min(args.case_limit_s, left)):  # a stuck case cannot eat the run
                r = run_case(name, preset, batches[name], device, **opts, **steps)
        except Exception as err:  # noqa: BLE001 - one failure must not lose the other cases
            traceback.print_exc(limit=3)
            r = {"model": name, **opts, "error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"}
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(r)
        print(f"  {label(r):<48} " + (f"{r['samples_per_s']:8.2f} samples/s" if "samples_per_s" in r
                                       else r["error"]), flush=True)
    compiled = [] if args.no_compile else [("vha", None), ("bcp", None)]
    if args.variant and not args.no_compile and not args.no_variant_compile:
        compiled += [("vha", args.variant), ("bcp", args.variant)]
    for name, variant in compiled:
        left = args.budget_s - (time.perf_counter() - t_start)
        if left < args.compile_limit_s + 20:
            rows.append({"model": name, "compile": True, "vha_set": parse_sets(variant),
                         "error": "skipped: time budget spent"})
            continue
        r = compile_in_child(args, name, timeout_s=min(left, args.compile_limit_s + 90),
                             variant=variant)
        rows.append(r)
        print(f"  {label(r):<48} " + (f"{r['samples_per_s']:8.2f} samples/s (compile "
                                       f"{r['first_step_s']:.0f} s)" if "samples_per_s" in r
                                       else r["error"]), flush=True)
    proj = summarise(rows, info)
    print(f"\n{'case':<50}{'batch':>6}{'samples/s':>11}{'step ms':>9}{'TFLOP/s':>9}{'peak GB':>9}"
          f"{'1st step s':>11}")
    for r in rows:
        if "samples_per_s" in r:
            print(f"{label(r):<50}{r['batch']:>6}{r['samples_per_s']:>11.2f}{1000 * r['step_s']:>9.1f}"
                  f"{r.get('achieved_tflop_s', float('nan')):>9.1f}"
                  f"{r.get('peak_gb', float('nan')):>9.2f}{r['first_step_s']:>11.1f}")
        else:
            print(f"{label(r):<50}  {r['error'][:100]}")
    for name, pr in proj.items():
        print(f"{name}: {pr['epochs']} epochs x {pr['epoch_samples']:,} samples at "
              f"{pr['samples_per_s']:.1f} samples/s ({pr['best_case']}) = {pr['projected_days']:.2f} "
              f"days ({24 * pr['projected_days']:.1f} h) vs the paper's {pr['paper_days']} days on an "
              f"RTX 3090 ({pr['paper_samples_per_s']:.1f} samples/s): {pr['speedup_vs_paper']:.1f}x")
    result = {"info": info, "rows": rows, "projection": proj,
              "wall_s": time.perf_counter() - t_start}
    out = args.json or (os.path.join(os.environ["OUT"], "gpu_paper_scale.json")
                        if os.environ.get("OUT") else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")
    print(f"total {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
