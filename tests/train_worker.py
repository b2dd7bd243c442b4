"""A small in-memory dataset and a command-line training run, for the trainer's tests.

``StickFigureDataset`` yields ``{"vertices108": (108, 3), "pelvis": (3,)}``: points scattered
along the bones of a randomly posed stick figure (metres, y up) standing somewhere in a room. It
needs no body model, so the trainer's tests stay independent of ``vhakit.body``.

Run as a script (also under ``torchrun``) to train the ``tiny`` VHA preset on it::

    python tests/train_worker.py OUT_DIR [--resume] [--steps N] [--sleep S] [key=value ...]
"""
from __future__ import annotations

import argparse
import ast
import math
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

# (parent, child) joints of the stick figure and the rest-pose joint offsets in metres.
BONES = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (5, 6), (1, 7), (7, 8), (8, 9),
         (0, 10), (10, 11), (11, 12), (0, 13), (13, 14), (14, 15)]
OFFSETS = [(0, 0, 0), (0, 0.45, 0), (0, 0.2, 0), (0, 0.2, 0), (0.18, 0, 0), (0.28, 0, 0),
           (0.25, 0, 0), (-0.18, 0, 0), (-0.28, 0, 0), (-0.25, 0, 0), (0.1, -0.05, 0),
           (0, -0.42, 0), (0, -0.4, 0), (-0.1, -0.05, 0), (0, -0.42, 0), (0, -0.4, 0)]


class StickFigureDataset(Dataset):
    """``n`` deterministic random stick-figure samples (sample ``i`` depends on ``seed, i``)."""

    def __init__(self, n: int = 32, seed: int = 0, sleep_s: float = 0.0) -> None:
        self.n, self.seed, self.sleep_s = n, seed, sleep_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.sleep_s:
            time.sleep(self.sleep_s)  # slows a run down so a test can kill it mid-epoch
        g = torch.Generator().manual_seed(self.seed * 100_003 + i)
        joints = [torch.tensor([(torch.rand(1, generator=g).item() - 0.5) * 2.0, 0.95,
                                (torch.rand(1, generator=g).item() - 0.5) * 2.0])]
        for parent, child in BONES:  # each bone: its rest offset turned by a random small angle
            off = torch.tensor(OFFSETS[child])
            a, b = (torch.rand(2, generator=g) - 0.5) * 1.2
            ca, sa, cb, sb = math.cos(a), math.sin(a), math.cos(b), math.sin(b)
            Rz = torch.tensor([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1.0]])
            Rx = torch.tensor([[1.0, 0, 0], [0, cb, -sb], [0, sb, cb]])
            joints.append(joints[parent] + Rx @ Rz @ off)
        J = torch.stack(joints)  # (16, 3)
        # Vertex n sits at a fixed place on a fixed bone (like a mesh vertex), plus a little noise.
        bone = torch.arange(108) % len(BONES)
        t = (torch.arange(108) // len(BONES) + 0.5)[:, None] / (108 // len(BONES) + 1)
        par, chi = torch.tensor(BONES).T
        verts = J[par[bone]] * (1 - t) + J[chi[bone]] * t + 0.01 * torch.randn(108, 3, generator=g)
        return {"vertices108": verts.float(), "pelvis": J[0].float()}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vhakit.training.vha import train_vha

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--samples", type=int, default=24, help="dataset size")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds per sample (slow down)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", help="key=value overrides of the tiny preset")
    args = p.parse_intermixed_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.overrides:
        key, _, val = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            overrides[key] = val
    overrides.setdefault("device", "cpu")  # also on GPU machines: gloo, two ranks on one host
    res = train_vha("tiny", data=StickFigureDataset(args.samples, sleep_s=args.sleep), out_dir=args.out,
                    resume=args.resume, overwrite=not args.resume, progress=False, **overrides)
    print(f"done step={res.history[-1]['step'] if res.history else 0}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
