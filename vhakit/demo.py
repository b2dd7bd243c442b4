"""``vhakit demo``: the kit's main job, end to end on a CPU laptop.

For now: build the open body model, pose it in four poses and save ``bodies.png``. Later stages
(data, VHA, BCP, fitting, metrics) are added here as they land.
"""
from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

__all__ = ["demo_poses", "run_demo", "plot_bodies"]


def demo_poses() -> dict[str, torch.Tensor]:
    """Four hand-set SMPL poses ``(72,)`` (axis-angle, radians), by name.

    Signs follow SMPL: the left arm points along +x at rest, so lowering it is a negative
    rotation about z; hip flexion (thigh forward) is a negative rotation about x; knee flexion
    a positive one.
    """
    from vhakit.body import JOINT_NAMES

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


def plot_bodies(body, poses: dict[str, torch.Tensor], betas: torch.Tensor | None = None,
                azimuth_deg: float = 25.0):
    """A figure with one panel per named pose, each body drawn shaded and part-coloured.

    Args:
        body: a :class:`vhakit.body.BodyModel`.
        poses: name -> pose ``(72,)``.
        betas: ``(len(poses), 10)`` shapes; zeros when None.
    """
    from vhakit.viz import draw_mesh, part_colors

    names = list(poses)
    P = torch.stack([poses[n] for n in names])  # (B, 72)
    B = len(names)
    if betas is None:
        betas = torch.zeros(B, 10)
    with torch.no_grad():
        out = body(betas=betas, global_orient=P[:, :3], body_pose=P[:, 3:],
                   transl=torch.zeros(B, 3))
    colors = part_colors(body.part_labels)
    fig, axes = plt.subplots(1, B, figsize=(3.2 * B, 4.2))
    for ax, name, verts in zip(axes, names, out.vertices, strict=False):
        draw_mesh(ax, verts, body.faces, colors, azimuth_deg=azimuth_deg)
        ax.set_title(name)
    fig.tight_layout()
    return fig


def run_demo(out_dir: Path | str = "runs/demo") -> Path:
    """Run the demo and write its figures into ``out_dir``; returns the path of ``bodies.png``."""
    from vhakit.body import BodyModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    body = BodyModel.open()
    print(f"[demo] body model '{body.name}': {body.num_vertices} vertices "
          f"({time.perf_counter() - t0:.2f} s)")
    betas = torch.tensor([[0.0] * 10, [1.0] + [0.0] * 9, [-1.0, 0.5] + [0.0] * 8,
                          [0.5, -1.0] + [0.0] * 8])
    fig = plot_bodies(body, demo_poses(), betas=betas)
    path = out_dir / "bodies.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"[demo] wrote {path}")
    return path
