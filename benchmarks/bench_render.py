"""Frames per second of the renderer options for the synthetic world, side by side.

One frame = one posed body mesh seen by 4 cameras: shaded part-coloured RGB views over random
backgrounds with pixel noise, silhouettes, and the visibility of the 108 subsampled vertices.

Options:
* ``torch z-buffer``: ``vhakit.data.render.render_views`` (vectorised z-buffer rasteriser in torch,
  exact per-vertex visibility), with 1 and 2 torch threads;
* ``OpenCV painter``: triangles sorted far-to-near, one ``cv2.fillConvexPoly`` per triangle into a
  face-id image, then the same shading; visibility by sampling the depth map at the nearest pixel;
* ``pyvista/VTK (EGL)``: off-screen OpenGL (one plotter per view, VTK's own lighting), RGB from
  the screenshot, silhouettes and visibility from the depth buffer.

Usage: ``python benchmarks/bench_render.py [--frames 8] [--sizes 128 384]``.

Measured 2026-11-25 on the 2-core development machine while other jobs ran (load average ~3);
frames/s of wall time (CPU ms per frame):

    option                                             128^2               384^2
    torch z-buffer (vhakit), 1 thread          27.2 (  29 ms)        9.8 (  78 ms)
    torch z-buffer (vhakit), 2 threads          4.4 ( 142 ms)        1.7 ( 339 ms)
    OpenCV painter (fillConvexPoly)             6.3 (  79 ms)        4.7 ( 106 ms)
    pyvista/VTK off-screen (EGL)                8.5 ( 117 ms)        3.6 ( 277 ms)

Two torch threads lose on a busy machine (OpenMP threads spin while waiting for a core): make
data sets with one single-threaded process per core.
"""
from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vhakit.body.model import BodyModel  # noqa: E402
from vhakit.data.render import (  # noqa: E402
    RenderConfig,
    part_colors,
    random_backgrounds,
    render_views,
    shade_views,
    vertex_normals,
)
from vhakit.geometry.camera import Camera, make_rig  # noqa: E402

NUM_VIEWS = 4
DEPTH_TOL_M = 0.01


def posed_meshes(body: BodyModel, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pose = 0.25 * torch.randn(frames, 69, generator=g)
    with torch.no_grad():
        return body(body_pose=pose).vertices  # (frames, V, 3)


def sampled_visibility(depth_map: np.ndarray, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Visibility by sampling a depth map (K, H, W) at each vertex's nearest pixel."""
    K, H, W = depth_map.shape
    col, row = np.round(uv[..., 0]).astype(int), np.round(uv[..., 1]).astype(int)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    k = np.arange(K)[:, None]
    surf = depth_map[k, row.clip(0, H - 1), col.clip(0, W - 1)]
    return inside & (z <= surf + DEPTH_TOL_M)


def render_torch(verts, faces, rig, colors, index, g):
    out = render_views(verts, faces, rig, colors, visibility_index=index, generator=g)
    return out.images, out.silhouettes, out.visibility


def render_painter(verts, faces, rig: Camera, colors, index, g):
    W, H = rig.image_size
    uv, depth = rig.project(verts), rig.world_to_camera(verts)[..., 2]  # (K, V, 2), (K, V)
    uv_np, depth_np, faces_np = uv.numpy(), depth.numpy(), faces.numpy()
    shift = 4  # cv2 fixed-point sub-pixel bits
    face_id = np.full((NUM_VIEWS, H, W), -1, np.int32)
    for k in range(NUM_VIEWS):
        pts = np.round(uv_np[k][faces_np] * (1 << shift)).astype(np.int32)  # (F, 3, 2)
        order = np.argsort(-depth_np[k][faces_np].mean(1), kind="stable")  # far to near
        img = face_id[k]
        for f in order.tolist():
            cv2.fillConvexPoly(img, pts[f], f, lineType=cv2.LINE_8, shift=shift)
    face_id_t = torch.from_numpy(face_id).long()
    normals = vertex_normals(verts, faces) @ rig.R.transpose(-1, -2)
    images, depth_map = shade_views(face_id_t, uv, depth, normals, colors, faces, RenderConfig(), g)
    vis = sampled_visibility(depth_map.numpy(), uv_np[:, index], depth_np[:, index])
    return images, face_id_t >= 0, torch.from_numpy(vis)


class VtkRenderer:
    """pyvista off-screen plotters, one per view, reused across frames."""

    def __init__(self, verts, faces, rig: Camera, colors):
        import pyvista as pv

        W, H = rig.image_size
        cells = np.hstack([np.full((faces.shape[0], 1), 3), faces.numpy()]).ravel()
        self.mesh = pv.PolyData(verts.numpy().astype(np.float32), cells)
        self.mesh.point_data["rgb"] = (colors.numpy() * 255).astype(np.uint8)
        self.plotters = []
        for k in range(NUM_VIEWS):
            p = pv.Plotter(off_screen=True, window_size=(W, H))
            p.add_mesh(self.mesh, scalars="rgb", rgb=True, smooth_shading=True)
            p.set_background("black")
            c, R = rig.centre[k].numpy(), rig.R[k].numpy()
            p.camera.position = tuple(c)
            p.camera.focal_point = tuple(c + R[2])
            p.camera.up = tuple(-R[1])
            p.camera.view_angle = math.degrees(2 * math.atan(H / 2 / float(rig.K[k, 1, 1])))
            p.camera.clipping_range = (0.5, 10.0)
            p.show(auto_close=False)
            self.plotters.append(p)
        self.rig = rig

    def __call__(self, verts, faces, rig, colors, index, g):
        self.mesh.points = verts.numpy().astype(np.float32)
        rgb, depth = [], []
        for p in self.plotters:
            p.render()
            rgb.append(p.screenshot(return_img=True))
            depth.append(-p.get_image_depth(fill_value=np.inf))  # distance along the optical axis
        rgb, depth = np.stack(rgb), np.stack(depth)
        sil = np.isfinite(depth)
        W, H = rig.image_size
        bg = (random_backgrounds(NUM_VIEWS, (W, H), "random", g).numpy() * 255)
        img = np.where(sil[..., None], rgb.astype(np.float32), bg)
        img += 3.0 * torch.randn(img.shape, generator=g).numpy()
        uv, z = rig.project(verts[index]).numpy(), rig.world_to_camera(verts[index])[..., 2].numpy()
        vis = sampled_visibility(depth, uv, z)
        return (torch.from_numpy(np.clip(np.round(img), 0, 255).astype(np.uint8)),
                torch.from_numpy(sil), torch.from_numpy(vis))

    def close(self):
        for p in self.plotters:
            p.close()


def time_option(fn, meshes, faces, rig, colors, index) -> tuple[float, float]:
    """(frames per second of wall time, CPU seconds of this process per frame)."""
    g = torch.Generator().manual_seed(0)
    fn(meshes[0], faces, rig, colors, index, g)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for verts in meshes:
        fn(verts, faces, rig, colors, index, g)
    return len(meshes) / (time.perf_counter() - start), (time.process_time() - cpu) / len(meshes)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames timed per option and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 384], help="image sides (px)")
    parser.add_argument("--no-vtk", action="store_true", help="skip the pyvista/VTK option")
    args = parser.parse_args(argv)
    body = BodyModel.open()
    with torch.no_grad():
        colors = part_colors(body.part_labels, body().vertices[0])
    meshes = posed_meshes(body, args.frames)
    index = body.subsample_indices
    print(f"mesh: {body.num_vertices} vertices, {body.faces.shape[0]} faces; {NUM_VIEWS} views; "
          f"{args.frames} frames; {os.cpu_count()} CPU cores visible")
    print("frames/s of wall time (CPU ms per frame, all threads of this process); the machine's "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{'option':36s}" + "".join(f"{f'{s}^2':>20s}" for s in args.sizes))
    rows = [("torch z-buffer (vhakit), 1 thread", render_torch, 1),
            ("torch z-buffer (vhakit), 2 threads", render_torch, 2),
            ("OpenCV painter (fillConvexPoly)", render_painter, 1)]
    if not args.no_vtk:
        rows.append(("pyvista/VTK off-screen (EGL)", "vtk", 1))
    for name, fn, threads in rows:
        torch.set_num_threads(threads)
        cells = []
        for s in args.sizes:
            rig = make_rig(num_views=NUM_VIEWS, image_size=(s, s))
            try:
                if fn == "vtk":
                    vtk = VtkRenderer(meshes[0], body.faces, rig, colors)
                    try:
                        fps, cpu = time_option(vtk, meshes, body.faces, rig, colors, index)
                    finally:
                        vtk.close()
                else:
                    fps, cpu = time_option(fn, meshes, body.faces, rig, colors, index)
                cells.append(f"{fps:11.1f} ({cpu * 1e3:4.0f} ms)")
            except Exception as err:  # an optional back end may be missing (no EGL, no pyvista)
                cells.append(f"{'n/a':>20s}")
                print(f"  {name} at {s}^2 failed: {type(err).__name__}: {err}")
        print(f"{name:36s}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
