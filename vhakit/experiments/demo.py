"""``vhakit demo``: the kit's main job, end to end on a CPU laptop (<= 10 minutes on 2 cores).

1. the open body model in four poses (``bodies.png``);
2. the synthetic multi-view data (tiny preset; built once, then reused from ``data/``);
3. VHA trained on the broad pose pool + the training meshes, BCP (initialised from VHA's encoder,
   vertex + code losses) and the LMT-style baseline trained on ``h36m_like`` (checkpoints reused
   on a second run);
4. the test frames reconstructed by both, SMPL fitted to each, and a table of MPJPE / MPVE /
   angular distance (``results.md``), figures (``comparison.png``, ``views.png``, training
   curves) and ``reconstructions.npz`` for the interactive viewer (notebook 07).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from vhakit._util import markdown_table

__all__ = ["demo_poses", "demo_budget", "run_demo", "plot_posed_meshes", "plot_comparison",
           "format_table", "format_tilt_table", "bent_tilt_errors", "BENT_DEG"]

# The demo's training (tiny data), read off the tiny test-set learning curves
# (docs/learning_curves/tiny.csv, 84 h36m_like test frames, 2026-12-08): the VHA reaches 31 mm in
# 3,000 steps (58 mm at the sweeps' 600); BCP from the pose-pretrained backbone is at 51 mm after
# 20 epochs (2,100 steps) and 49 mm after 40, the baseline 62 and 57: 20 epochs keep the demo
# under 10 minutes on 2 cores and buy most of what 40 would.
_DEMO_VHA_STEPS = 3000
_DEMO_EPOCHS = 20.0

#: A test frame counts as bent when its true trunk tilt exceeds this (degrees; standing and
#: walking frames sit at 0-5, picking something up at 15-60).
BENT_DEG = 20.0


def demo_budget(preset: str = "tiny"):
    """The :class:`~vhakit.experiments.pipeline.Budget` the demo trains with: for ``tiny``, the
    tiny data with the pose-pretrained 2D backbone and the training length the tiny learning
    curves ask for (``docs/learning_curves/``); other presets their sweep budget;
    ``VHAKIT_FAST=1`` the seconds-long one."""
    from vhakit.experiments.pipeline import BUDGETS, Budget, get_budget
    from vhakit.runtime import fast_mode

    if preset != "tiny" or fast_mode():
        return get_budget(preset)
    tiny = BUDGETS["tiny"]
    return Budget("tiny", vha_steps=_DEMO_VHA_STEPS, epochs=_DEMO_EPOCHS, min_steps=0,
                  overrides={"vha": tiny.overrides["vha"],
                             "bcp": {"backbone_init": "pose2d"},
                             "baseline": {"backbone_init": "pose2d"}})


def demo_poses() -> dict[str, torch.Tensor]:
    """Four hand-set SMPL poses ``(72,)`` (axis-angle, radians), by name.

    Signs follow SMPL: the left arm points along +x at rest, so lowering it is a negative
    rotation about z; hip flexion (thigh forward) is a negative rotation about x; knee flexion
    a positive one.
    """
    from vhakit.body.model import JOINT_NAMES

    def pose(**joints: tuple[float, float, float]) -> torch.Tensor:
        p = torch.zeros(24, 3)
        for name, aa in joints.items():
            p[JOINT_NAMES.index(name)] = torch.tensor(aa)
        return p.reshape(72)

    return {
        "T-pose (rest)": pose(),
        "standing": pose(left_shoulder=(0, 0, -1.2), right_shoulder=(0, 0, 1.2),
                         left_elbow=(0, -0.3, 0), right_elbow=(0, 0.3, 0)),
        "walking": pose(left_hip=(-0.5, 0, 0), right_hip=(0.35, 0, 0), right_knee=(0.6, 0, 0),
                        left_knee=(0.15, 0, 0), left_shoulder=(0.4, 0, -1.25),
                        right_shoulder=(-0.4, 0, 1.25), left_elbow=(0, -0.4, 0),
                        right_elbow=(0, 0.4, 0)),
        "squat, arms forward": pose(left_hip=(-1.3, 0, -0.15), right_hip=(-1.3, 0, 0.15),
                                    left_knee=(1.6, 0, 0), right_knee=(1.6, 0, 0),
                                    left_ankle=(-0.3, 0, 0), right_ankle=(-0.3, 0, 0),
                                    spine1=(0.25, 0, 0), left_shoulder=(0, 1.3, 0),
                                    right_shoulder=(0, -1.3, 0)),
    }


def plot_posed_meshes(body, poses: dict[str, torch.Tensor], betas: torch.Tensor | None = None,
                azimuth_deg: float = 25.0):
    """A figure with one panel per named pose, each body drawn shaded and part-coloured.

    Args:
        body: a :class:`vhakit.body.BodyModel`.
        poses: name -> pose ``(72,)``.
        betas: ``(len(poses), 10)`` shapes; zeros when None.
    """
    from vhakit.viz.figures import draw_mesh, part_colors

    names = list(poses)
    P = torch.stack([poses[n] for n in names])  # (B, 72)
    B = len(names)
    if betas is None:
        betas = torch.zeros(B, 10)
    with torch.no_grad():
        out = body(betas=betas, global_orient=P[:, :3], body_pose=P[:, 3:],
                   transl=torch.zeros(B, 3))
    colors = part_colors(body.part_labels)
    fig = Figure(figsize=(3.2 * B, 4.2))
    axes = fig.subplots(1, B)
    for ax, name, verts in zip(axes, names, out.vertices, strict=False):
        draw_mesh(ax, verts, body.faces, colors, azimuth_deg=azimuth_deg)
        ax.set_title(name)
    fig.tight_layout()
    return fig


def plot_comparison(recons, frames, methods, azimuth_deg: float = 20.0):
    """Rows = frames, columns = methods; each mesh coloured by its per-vertex error (mm)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from vhakit.viz.figures import ERROR_CMAP, draw_mesh, error_colors

    clim = (0.0, 100.0)
    fig = Figure(figsize=(2.6 * len(methods), 3.2 * len(frames)))
    axes = fig.subplots(len(frames), len(methods), squeeze=False)
    for r, f in enumerate(frames):
        for c, m in enumerate(methods):
            err = recons.vertex_errors_m(m)[f]
            draw_mesh(axes[r, c], recons.meshes[m][f], recons.faces,
                      None if m == recons.GT else error_colors(err, clim)[0],
                      azimuth_deg=azimuth_deg)
            title = m if m == recons.GT else f"{m}\n{err.mean() * 1000:.0f} mm"
            axes[r, c].set_title(title, fontsize=9)
    fig.colorbar(ScalarMappable(Normalize(*clim), ERROR_CMAP), ax=axes, shrink=0.6,
                 label="per-vertex error (mm)")
    return fig


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per method, columns MPJPE / PA-MPJPE / MPVE / angle / 108-MPVE."""
    cols = [("mpjpe_mm", "MPJPE (mm)"), ("pa_mpjpe_mm", "PA-MPJPE (mm)"), ("mpve_mm", "MPVE (mm)"),
            ("angle_deg", "angle (deg)"), ("mpve108_mm", "108-vertex error (mm)")]
    return markdown_table(["method"] + [c[1] for c in cols],
                          [[name] + [f"{m[k]:.1f}" for k, _ in cols] for name, m in rows.items()])


def bent_tilt_errors(tilts: dict[str, np.ndarray], bent_deg: float = BENT_DEG
                     ) -> dict[str, float]:
    """Mean |trunk tilt error| (degrees) of each method over the frames whose true tilt exceeds
    ``bent_deg``; NaN when no frame is that bent. ``tilts`` as :func:`format_tilt_table`'s."""
    gt = np.asarray(tilts["ground truth"])
    bent = gt > bent_deg
    return {name: float(np.abs(np.asarray(t)[bent] - gt[bent]).mean()) if bent.any()
            else float("nan") for name, t in tilts.items() if name != "ground truth"}


def format_tilt_table(tilts: dict[str, np.ndarray], bent_deg: float = BENT_DEG) -> str:
    """A markdown table of how bent the reconstructions are, over the frames whose true trunk
    tilt (:func:`vhakit.evaluation.metrics.trunk_tilt_deg`) exceeds ``bent_deg``: mean tilt and
    mean absolute tilt error per method, and the tilt of the most bent frame.

    Args:
        tilts: ``{"ground truth": (F,), method: (F,)}`` degrees, one entry per test frame.
    """
    gt = np.asarray(tilts["ground truth"])
    bent = gt > bent_deg
    top = int(np.argmax(gt))
    errors = bent_tilt_errors(tilts, bent_deg)
    rows = []
    for name, t in tilts.items():
        t = np.asarray(t)
        err = "–" if name == "ground truth" or not bent.any() else f"{errors[name]:.1f}"
        mean = f"{t[bent].mean():.1f}" if bent.any() else "–"
        rows.append([name, mean, err, f"{t[top]:.1f}"])
    return markdown_table(
        [f"trunk tilt (deg), {int(bent.sum())} frames bent > {bent_deg:g} deg", "mean",
         "mean |error|", "most bent frame"], rows)


def run_demo(out_dir: Path | str = "runs/demo", preset: str = "tiny", seed: int = 0,
             progress: bool = True) -> dict[str, dict[str, float]]:
    """Run the demo (see the module docstring); returns ``{method: metrics}``: those of
    :func:`format_table` and ``bent_tilt_err_deg`` (mean |trunk tilt error| over the test frames
    whose true tilt exceeds :data:`BENT_DEG`).

    ``VHAKIT_FAST=1`` shrinks training to a few steps (CI); the default trains for
    :func:`demo_budget` (about 8 minutes on 2 cores). A second run reuses the data and the
    checkpoints in ``out_dir/models-<budget>``.
    """
    from vhakit.body.model import BodyModel
    from vhakit.experiments.pipeline import eval_dataset

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[demo {time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)

    body = BodyModel.open()
    fig = plot_posed_meshes(body, demo_poses(), betas=torch.tensor(
        [[0.0] * 10, [1.0] + [0.0] * 9, [-1.0, 0.5] + [0.0] * 8, [0.5, -1.0] + [0.0] * 8]))
    fig.savefig(out_dir / "bodies.png", dpi=110)
    say(f"body model '{body.name}' ({body.num_vertices} vertices) -> bodies.png")
    budget = demo_budget(preset)
    test = eval_dataset("h36m_like", budget, progress)
    say(f"data ready: h36m_like test, {len(test)} frames x {test.num_views} views")
    rows, recons, tilts = _reconstruct(test, body, preset, seed, budget, out_dir, progress, say)
    for label, err in bent_tilt_errors(tilts).items():
        rows[label]["bent_tilt_err_deg"] = err
    table, tilt_table = format_table(rows), format_tilt_table(tilts)
    header = (f"vhakit demo: preset {preset}, h36m_like test ({len(test)} frames, "
              f"{test.num_views} views), {time.perf_counter() - t_start:.0f} s in total\n\n")
    text = header + table + "\n\nHow bent the fitted bodies are (pelvis-to-neck angle from " \
        "vertical):\n\n" + tilt_table + "\n"
    (out_dir / "results.md").write_text(text)
    print("\n" + text, flush=True)
    recons.save(out_dir / "reconstructions.npz")
    worst = int(np.argmax(recons.mpve_mm("baseline (LMT-style) fitted")))
    most_bent = recons.frame_names.index(test.names[int(np.argmax(tilts["ground truth"]))])
    fig = plot_comparison(recons, sorted({0, most_bent, worst}), recons.methods)
    fig.savefig(out_dir / "comparison.png", dpi=100)
    fig = Figure(figsize=(2.2 * test.num_views, 2.4))
    axes = fig.subplots(1, test.num_views)
    for v, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(recons.images[0, v])
        ax.set_title(f"view {v}", fontsize=9)
        ax.axis("off")
    fig.savefig(out_dir / "views.png", dpi=100)
    say(f"wrote results.md, comparison.png, views.png, reconstructions.npz to {out_dir}")
    return rows


def _reconstruct(test, body, preset: str, seed: int, budget, out_dir: Path, progress: bool, say):
    """Train (or reuse) the baseline and VHA+BCP, plot their training curves, reconstruct and fit
    the ``test`` frames. Returns ``{method: metrics}``, the
    :class:`~vhakit.evaluation.recon.Reconstructions` of 24 frames spread over ``test`` plus its
    most bent frame, and the trunk tilts ``{"ground truth" | method: (F,)}`` of all frames."""
    import dataclasses
    import hashlib
    import json

    from vhakit.evaluation.metrics import trunk_tilt_deg
    from vhakit.evaluation.recon import Reconstructions
    from vhakit.experiments.pipeline import ExperimentSpec, evaluate_vertices, train_predictor
    from vhakit.runtime import fast_mode
    from vhakit.training.bcp import predict_vertices
    from vhakit.viz.figures import plot_history

    # runs of another budget live apart: a changed budget never reuses stale checkpoints
    tag = hashlib.sha1(json.dumps(dataclasses.asdict(budget), sort_keys=True,
                                  default=str).encode()).hexdigest()[:8]
    models = out_dir / ("models-fast" if fast_mode() else f"models-{tag}")
    rows: dict[str, dict[str, float]] = {}
    preds, fitted, tilts = {}, {}, {}
    for method, label in (("baseline", "baseline (LMT-style)"), ("vha_bcp", "VHA+BCP")):
        spec = ExperimentSpec(method=method, preset=preset, seed=seed)
        model, run_dir = train_predictor(spec, models, budget, progress)
        say(f"{label}: trained ({run_dir})")
        hist = run_dir / "metrics.json"
        if hist.exists():
            plot_history(hist, out_dir / f"training_{method}.png")
        preds[label] = predict_vertices(model, test)
        rows[label], details = evaluate_vertices(preds[label], test, body)
        fitted[label] = details["vertices"].numpy()
        gt_vertices = details["gt_vertices"].numpy()
        tilts["ground truth"] = trunk_tilt_deg(details["gt_joints"]).numpy()
        tilts[label] = trunk_tilt_deg(details["joints"]).numpy()
        say(f"{label}: reconstructed and fitted {len(test)} frames")
    spread = np.linspace(0, len(test) - 1, min(len(test), 24)).round().astype(int)
    keep = np.array(sorted({*spread.tolist(), int(np.argmax(tilts["ground truth"]))}))
    sample = [test[int(i)] for i in keep]
    return rows, Reconstructions(
        faces=body.faces.numpy(),
        meshes={Reconstructions.GT: gt_vertices[keep],
                **{f"{k} fitted": v[keep] for k, v in fitted.items()}},
        points108={Reconstructions.GT: test.arrays["vertices108"][keep].numpy(),
                   **{k: v[keep].numpy() for k, v in preds.items()}},
        frame_names=[test.names[i] for i in keep],
        images=np.stack([(s["images"].permute(0, 2, 3, 1).numpy() * 255).round()
                         .astype(np.uint8) for s in sample]),
        K=test.arrays["K"][keep].numpy(), R=test.arrays["R"][keep].numpy(),
        t=test.arrays["t"][keep].numpy(),
        subsample_indices=body.subsample_indices.numpy()), tilts
