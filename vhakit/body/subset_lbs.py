"""SMPL's linear blend skinning on a subset of vertices, with its exact Jacobian.

Fitting to the 108 subsampled vertices only needs those vertices: :class:`SubsetLBS` evaluates
``smplx.lbs.lbs`` restricted to a vertex subset (60x fewer vertices than the mesh; the joints still
come from the full mesh through the linear regressor) and, for Gauss-Newton / Levenberg-Marquardt,
the Jacobian of the vertices with respect to the 85 parameters ``x = [poses (72), betas (10),
transl (3)]`` in closed form:

* joint ``j``'s axis-angle ``w_j``: perturbing ``R_j -> R_j exp([Jr(w_j) dw]_x)`` (``Jr`` the
  right Jacobian of SO(3)) rotates everything that joint ``j`` carries about the posed joint
  ``p_j`` with world axis ``G_j Jr(w_j) dw`` (``G_j`` the global rotation), so
  ``dv_i/dw_j = -[c_ij]_x G_j Jr(w_j)`` with ``c_ij = sum_{k in subtree(j)} W_ik (x_ik - p_j)``
  and ``x_ik`` vertex ``i`` moved by bone ``k`` alone (plus the pose-corrective blend shapes'
  term when ``posedirs`` is non-zero);
* betas: ``dv_i/dbeta = sum_k W_ik [G_k (S_i - dJ_k) + dp_k]`` with ``S_i`` the shape directions,
  ``dJ_k`` the joint regressor's and ``dp_k`` the posed joints' (accumulated along the chain);
* translation: the identity.
"""
from __future__ import annotations

import torch

from vhakit.geometry.rotations import axis_angle_to_matrix, skew

__all__ = ["SubsetLBS", "right_jacobian_so3", "NUM_PARAMS"]

NUM_BETAS = 10
NUM_PARAMS = 85  # poses 72 + betas 10 + transl 3


def right_jacobian_so3(w: torch.Tensor) -> torch.Tensor:
    """``Jr(w) = I - (1 - cos t)/t^2 K + (t - sin t)/t^3 K^2``, ``K = [w]_x``, ``t = |w|``.

    ``exp(w + dw) ~= exp(w) exp(Jr(w) dw)``. Taylor series near ``t = 0``.
    Args: ``w (..., 3)``. Returns: ``(..., 3, 3)``.
    """
    t2 = (w * w).sum(-1)[..., None, None]
    small = t2 < 1e-6
    s2 = torch.where(small, torch.ones_like(t2), t2)
    t = s2.sqrt()
    a = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t)) / s2)
    b = torch.where(small, 1.0 / 6.0 - t2 / 120.0, (t - torch.sin(t)) / (s2 * t))
    K = skew(w)
    return torch.eye(3, dtype=w.dtype, device=w.device) - a * K + b * (K @ K)


class SubsetLBS(torch.nn.Module):
    """Linear blend skinning (as ``smplx.lbs.lbs``) of the vertices ``subset`` of a body model.

    Joints come from the full mesh: ``J(beta) = J_regressor (v_template + shapedirs beta)`` is
    linear in beta, so ``J_template (24, 3)`` and ``J_shapedirs (24, 3, 10)`` are precomputed.
    """

    def __init__(self, v_template: torch.Tensor, shapedirs: torch.Tensor, posedirs: torch.Tensor,
                 J_regressor: torch.Tensor, lbs_weights: torch.Tensor, parents, subset: torch.Tensor
                 ) -> None:
        super().__init__()
        idx = subset.long()
        V = v_template.shape[0]
        self.parents = [int(p) for p in parents]
        self.register_buffer("v_template", v_template[idx])  # (S, 3)
        self.register_buffer("shapedirs", shapedirs[idx, :, :NUM_BETAS])  # (S, 3, 10)
        pd = posedirs.reshape(-1, V, 3)[:, idx]  # (207, S, 3)
        self.register_buffer("posedirs", pd if bool(pd.any()) else None)
        self.register_buffer("J_template", J_regressor @ v_template)  # (24, 3)
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcb->jcb", J_regressor,
                                                         shapedirs[:, :, :NUM_BETAS]))
        self.register_buffer("weights", lbs_weights[idx])  # (S, 24)
        J = len(self.parents)
        desc = torch.eye(J, dtype=v_template.dtype, device=v_template.device)
        for j in reversed(range(J)):  # desc[a, k] = 1 if a is k or an ancestor of k
            if self.parents[j] >= 0:
                desc[self.parents[j]] += desc[j]
        self.register_buffer("descendants", desc.clamp(max=1.0))

    @staticmethod
    def from_body_model(body_model: torch.nn.Module, subset: torch.Tensor | None = None,
                        device=None, dtype=torch.float32) -> SubsetLBS:
        """The linear model of a ``vhakit.body.BodyModel`` (its ``lbs_arrays``) on ``subset``
        (default ``body_model.subsample_indices``: the 108 vertices)."""
        arrays = getattr(body_model, "lbs_arrays", None)
        if not isinstance(arrays, dict):
            raise TypeError("body_model must be a vhakit.body.BodyModel (with lbs_arrays), got "
                            f"{type(body_model).__name__}")
        a = {k: v.detach().to(device=device, dtype=dtype) for k, v in arrays.items()
             if k != "parents"}
        idx = body_model.subsample_indices if subset is None else subset
        return SubsetLBS(a["v_template"], a["shapedirs"], a["posedirs"], a["J_regressor"],
                         a["lbs_weights"], body_model.parents.tolist(),
                         idx.to(a["v_template"].device))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def _pose(self, betas, poses):
        B = poses.shape[0]
        v = self.v_template + torch.einsum("scb,nb->nsc", self.shapedirs, betas)  # (B, S, 3)
        Jr = self.J_template + torch.einsum("jcb,nb->njc", self.J_shapedirs, betas)  # (B, 24, 3)
        R = axis_angle_to_matrix(poses.reshape(B, -1, 3))  # (B, 24, 3, 3) local rotations
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=R.dtype, device=R.device)
            feat = (R[:, 1:] - eye).reshape(B, -1)  # (B, 207)
            v = v + torch.einsum("bp,psc->bsc", feat, self.posedirs)
        G: list[torch.Tensor] = []
        p: list[torch.Tensor] = []
        for j, q in enumerate(self.parents):  # kinematic chain: 24 batched steps
            if q < 0:
                G.append(R[:, j])
                p.append(Jr[:, j])
            else:
                G.append(G[q] @ R[:, j])
                p.append(p[q] + (G[q] @ (Jr[:, j] - Jr[:, q])[..., None])[..., 0])
        return v, Jr, R, torch.stack(G, 1), torch.stack(p, 1)  # G (B,24,3,3), p (B,24,3)

    def forward(self, betas: torch.Tensor, poses: torch.Tensor, transl: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``betas (B,10)``, ``poses (B,72)``, ``transl (B,3)`` -> vertices ``(B,S,3)``,
        joints ``(B,24,3)``, metres."""
        B = poses.shape[0]
        v, Jr, _, G, p = self._pose(betas, poses)
        tg = p - (G @ Jr[..., None])[..., 0]  # (B, 24, 3): bone k maps rest x to G_k x + tg_k
        A = torch.cat([G.reshape(B, -1, 9), tg], -1)  # (B, 24, 12)
        T = self.weights @ A  # (B, S, 12) blended transforms
        verts = (T[..., :9].reshape(B, -1, 3, 3) @ v[..., None])[..., 0] + T[..., 9:]
        return verts + transl[:, None], p + transl[:, None]

    def forward_jacobian(self, betas: torch.Tensor, poses: torch.Tensor, transl: torch.Tensor,
                         row_scale: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices ``(B, S, 3)`` and their Jacobian ``(B, S, 3, 85)`` with respect to
        ``x = [poses, betas, transl]`` (closed form, see the module docstring).

        ``row_scale (B, S)`` multiplies each vertex's three rows (e.g. ``sqrt`` of the data
        term's weights), cheaper than scaling the finished Jacobian.
        """
        B, S = poses.shape[0], self.num_vertices
        dt, dev = poses.dtype, poses.device
        v, Jr, R, G, p = self._pose(betas, poses)
        tg = p - (G @ Jr[..., None])[..., 0]
        x_k = torch.einsum("bkcd,bsd->bskc", G, v) + tg[:, None]  # (B, S, 24, 3) per bone
        Wx = self.weights[None, :, :, None] * x_k  # (B, S, 24, 3)
        verts = Wx.sum(2) + transl[:, None]
        sw = (self.weights.expand(B, S, -1) if row_scale is None
              else row_scale[..., None] * self.weights)  # (B, S, 24) scaled skinning weights
        # c_ij = sum_{k in sub(j)} W_ik x_ik - (sum_{k in sub(j)} W_ik) p_j   -> (B, S, 24, 3)
        c = torch.einsum("ak,bskc->bsac", self.descendants, Wx)
        c = c - (self.weights @ self.descendants.T)[None, :, :, None] * p[:, None]
        if row_scale is not None:
            c = row_scale[..., None, None] * c
        J = torch.empty(B, S, 3, NUM_PARAMS, dtype=dt, device=dev)
        # d v / d w_ja = m_a x c_j (= -[c_j]_x m_a) with m_a the columns of G_j Jr(w_j)
        M = (G @ right_jacobian_so3(poses.reshape(B, -1, 3)))[:, None]  # (B, 1, 24, 3, 3a)
        mx, my, mz = M[..., 0, :], M[..., 1, :], M[..., 2, :]  # (B, 1, 24, 3a)
        cx, cy, cz = c[..., 0, None], c[..., 1, None], c[..., 2, None]  # (B, S, 24, 1)
        Jw = J[..., :72].unflatten(-1, (24, 3))  # (B, S, 3, 24, 3a) view into J
        Jw[:, :, 0] = my * cz - mz * cy
        Jw[:, :, 1] = mz * cx - mx * cz
        Jw[:, :, 2] = mx * cy - my * cx
        TR = torch.einsum("bsk,bkcd->bscd", sw, G)  # (B, S, 3, 3) blended rotation (scaled)
        if self.posedirs is not None:  # pose-corrective term: d offsets / d w_j, then skinned
            jr = right_jacobian_so3(poses.reshape(B, -1, 3)[:, 1:])  # (B, 23, 3, 3)
            dR = R[:, 1:, None] @ skew(jr.transpose(-1, -2))  # (B, 23, 3a, 3, 3)
            pd = self.posedirs.reshape(23, 9, S, 3)
            doff = torch.einsum("bjaq,jqsc->bscja", dR.reshape(B, 23, 3, 9), pd)
            J[..., 3:72] += TR @ doff.reshape(B, S, 3, 69)
        # betas: sum_k W_ik [G_k (S_i - dJ_k) + dp_k], dp_k = dp_q + G_q (dJ_k - dJ_q)
        dJ = self.J_shapedirs  # (24, 3, 10)
        dp: list[torch.Tensor] = []
        for j, q in enumerate(self.parents):
            dp.append(dJ[j].expand(B, 3, NUM_BETAS) if q < 0 else dp[q] + G[:, q] @ (dJ[j] - dJ[q]))
        Mk = G @ dJ - torch.stack(dp, 1)  # (B, 24, 3, 10)
        J[..., 72:82] = TR @ self.shapedirs - torch.einsum("bsk,bkcn->bscn", sw, Mk)
        eye = torch.eye(3, dtype=dt, device=dev)
        J[..., 82:] = eye if row_scale is None else row_scale[..., None, None] * eye
        return verts, J
