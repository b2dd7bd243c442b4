"""Reconstructions for the viewer: the demo's output, or a clearly labelled stand-in.

``load_reconstructions()`` returns ``runs/demo/reconstructions.npz`` when ``vhakit demo`` has
written it. Until then, :func:`demo_reconstructions` builds a small stand-in set so the viewer
notebook works on a fresh machine: ground truth from the open body model on a few poses, and
"predictions" that are the ground truth plus smooth, part-wise structured noise. Their method
names end in ``(stand-in)``: they are not results of any model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vhakit.evaluation.recon import Reconstructions

__all__ = ["STANDIN_NOISE_MM", "DEMO_RECONSTRUCTIONS", "demo_reconstructions",
           "load_reconstructions", "structured_noise"]

DEMO_RECONSTRUCTIONS = Path("runs/demo/reconstructions.npz")
#: Per-part offset scale (mm, standard deviation per axis) of each stand-in "method".
STANDIN_NOISE_MM = {"baseline (stand-in)": 25.0, "VHA+BCP (stand-in)": 12.0,
                    "VHA+BCP fitted (stand-in)": 8.0}


def _vertex_neighbours_mean(field: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Average of ``field (V, C)`` over each vertex and its mesh neighbours."""
    V = field.shape[0]
    i = torch.cat([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = torch.cat([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    total = field.clone().index_add_(0, i, field[j])
    count = torch.ones(V, dtype=field.dtype).index_add_(0, i, torch.ones_like(i, dtype=field.dtype))
    return total / count[:, None]


def structured_noise(part_labels: torch.Tensor, faces: torch.Tensor, scale_m: float,
                     generator: torch.Generator, num_frames: int = 1,
                     smooth_iters: int = 10) -> torch.Tensor:
    """Smooth displacements ``(num_frames, V, 3)`` m: one random offset per body part (std
    ``scale_m`` per axis) plus a global offset of the same scale, blurred over the mesh so parts
    do not tear apart. Looks like a plausible reconstruction error, is not one."""
    V = part_labels.shape[0]
    out = []
    for _ in range(num_frames):
        per_part = torch.randn(24, 3, generator=generator, dtype=torch.float64) * scale_m
        glob = torch.randn(1, 3, generator=generator, dtype=torch.float64) * scale_m * 0.5
        d = per_part[part_labels] + glob  # (V, 3)
        for _ in range(smooth_iters):
            d = _vertex_neighbours_mean(d, faces)
        out.append(d)
    return torch.stack(out).reshape(num_frames, V, 3)


def _interpolated_poses(poses: dict[str, torch.Tensor], num_frames: int):
    """``num_frames`` poses ``(N, 72)`` walking through the named poses, and their names."""
    names, P = list(poses), torch.stack(list(poses.values()))  # (K, 72)
    out, labels = [], []
    for f in range(num_frames):
        s = f * (len(P) - 1) / max(num_frames - 1, 1)
        k = min(int(s), len(P) - 2)
        a = s - k
        out.append((1 - a) * P[k] + a * P[k + 1])
        labels.append(names[k] if a < 0.5 else names[k + 1])
    return torch.stack(out), labels


def demo_reconstructions(fast: bool | None = None, *, body=None, num_frames: int | None = None,
                         views: int = 4, image_size: tuple[int, int] = (128, 128),
                         images: bool = True, seed: int = 0) -> Reconstructions:
    """A stand-in :class:`~vhakit.evaluation.recon.Reconstructions` (see the module docstring).

    Args:
        fast: fewer frames (4 instead of 12); default :func:`vhakit.runtime.fast_mode`.
        body: a :class:`vhakit.body.BodyModel` (default ``BodyModel.open()``).
        num_frames: overrides the frame count.
        views, image_size: the camera ring and its rendered input images ``(W, H)``.
        images: render the input views (False: cameras only, faster).
        seed: seeds shapes, noise and image backgrounds.
    """
    from vhakit.data.render import RenderConfig, part_colors, render_views
    from vhakit.experiments.demo import demo_poses
    from vhakit.geometry.camera import make_rig
    from vhakit.runtime import fast_mode

    if body is None:
        from vhakit.body.model import BodyModel

        body = BodyModel.open()
    fast = fast_mode() if fast is None else fast
    N = num_frames or (4 if fast else 12)
    gen = torch.Generator().manual_seed(seed)
    poses, names = _interpolated_poses(demo_poses(), N)
    yaw = torch.linspace(-0.4, 0.4, N)
    poses[:, 1] += yaw  # turn the body about y a little from frame to frame
    betas = 0.7 * torch.randn(N, 10, generator=gen)
    with torch.no_grad():
        out = body(betas=betas, global_orient=poses[:, :3], body_pose=poses[:, 3:],
                   transl=torch.zeros(N, 3))
    gt = out.vertices.double()  # (N, V, 3)
    faces = body.faces.cpu()
    labels = body.part_labels.cpu()
    meshes = {Reconstructions.GT: gt}
    for method, scale_mm in STANDIN_NOISE_MM.items():
        meshes[method] = gt + structured_noise(labels, faces, scale_mm / 1000.0, gen, N)
    idx = body.subsample_indices.cpu()
    cams = make_rig(views, image_size=image_size, target_m=(0.0, 0.0, 0.0))
    colors = part_colors(labels, body.v_template.detach().cpu())
    rendered = []
    for f in range(N if images else 0):
        r = render_views(gt[f].float(), faces, cams, colors, visibility_index=idx[:1],
                         config=RenderConfig(background="solid"), generator=gen)
        rendered.append(r.images.numpy())
    rep = lambda x: np.repeat(x.numpy()[None], N, axis=0)  # noqa: E731  (N, V, ...)
    return Reconstructions(
        faces=faces.numpy().astype(np.int64),
        meshes={m: v.numpy() for m, v in meshes.items()},
        points108={m: v[:, idx].numpy() for m, v in meshes.items()},
        frame_names=[f"stand-in {f}: {n}" for f, n in enumerate(names)],
        images=np.stack(rendered) if images else None, K=rep(cams.K), R=rep(cams.R), t=rep(cams.t),
        subsample_indices=idx.numpy())


def _find(path: Path) -> Path | None:
    if path.is_absolute():
        return path if path.is_file() else None
    for base in [Path.cwd(), *list(Path.cwd().parents)[:3]]:  # notebooks run in notebooks/
        if (base / path).is_file():
            return base / path
    return None


def load_reconstructions(path: str | Path = DEMO_RECONSTRUCTIONS, *, fast: bool | None = None,
                         body=None) -> tuple[Reconstructions, str]:
    """The demo's reconstructions if ``path`` exists (searched from the working directory up
    three levels), else :func:`demo_reconstructions`. Returns ``(recons, source)`` where
    ``source`` says which, in words."""
    found = _find(Path(path))
    if found is not None:
        return Reconstructions.load(found), f"demo output: {found}"
    return (demo_reconstructions(fast, body=body),
            f"STAND-IN data ({path} not found): ground truth of the open body plus structured "
            "noise, not model results. Run `vhakit demo` to see real reconstructions.")
