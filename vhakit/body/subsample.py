"""The 108 subsampled mesh vertices: a COMA-style decimation chain that keeps original vertices.

COMA (Ranjan et al. 2018, ``mesh_sampling.generate_transform_matrices``) decimates a mesh with
QSlim to ``ceil(V / 4)`` vertices and replaces each decimated vertex by an original vertex
(a 0/1 selection matrix); the next level decimates that mesh again. For SMPL's 6890 vertices,
factors 4, 4, 4 give 1723 -> 431 -> 108: the paper's 108 points are the third level.

Here each level is a VTK quadric decimation (``pyvista``) whose reduction is searched so the level
has ``ceil(n_prev / 4)`` vertices (or the nearest count above it VTK reaches; the last level is
trimmed to exactly `n` by dropping the points closest to another kept point); every decimated
vertex is then mapped to its nearest vertex of the previous level, unused ones first (greedy by
distance, so the mapping is unique and deterministic). The set is not identical to the one the
paper's authors used (it depends on the mesh and on QSlim's tie-breaking).

With ``part_labels`` the result is nudged so every body part keeps at least ``min_per_part``
points: a point of the best-covered part (the one closest to another point) is swapped for the
vertex of the needy part farthest from all chosen points.
"""
from __future__ import annotations

import math

import numpy as np

from vhakit._util import check_shape

__all__ = ["compute_subsample_indices", "decimation_levels"]


def decimation_levels(n_vertices: int, n: int = 108, factor: int = 4) -> list[int]:
    """Vertex counts of the chain, e.g. ``6890 -> [1723, 431, 108]``; the last level is `n`."""
    levels = []
    count = n_vertices
    while math.ceil(count / factor) > n:
        count = math.ceil(count / factor)
        levels.append(count)
    return levels + [n]


def _decimate_to(points: np.ndarray, faces: np.ndarray, n_target: int):
    """Quadric decimation with the reduction searched so the result has `n_target` vertices
    (or the closest count above it that VTK reaches)."""
    try:
        import pyvista as pv
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("computing subsample indices needs pyvista "
                          "(pip install 'vhakit[viz]') or a precomputed index file") from err
    mesh = pv.PolyData(points, np.hstack([np.full((len(faces), 1), 3), faces]).ravel())
    lo, hi = 0.0, 1.0 - 0.5 * n_target / len(points)
    best = None
    for _ in range(40):
        r = 0.5 * (lo + hi)
        dec = mesh.decimate(r, volume_preservation=True)
        n = dec.n_points
        if n >= n_target and (best is None or n < best.n_points):
            best = dec
        if n == n_target:
            break
        lo, hi = (r, hi) if n > n_target else (lo, r)
    if best is None:
        best = mesh
    return np.asarray(best.points, float), np.asarray(best.faces).reshape(-1, 4)[:, 1:]


def _unique_nearest(src: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index into `src` for each query point: nearest, no index used twice (greedy by distance)."""
    from scipy.spatial import cKDTree

    k = min(len(src), 32)
    dist, idx = cKDTree(src).query(query, k=k)
    order = np.lexsort((np.repeat(np.arange(len(query)), k), dist.ravel()))
    chosen = np.full(len(query), -1)
    used = np.zeros(len(src), bool)
    rows, cols = np.divmod(order, k)
    for q, c in zip(rows, cols, strict=True):
        if chosen[q] < 0 and not used[idx[q, c]]:
            chosen[q] = idx[q, c]
            used[idx[q, c]] = True
    for q in np.flatnonzero(chosen < 0):  # all 32 neighbours taken: nearest free vertex
        free = np.flatnonzero(~used)
        pick = free[np.argmin(((src[free] - query[q]) ** 2).sum(1))]
        chosen[q], used[pick] = pick, True
    return chosen


def _ensure_parts(indices: np.ndarray, vertices: np.ndarray, part_labels: np.ndarray,
                  min_per_part: int) -> np.ndarray:
    indices = indices.copy()
    parts = np.unique(part_labels)
    for _ in range(len(parts) * min_per_part):
        counts = np.array([(part_labels[indices] == p).sum() for p in parts])
        needy = parts[counts < min_per_part]
        if len(needy) == 0:
            return indices
        p = needy[0]
        chosen = vertices[indices]
        d_all = np.linalg.norm(vertices[:, None] - chosen[None], axis=-1).min(1)
        cand = np.flatnonzero(part_labels == p)
        add = cand[np.argmax(d_all[cand])]
        # drop the point of a well-covered part that is closest to another chosen point
        rich = np.isin(part_labels[indices], parts[counts > min_per_part])
        dd = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1)
        np.fill_diagonal(dd, np.inf)
        score = np.where(rich, dd.min(1), np.inf)
        indices[np.argmin(score)] = add
    raise RuntimeError("could not give every part enough subsampled vertices")


def compute_subsample_indices(vertices: np.ndarray, faces: np.ndarray, n: int = 108,
                              part_labels: np.ndarray | None = None, min_per_part: int = 2,
                              factor: int = 4) -> np.ndarray:
    """Indices of `n` original mesh vertices chosen by a COMA-style decimation chain.

    Args:
        vertices: ``(V, 3)`` rest-pose vertices (metres), e.g. the template.
        faces: ``(F, 3)`` triangle indices.
        n: number of points to keep (108 in the paper).
        part_labels: optional ``(V,)`` body-part label per vertex; if given, every label gets at
            least `min_per_part` points.
        factor: decimation factor per level (4, as in COMA / GraphCMR).
    Returns:
        ``(n,)`` int64 indices into `vertices`, unique, in the order of the last level.
    """
    vertices = np.asarray(vertices, float)
    faces = np.asarray(faces, np.int64)
    check_shape(vertices, "vertices", ("V", 3))
    check_shape(faces, "faces", ("F", 3))
    if not 0 < n < len(vertices):
        raise ValueError(f"n must be in [1, {len(vertices)}), got {n}")
    keep = np.arange(len(vertices))  # original indices of the current level's vertices
    points, level_faces = vertices, faces
    levels = decimation_levels(len(vertices), n, factor)
    for level, count in enumerate(levels):
        dec_points, dec_faces = _decimate_to(points, level_faces, count)
        pick = _unique_nearest(points, dec_points)
        if level == len(levels) - 1 and len(pick) > count:
            # VTK overshot the last level: drop the points closest to another kept point
            from scipy.spatial import cKDTree

            d, _ = cKDTree(points[pick]).query(points[pick], k=2)
            pick = pick[np.sort(np.argsort(-d[:, 1], kind="stable")[:count])]
        keep = keep[pick]  # next level: these original vertices, decimated connectivity
        points, level_faces = vertices[keep], dec_faces
    if part_labels is not None:
        keep = _ensure_parts(keep, vertices, np.asarray(part_labels), min_per_part)
    return keep.astype(np.int64)
