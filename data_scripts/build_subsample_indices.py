"""Compute (or re-check) the 108 subsampled vertices of a body model and draw them.

The indices come from :func:`vhakit.body.subsample.compute_subsample_indices`: a COMA-style chain of
quadric decimations V -> ceil(V/4) -> ceil(V/16) -> ... -> 108 that keeps original vertices, then
nudged so every body part (the joint with the largest skinning weight) has at least 2 points.

    python data_scripts/build_subsample_indices.py                  # open model: check + picture
    python data_scripts/build_subsample_indices.py --write          # store into open_body.npz
    python data_scripts/build_subsample_indices.py --smpl DIR --out smpl108.npy   # licensed SMPL

The open model's build script already stores the indices; ``--write`` only refreshes them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vhakit.body.model import JOINT_NAMES, OPEN_MODEL_PATH
from vhakit.body.subsample import compute_subsample_indices, decimation_levels

ROOT = Path(__file__).resolve().parents[1]


def draw(vertices: np.ndarray, faces: np.ndarray, idx: np.ndarray, labels: np.ndarray,
         path: Path) -> None:
    """Front and side views of the 108 points on the rest mesh (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 6.5))
    views = [(0, "front (x = body's left)"), (2, "side (z = front)")]
    for ax, (h, title) in zip(axes, views, strict=True):
        ax.tripcolor(vertices[:, h], vertices[:, 1], faces, np.ones(len(faces)), vmin=0, vmax=4,
                     cmap="Greys", edgecolors="none")  # light-grey mesh silhouette
        p = vertices[idx]
        ax.scatter(p[:, h], p[:, 1], c=labels[idx], cmap="tab20", s=18, edgecolors="k",
                   linewidths=0.3, zorder=3)
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.set_xlabel("x (m)" if h == 0 else "z (m)")
        ax.set_ylabel("y (m)")
    fig.suptitle(f"{len(idx)} subsampled vertices (colour = body part)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smpl", type=Path, default=None, help="licensed SMPL file or folder")
    parser.add_argument("--gender", default="neutral")
    parser.add_argument("--out", type=Path, default=None, help="write the indices (.npy)")
    parser.add_argument("--write", action="store_true", help="store into open_body.npz")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "subsample108.png")
    args = parser.parse_args(argv)

    if args.smpl is not None:
        from vhakit.body.smpl_files import find_smpl_file, load_smpl_file

        arrays = load_smpl_file(find_smpl_file(args.smpl, args.gender))
    else:
        with np.load(OPEN_MODEL_PATH, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    v, f = np.asarray(arrays["v_template"], float), np.asarray(arrays["f"], np.int64)
    labels = np.asarray(arrays["weights"]).argmax(1)
    print("levels:", [len(v)] + decimation_levels(len(v)))
    idx = compute_subsample_indices(v, f, 108, part_labels=labels)
    counts = np.bincount(labels[idx], minlength=24)
    print("points per part:", dict(zip(JOINT_NAMES, counts.tolist(), strict=True)))
    if args.smpl is None and "subsample_indices" in arrays:
        same = np.array_equal(np.sort(idx), np.sort(arrays["subsample_indices"]))
        print("matches the stored indices:", same)
    if args.out is not None:
        np.save(args.out, idx)
    if args.write:
        arrays["subsample_indices"] = idx
        np.savez_compressed(OPEN_MODEL_PATH, **arrays)
    if args.picture:
        draw(v, f, idx, labels, args.picture)
        print("picture:", args.picture)


if __name__ == "__main__":
    main()
