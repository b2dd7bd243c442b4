"""pyvista scenes of reconstructions: meshes side by side or overlaid, per-vertex error colours
with a scale bar in mm, camera frusta with their images, the cuboid and a vertex heatmap.

Every function draws into a ``pyvista.Plotter`` (make one with :func:`new_plotter`); display it
with :func:`vhakit.viz.backend.show`, which also keeps a PNG. World frame: metres, y up, the body faces
+z (the body model's frame). Inputs may be numpy arrays or torch tensors.
"""
from __future__ import annotations

import numpy as np

from vhakit._util import check_shape, to_numpy
from vhakit.viz.backend import import_pyvista
from vhakit.viz.figures import ERROR_CMAP, error_colors, method_color

__all__ = ["new_plotter", "mesh_polydata", "add_body", "add_error_body", "scale_bar_labels",
           "add_points",
           "frustum_corners", "add_cameras", "add_cuboid", "heatmap_grid", "add_heatmap",
           "front_view", "frame_scene", "comparison_scene", "camera_scene", "heatmap_scene",
           "part_vertex"]

BACKGROUND = "white"


def new_plotter(window_size: tuple[int, int] = (640, 480)):
    """An off-screen plotter (white background, light kit), renderable without a display."""
    pv = import_pyvista()
    pl = pv.Plotter(off_screen=True, window_size=list(window_size))
    pl.set_background(BACKGROUND)
    return pl


def mesh_polydata(vertices_m, faces):
    """``pyvista.PolyData`` from vertices ``(V, 3)`` m and triangles ``(F, 3)``."""
    pv = import_pyvista()
    v, f = to_numpy(vertices_m, np.float64), to_numpy(faces, np.int64)
    check_shape(v, "vertices_m", ("V", 3))
    check_shape(f, "faces", ("F", 3))
    return pv.PolyData.from_regular_faces(v, f)


def add_body(pl, vertices_m, faces, *, color=None, vertex_colors=None, opacity: float = 1.0,
             name: str | None = None):
    """A shaded body mesh: one ``color`` or per-vertex ``vertex_colors (V, 3)`` in [0, 1]."""
    mesh = mesh_polydata(vertices_m, faces)
    if vertex_colors is not None:
        rgb = np.clip(to_numpy(vertex_colors, np.float64), 0, 1)
        mesh.point_data["rgb"] = (rgb * 255).astype(np.uint8)
        return pl.add_mesh(mesh, scalars="rgb", rgb=True, opacity=opacity, smooth_shading=True,
                           name=name)
    return pl.add_mesh(mesh, color=color or (0.8, 0.8, 0.8), opacity=opacity,
                       smooth_shading=True, name=name)


def add_error_body(pl, vertices_m, faces, errors_m, *, clim_mm=None, cmap: str = ERROR_CMAP,
                   title: str = "error (mm)", name: str | None = None) -> tuple[float, float]:
    """A mesh coloured by per-vertex error ``(V,)`` (metres) with a scale bar in millimetres.

    Returns the scale limits ``(low, high)`` in mm: ``clim_mm`` or the data's ``(min, max)``.
    """
    e = to_numpy(errors_m, np.float64)
    _, clim = error_colors(e, clim_mm, cmap)  # validates, fixes the limits
    mesh = mesh_polydata(vertices_m, faces)
    check_shape(e, "errors_m", (mesh.n_points,))
    mesh.point_data[title] = e * 1000.0
    pl.add_mesh(mesh, scalars=title, clim=list(clim), cmap=cmap, smooth_shading=True, name=name,
                scalar_bar_args={"title": title, "fmt": "%.0f", "color": "black",
                                 "vertical": True, "position_x": 0.86, "position_y": 0.1,
                                 "height": 0.8, "width": 0.08,
                                 "n_labels": scale_bar_labels(*clim)})
    return clim


def scale_bar_labels(low_mm: float, high_mm: float) -> int:
    """How many labels a scale bar from ``low_mm`` to ``high_mm`` gets: 5 (quarters), 6, 4 or 7,
    the first whose steps are whole multiples of 5 mm (0-275 mm: 0, 55, ..., 275), else 5."""
    span = high_mm - low_mm
    for n in (5, 6, 4, 7):
        step = span / (n - 1)
        if step >= 5 and abs(step / 5 - round(step / 5)) < 1e-6:
            return n
    return 5


def add_points(pl, points_m, *, color=(0.1, 0.1, 0.1), radius_m: float = 0.012,
               name: str | None = None):
    """Points ``(N, 3)`` (e.g. the 108 subsampled vertices) as small spheres."""
    pv = import_pyvista()
    p = to_numpy(points_m, np.float64)
    check_shape(p, "points_m", ("N", 3))
    ball = pv.Sphere(radius=radius_m, theta_resolution=10, phi_resolution=10)
    return pl.add_mesh(pv.PolyData(p).glyph(geom=ball, scale=False, orient=False), color=color,
                       name=name)


def frustum_corners(K, R, t, image_size: tuple[int, int], depth_m: float):
    """Camera centre ``(3,)`` and the image's corners ``(4, 3)`` at ``depth_m``, world frame.

    Corners are the outer pixel edges (OpenCV: pixel centres at integers), in the order top-left,
    top-right, bottom-right, bottom-left of the image; lens distortion is ignored.

    Args:
        K: ``(3, 3)`` px; R: ``(3, 3)`` world -> camera; t: ``(3,)`` m (``x_cam = R x + t``).
        image_size: ``(W, H)`` pixels.
    """
    K, R, t = to_numpy(K, np.float64), to_numpy(R, np.float64), to_numpy(t, np.float64)
    check_shape(K, "K", (3, 3))
    check_shape(R, "R", (3, 3))
    check_shape(t, "t", (3,))
    W, H = image_size
    uv1 = np.array([[-0.5, -0.5, 1], [W - 0.5, -0.5, 1], [W - 0.5, H - 0.5, 1],
                    [-0.5, H - 0.5, 1]], dtype=np.float64)
    x_cam = depth_m * (np.linalg.solve(K, uv1.T).T)  # (4, 3), z = depth_m
    centre = -R.T @ t
    return centre, (x_cam - t) @ R  # R^T (x - t) for each row


def add_cameras(pl, K, R, t, image_size: tuple[int, int], images=None, *, depth_m: float = 0.5,
                color=(0.2, 0.2, 0.2)) -> None:
    """Frusta of V cameras (``K (V,3,3)``, ``R (V,3,3)``, ``t (V,3)``) and, if given, their
    ``images (V, H, W, 3)`` uint8 drawn on the far rectangle, upright as the camera saw them."""
    pv = import_pyvista()
    K, R, t = to_numpy(K, np.float64), to_numpy(R, np.float64), to_numpy(t, np.float64)
    if K.ndim != 3 or R.shape != K.shape or t.shape != (K.shape[0], 3):
        raise ValueError(f"K, R, t must be (V,3,3), (V,3,3), (V,3); got {K.shape}, {R.shape}, "
                         f"{t.shape}")
    for v in range(K.shape[0]):
        centre, corners = frustum_corners(K[v], R[v], t[v], image_size, depth_m)
        pts = np.vstack([centre, corners])
        lines = np.hstack([[2, 0, i] for i in range(1, 5)] + [[5, 1, 2, 3, 4, 1]])
        pl.add_mesh(pv.PolyData(pts, lines=lines), color=color, line_width=2)
        if images is not None:
            quad = pv.PolyData(corners, faces=[4, 0, 1, 2, 3])
            # Texture coordinates: pyvista puts image row 0 (the top) at t = 1.
            quad.active_texture_coordinates = np.array([[0, 1], [1, 1], [1, 0], [0, 0]],
                                                       dtype=np.float32)
            img = np.ascontiguousarray(to_numpy(images[v], np.uint8))
            pl.add_mesh(quad, texture=pv.Texture(img), lighting=False)


def add_cuboid(pl, center_m, side_m: float, *, color=(0.3, 0.3, 0.3)):
    """The cuboid of the heatmaps: an axis-aligned wireframe cube of ``side_m`` metres around
    ``center_m (3,)``. A :class:`vhakit.heatmaps.Cuboid` (batch 1) is accepted as ``center_m``."""
    pv = import_pyvista()
    if hasattr(center_m, "side") and hasattr(center_m, "center"):
        center_m, side_m = center_m.center[0], center_m.side
    c = to_numpy(center_m, np.float64).reshape(-1)
    check_shape(c, "center_m", (3,))
    h = side_m / 2
    box = pv.Box(bounds=(c[0] - h, c[0] + h, c[1] - h, c[1] + h, c[2] - h, c[2] + h))
    return pl.add_mesh(box, style="wireframe", color=color, line_width=2)


def heatmap_grid(heatmap, center_m, side_m: float):
    """A ``pyvista.ImageData`` whose points are the voxel centres of the cuboid and whose
    ``"heatmap"`` values are ``heatmap (Gx, Gy, Gz)`` (grid axes = x, y, z; see
    :mod:`vhakit.heatmaps` for the voxel convention)."""
    pv = import_pyvista()
    h = to_numpy(heatmap, np.float32)
    check_shape(h, "heatmap", ("Gx", "Gy", "Gz"), hint="; pick one vertex: heatmaps[0, j]")
    c = to_numpy(center_m, np.float64).reshape(-1)
    check_shape(c, "center_m", (3,))
    G = np.array(h.shape, dtype=np.float64)
    spacing = side_m / G
    grid = pv.ImageData(dimensions=h.shape, spacing=spacing, origin=c - side_m / 2 + spacing / 2)
    grid.point_data["heatmap"] = h.ravel(order="F")  # VTK: x varies fastest
    return grid


def add_heatmap(pl, heatmap, center_m, side_m: float, *, mode: str = "isosurface",
                levels=(0.1, 0.5), cmap: str = "inferno") -> None:
    """One vertex's heatmap: nested isosurfaces at ``levels`` x max (translucent), or a volume
    rendering (``mode="volume"``)."""
    grid = heatmap_grid(heatmap, center_m, side_m)
    peak = float(grid.point_data["heatmap"].max())
    if mode == "volume":
        pl.add_volume(grid, scalars="heatmap", cmap=cmap, opacity="linear", show_scalar_bar=False)
    elif mode == "isosurface":
        for k, level in enumerate(sorted(levels)):
            surf = grid.contour([level * peak], scalars="heatmap")
            if surf.n_points:
                pl.add_mesh(surf, color=_cmap_rgb(cmap, 0.35 + 0.6 * k / max(len(levels), 1)),
                            opacity=0.35 + 0.5 * k / max(len(levels), 1), smooth_shading=True)
    else:
        raise ValueError(f"mode must be 'isosurface' or 'volume', got {mode!r}")


def _cmap_rgb(cmap: str, x: float):
    import matplotlib

    return tuple(matplotlib.colormaps[cmap](x)[:3])


def front_view(pl, points_m, *, zoom: float = 1.0, azimuth_deg: float = 20.0,
               elevation_deg: float = 10.0, margin: float = 0.08,
               reserve_right: float = 0.0) -> None:
    """Point the camera at ``points_m (..., 3)`` from the body's front (+z), turned by
    ``azimuth_deg`` about y and raised by ``elevation_deg``, near enough that the points fill the
    window (with ``margin``, a fraction of the view) whatever its aspect ratio, leaving the
    fraction ``reserve_right`` of the width free on the right (for a scale bar)."""
    p = to_numpy(points_m, np.float64).reshape(-1, 3)
    centre = (p.min(0) + p.max(0)) / 2
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    back = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])  # to the eye
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    q = p - centre
    x, y, z = np.abs(q @ right).max(), np.abs(q @ up).max(), q @ back
    w, h = pl.window_size
    tan_v = np.tan(np.deg2rad(pl.camera.view_angle) / 2) * (1 - 2 * margin)
    tan_h = tan_v * w / h * (1 - reserve_right)
    distance = max(x / tan_h, y / tan_v) / zoom + float(z.max())
    # shift the view right so the content sits in the left (1 - reserve_right) of the window
    half_width = distance * np.tan(np.deg2rad(pl.camera.view_angle) / 2) * w / h
    centre = centre + reserve_right * half_width * right
    pl.camera_position = [tuple(centre + distance * back), tuple(centre), tuple(up)]
    pl.reset_camera_clipping_range()


def frame_scene(pl, recons, frame: int, method: str, layers: dict[str, bool],
                clim_mm=None) -> None:
    """The viewer's scene: one method on one frame with optional layers ``"mesh"``,
    ``"error colours"``, ``"ground truth ghost"``, ``"108 points"`` and ``"cameras"``.

    The camera frames this frame's body: its ground truth and the shown method's mesh (a
    motion may wander metres from the origin, and a poor prediction far from the truth stays
    in view), or the cameras too when they are shown.
    """
    gt = recons.meshes[recons.GT][frame]
    verts = recons.meshes[method][frame]
    bar = (layers.get("mesh", True) and method != recons.GT
           and layers.get("error colours", False))
    if layers.get("mesh", True):
        if bar:
            add_error_body(pl, verts, recons.faces, recons.vertex_errors_m(method)[frame],
                           clim_mm=clim_mm)
        else:
            add_body(pl, verts, recons.faces, color=method_color(method))
    if layers.get("ground truth ghost", False) and method != recons.GT:
        add_body(pl, gt, recons.faces, color=(0.55, 0.55, 0.6), opacity=0.3)
    if layers.get("108 points", False):
        if method in recons.points108:
            pts = recons.points108[method][frame]
        elif recons.subsample_indices is not None:
            pts = verts[np.asarray(recons.subsample_indices)]
        else:
            pts = None
        if pts is not None:
            add_points(pl, pts, color=(0.85, 0.1, 0.1))
    show_cams = layers.get("cameras", False) and recons.K is not None
    if show_cams:
        centres = _add_frame_cameras(pl, recons, frame, depth_m=0.8)
        front_view(pl, np.vstack([gt, centres]), azimuth_deg=35.0, elevation_deg=35.0)
    else:
        front_view(pl, np.vstack([gt, verts]), reserve_right=0.2 if bar else 0.0)
    pl.add_text(f"{method}, frame {frame}", position="upper_left", font_size=10,
                color="black")


def comparison_scene(recons, frame: int, methods=None, *, layout: str = "side",
                     errors: bool = True, clim_mm=None, window_size=(900, 450)):
    """Ground truth and other methods on one frame of a :class:`vhakit.evaluation.recon.Reconstructions`.

    Args:
        methods: names to show (default all); ground truth is always included.
        layout: ``"side"`` (one body per method, 1 m apart, labelled) or ``"overlay"`` (methods
            drawn over a translucent ground truth).
        errors: colour non-ground-truth meshes by per-vertex error (shared scale bar in mm).
        clim_mm: error scale limits; default ``(0, max error of the shown methods)``.
    """
    if not 0 <= frame < recons.num_frames:
        raise ValueError(f"frame must be in 0..{recons.num_frames - 1}, got {frame}")
    methods = [m for m in (methods or recons.methods) if m != recons.GT]
    gt = recons.meshes[recons.GT][frame]
    errs = {m: recons.vertex_errors_m(m)[frame] for m in methods}
    if clim_mm is None and methods:
        clim_mm = (0.0, 1000.0 * max(float(e.max()) for e in errs.values()))
    pl = new_plotter(window_size)
    names = [recons.GT, *methods]
    if layout == "side":
        width = float(np.ptp(gt[:, 0])) + 0.3
        shown = []
        for i, m in enumerate(names):
            shift = np.array([(i - (len(names) - 1) / 2) * width, 0.0, 0.0])
            v = recons.meshes[m][frame] + shift
            shown.append(v)
            shown.append(v.min(0, keepdims=True) - [0.0, 0.3, 0.0])  # room for the label
            if m != recons.GT and errors:
                add_error_body(pl, v, recons.faces, errs[m], clim_mm=clim_mm)
            else:
                add_body(pl, v, recons.faces, color=method_color(m))
            foot = np.array([v[:, 0].mean(), v[:, 1].min() - 0.2, v[:, 2].mean()])
            pl.add_point_labels(foot[None], [m.replace(" (", "\n(")], font_size=12,
                                shape_opacity=0.0, show_points=False, always_visible=True,
                                justification_horizontal="center")
        front_view(pl, np.vstack(shown), azimuth_deg=10.0, elevation_deg=5.0,
                   reserve_right=0.15 if errors and methods else 0.0)
    elif layout == "overlay":
        add_body(pl, gt, recons.faces, color=method_color(recons.GT), opacity=0.35)
        for m in methods:
            v = recons.meshes[m][frame]
            if errors:
                add_error_body(pl, v, recons.faces, errs[m], clim_mm=clim_mm)
            else:
                add_body(pl, v, recons.faces, color=method_color(m), opacity=0.8)
        front_view(pl, gt, reserve_right=0.2 if errors and methods else 0.0)
    else:
        raise ValueError(f"layout must be 'side' or 'overlay', got {layout!r}")
    return pl


def _add_frame_cameras(pl, recons, frame: int, depth_m: float) -> np.ndarray:
    """The frusta of ``recons``' cameras at ``frame``, with its images when it has them; returns
    the camera centres ``(V, 3)`` in the world, ``-R^T t``."""
    images = None if recons.images is None else recons.images[frame]
    K, R, t = (to_numpy(a[frame], np.float64) for a in (recons.K, recons.R, recons.t))
    size = ((images.shape[2], images.shape[1]) if images is not None
            else tuple(int(round(2 * c)) + 1 for c in K[0, :2, 2]))
    add_cameras(pl, recons.K[frame], recons.R[frame], recons.t[frame], size, images,
                depth_m=depth_m)
    return -np.einsum("vji,vj->vi", R, t)


def camera_scene(recons, frame: int, *, method: str | None = None, depth_m: float = 0.6,
                 window_size=(800, 600)):
    """The cameras of one frame (frusta with their input images) around a method's mesh."""
    if recons.K is None or recons.R is None or recons.t is None:
        raise ValueError("these reconstructions carry no cameras (K, R, t are None)")
    method = method or recons.GT
    pl = new_plotter(window_size)
    add_body(pl, recons.meshes[method][frame], recons.faces, color=method_color(method))
    centres = _add_frame_cameras(pl, recons, frame, depth_m)
    front_view(pl, np.vstack([recons.meshes[method][frame], centres]),
               azimuth_deg=35.0, elevation_deg=35.0)
    return pl


def part_vertex(vertices_m, part_labels, part: str | int) -> int:
    """The index of a vertex of one body part: of the vertices whose label is ``part`` (an
    SMPL joint name of :data:`vhakit.body.JOINT_NAMES` such as ``"left_hand"``, or its
    index), the one nearest their centroid -- the middle of that part in this pose.

    Picking by label finds the hand whatever way the body faces; "the vertex furthest along
    +x" is the left hand only for a body facing +z.

    Args:
        vertices_m: ``(V, 3)`` metres (one posed mesh).
        part_labels: ``(V,)`` int, the joint each vertex follows most
            (``BodyModel.open().part_labels``).
        part: joint name or index.
    """
    from vhakit.body.model import JOINT_NAMES

    v, labels = to_numpy(vertices_m, np.float64), to_numpy(part_labels, np.int64)
    check_shape(v, "vertices_m", ("N", 3))
    check_shape(labels, "part_labels", (len(v),))
    if isinstance(part, str):
        if part not in JOINT_NAMES:
            raise ValueError(f"part must be one of vhakit.body.JOINT_NAMES, got {part!r}")
        part = JOINT_NAMES.index(part)
    members = np.flatnonzero(labels == int(part))
    if not len(members):
        raise ValueError(f"no vertex is labelled part {part}; part_labels holds "
                         f"{sorted(set(labels.tolist()))}")
    centre = v[members].mean(axis=0)
    return int(members[np.argmin(np.linalg.norm(v[members] - centre, axis=1))])


def heatmap_scene(vertices_m, faces, heatmap, center_m, side_m: float, *, vertex: int | None = None,
                  mode: str = "isosurface", window_size=(640, 640)):
    """A translucent body, the cuboid, and one vertex's heatmap ``(Gx, Gy, Gz)`` (isosurfaces or
    a volume); ``vertex`` (an index into ``vertices_m``) is marked in red."""
    pl = new_plotter(window_size)
    add_body(pl, vertices_m, faces, opacity=0.3)
    add_cuboid(pl, center_m, side_m)
    add_heatmap(pl, heatmap, center_m, side_m, mode=mode)
    if vertex is not None:
        add_points(pl, to_numpy(vertices_m, np.float64)[vertex][None], color=(0.9, 0.1, 0.1),
                   radius_m=0.02)
    c = to_numpy(center_m, np.float64).reshape(3)
    corners = c + side_m / 2 * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1)
                                         for k in (-1, 1)])
    front_view(pl, corners, azimuth_deg=30.0, elevation_deg=20.0, margin=0.02)
    return pl
