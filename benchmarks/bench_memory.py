"""Peak memory per sample of the VHA presets, and where the heatmap-sized tensors are.

For each preset (tiny, teaching, paper) and a batch of ``B`` samples:

* ``train MB/sample``: the peak extra memory of one trainer step (forward, loss, backward, Adam)
  divided by ``B`` (Linux CPU: peak RSS above the RSS before the step, see ``bench_vha.py``;
  CUDA: ``max_memory_allocated``). ``infer MB/sample``: the same for a forward pass under
  ``torch.no_grad`` (what BCP's frozen decoder and inference pay).
* ``saved MB/sample``: the tensors autograd keeps for backward (``saved_tensors_hooks``, each
  storage counted once), and how many *heatmap batches* they hold: one heatmap batch is
  ``B x N x G^3`` floats, the size of one dense set of heatmaps (input one-hot or output logits).
* ``largest new tensor``: the largest tensor any operation of the step creates, in heatmap
  batches (a ``TorchDispatchMode`` sees every output); ``encoder``: the same for the encoder
  alone: far below 1 means the one-hot input volume is never built (the sparse stem).

Dataset samples hold ``vertices108 (108, 3)`` and ``pelvis (3,)`` only (1.3 KB); no heatmap is
ever written to disk or kept between batches.

  python benchmarks/bench_memory.py                       # tiny, teaching (batch of the preset),
                                                          # paper at batch 1; ~1-2 min on 2 cores
  python benchmarks/bench_memory.py --presets paper --paper-batch 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vha import peak_extra_mb  # noqa: E402

from vhakit.config import vha_configs  # noqa: E402
from vhakit.models.vha import VHA  # noqa: E402
from vhakit.training.trainer import StepContext  # noqa: E402
from vhakit.training.vha import VHATask  # noqa: E402


class LargestOutput(TorchDispatchMode):
    """Records the element count of the largest tensor any operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def synthetic_batch(B: int, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(B)
    pelvis = (torch.rand(B, 3, generator=gen) - 0.5) * 0.2
    verts = pelvis[:, None] + (torch.rand(B, 108, 3, generator=gen) - 0.5) * 1.6
    return {"vertices108": verts.to(device), "pelvis": pelvis.to(device),
            "sample_index": torch.arange(B, device=device)}


def measure(preset: str, B: int, device: torch.device, train: bool = True) -> dict:
    cfg = vha_configs(preset)
    torch.manual_seed(0)
    model = VHA(cfg.model).to(device).train()
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    task, opt = VHATask(cfg.task), torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = synthetic_batch(B, device)
    ctx = StepContext(epoch=0, step=0, device=device, seed=0)
    N, G = cfg.model.n_vertices, cfg.model.grid
    heatmap_batch = B * N * G ** 3  # elements of one dense batch of heatmaps

    def step():
        loss, _ = task.compute_loss(model, batch, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer():
        model(batch["vertices108"], batch["pelvis"], return_logits=False)

    row = {"preset": preset, "grid": G, "batch": B, "device": str(device)}
    t = time.perf_counter()
    infer()  # warm-up
    row["infer_mb_per_sample"] = peak_extra_mb(infer, device) / B
    with LargestOutput() as mode:
        with torch.no_grad():
            model.encode(batch["vertices108"], batch["pelvis"])
    row["encoder_largest_of_heatmap_batch"] = mode.largest / heatmap_batch
    if train:
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor):
            if t.device.type != "meta":
                s = t.untyped_storage()
                saved[s.data_ptr()] = max(saved.get(s.data_ptr(), 0), s.nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), LargestOutput() as mode:
            step()
        big = [n for n in saved.values() if n >= 4 * N * G ** 3]  # at least one sample's heatmaps
        row.update({
            "saved_mb_per_sample": sum(saved.values()) / 2 ** 20 / B,
            "saved_heatmap_batches": sum(big) / (4 * heatmap_batch),
            "largest_of_heatmap_batch": mode.largest / heatmap_batch,
            "train_mb_per_sample": peak_extra_mb(step, device) / B})
    row["seconds"] = time.perf_counter() - t
    row["heatmap_batch_mb"] = 4 * heatmap_batch / 2 ** 20
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "teaching", "paper"])
    p.add_argument("--paper-batch", type=int, default=1, help="batch of the paper preset")
    p.add_argument("--paper-infer-only", action="store_true", help="skip the paper training step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for preset in args.presets:
        B = args.paper_batch if preset == "paper" else vha_configs(preset).train.batch_size
        row = measure(preset, B, device, train=not (preset == "paper" and args.paper_infer_only))
        rows.append(row)
        print(f"{preset}: done in {row['seconds']:.0f} s", flush=True)
    print(f"\n{'preset':<10}{'G':>4}{'batch':>6}{'train MB/sample':>17}{'infer MB/sample':>17}"
          f"{'saved MB/sample':>17}{'saved heatmap batches':>23}{'largest new':>13}{'encoder':>9}")
    nan = float("nan")
    for r in rows:
        print(f"{r['preset']:<10}{r['grid']:>4}{r['batch']:>6}{r.get('train_mb_per_sample', nan):>17.0f}"
              f"{r['infer_mb_per_sample']:>17.0f}{r.get('saved_mb_per_sample', nan):>17.0f}"
              f"{r.get('saved_heatmap_batches', nan):>23.2f}{r.get('largest_of_heatmap_batch', nan):>13.2f}"
              f"{r['encoder_largest_of_heatmap_batch']:>9.3f}")
    print("(heatmap batch = batch x 108 x G^3 float32; 'largest new' and 'encoder': the largest "
          "tensor created, in heatmap batches)")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
