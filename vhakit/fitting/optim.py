"""Batched optimisers for many independent small problems ``min_x f_b(x_b)``, ``b = 1..B``.

Fitting SMPL to a batch of frames is ``B`` independent problems of 85 unknowns. Treating the
batch as one big problem (``torch.optim.LBFGS`` on ``sum_b f_b``) shares one step size and one
low-rank curvature model across frames, so every frame waits for the worst one. These solvers
keep everything per frame (damping, line-search steps, curvature pairs) while each iteration is a
single batched evaluation:

* :func:`levenberg_marquardt`: needs the gradient and a Gauss-Newton Hessian per frame.
* :func:`batched_lbfgs`: needs only ``f``; gradients by autograd.
* :func:`adam_minimize`: ``torch.optim.Adam`` (element-wise, hence already per frame).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["levenberg_marquardt", "batched_lbfgs", "adam_minimize"]

Energy = Callable[[torch.Tensor], torch.Tensor]  # (B, P) -> (B,)
# LM evaluates only the frames still running: (x (n, P), frames (n,)) -> f, g (n, P), H (n, P, P)
Linearisation = Callable[[torch.Tensor, torch.Tensor],
                         tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Candidates = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (n,C,P), frames) -> (n,C)
Callback = Callable[[torch.Tensor, torch.Tensor], None]  # (x (B, P), f (B,))


def levenberg_marquardt(lin: Linearisation, fun: Candidates, x0: torch.Tensor, iters: int,
                        on_iter: Callback | None = None, damping: float = 1e-3,
                        scales: tuple[float, ...] = (1.0, 0.5, 0.2), tol: float = 1e-6
                        ) -> torch.Tensor:
    """Levenberg-Marquardt with a damping factor per frame, a short line search, and frames
    leaving the batch as they converge.

    Step ``dx`` from ``(H + lam diag(H)) dx = -g`` (Marquardt's diagonal scaling). The
    candidates ``x + s dx`` for every ``s`` in ``scales`` are evaluated in one batched call of
    ``fun``; a frame moves to its best candidate if that lowers its energy. ``lam`` shrinks 3x
    after a full step, grows 2x after a partial one and 10x when nothing helps (the frame stays
    put). The line search costs one forward pass and saves the Jacobian evaluations that rejected
    steps would waste (the first Gauss-Newton steps from a T-pose often overshoot). A frame is
    done when its energy decreases by less than ``tol * max(1, |f|)`` or ``lam`` exceeds 1e10;
    later iterations only evaluate the frames still running.

    Args:
        lin: ``(x (n, P), frames (n,)) -> (f (n,), g (n, P), H (n, P, P))``, ``H`` ~ the Hessian
            of ``f``; ``frames`` are the indices of the rows of ``x`` in the batch.
        fun: ``(x (n, C, P), frames (n,)) -> f (n, C)``: the energy at ``C`` candidates per frame.
        x0: ``(B, P)`` start.
        iters: maximum iterations (one ``lin`` evaluation each).
        on_iter: called with ``(x (B, P), f (B,))`` after every iteration.
    Returns:
        ``(B, P)``.
    """
    x = x0.detach().clone()
    B, P = x.shape
    sc = torch.tensor(scales, dtype=x.dtype, device=x.device)  # (C,)
    run = torch.arange(B, device=x.device)  # frames still running
    f_all, g, H = lin(x, run)
    f = f_all.clone()
    lam = torch.full_like(f, damping)
    eye = torch.eye(P, dtype=x.dtype, device=x.device)
    for _ in range(iters):
        d = torch.diagonal(H, dim1=-2, dim2=-1)
        d = d.clamp_min(1e-9 * d.amax(-1, keepdim=True).clamp_min(1e-30))  # no zero pivots
        L, info = torch.linalg.cholesky_ex(H + lam[:, None, None] * torch.diag_embed(d))
        solvable = info == 0
        L = torch.where(solvable[:, None, None], L, eye)
        step = -torch.cholesky_solve(g[..., None], L)[..., 0]
        step = torch.where(solvable[:, None], step, torch.zeros_like(step))
        xr = x[run]
        f_c = fun(xr[:, None] + sc[:, None] * step[:, None], run)  # (n, C)
        f_c = torch.where(solvable[:, None] & torch.isfinite(f_c), f_c,
                          torch.full_like(f_c, torch.inf))
        best = f_c.argmin(1)
        f_best = f_c.gather(1, best[:, None])[:, 0]
        ok = f_best < f
        x[run] = torch.where(ok[:, None], xr + sc[best][:, None] * step, xr)
        f_all[run] = torch.where(ok, f_best, f)
        grow = torch.where(best == 0, torch.full_like(lam, 1.0 / 3.0), torch.full_like(lam, 2.0))
        lam = torch.where(ok, lam * grow, lam * 10.0).clamp_min(1e-12)
        done = (ok & (f - f_best < tol * f.abs().clamp_min(1.0))) | (lam > 1e10)
        if on_iter is not None:
            on_iter(x, f_all)
        if bool(done.all()):
            break
        keep = ~done
        run, lam = run[keep], lam[keep]
        f, g, H = lin(x[run], run)
    return x


def _value_and_grad(fun: Energy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = fun(x)
        (g,) = torch.autograd.grad(f.sum(), x)  # frames are independent: d(sum)/dx_b = df_b/dx_b
    return f.detach(), g


def batched_lbfgs(fun: Energy, x0: torch.Tensor, iters: int, history: int = 10,
                  on_iter: Callback | None = None, c1: float = 1e-4, max_ls: int = 10,
                  first_step: float = 0.1) -> torch.Tensor:
    """L-BFGS with per-frame curvature pairs and per-frame Armijo backtracking.

    Two-loop recursion (Nocedal & Wright, Alg. 7.4) on ``(B, m, P)`` histories; a pair is kept
    only if ``s.y > 0``. One line-search trial evaluates every frame (one forward + backward).

    Args:
        fun: ``(B, P) -> (B,)`` differentiable energies.
        x0: ``(B, P)`` start.
        iters: iterations.
        history: pairs kept per frame.
        first_step: length of the first (steepest-descent) step, in parameter units.
    Returns:
        ``(B, P)``.
    """
    x = x0.detach().clone()
    B, P = x.shape
    S = x.new_zeros(B, history, P)
    Y = x.new_zeros(B, history, P)
    rho = x.new_zeros(B, history)  # 0 marks an empty (or rejected) slot
    gamma = x.new_zeros(B)  # initial inverse-Hessian scale s.y / y.y of the latest pair
    f, g = _value_and_grad(fun, x)
    for k in range(iters):
        order = [(k - 1 - j) % history for j in range(history)]  # newest first
        q, alphas = g.clone(), []
        for i in order:
            a = rho[:, i] * (S[:, i] * q).sum(-1)
            q = q - a[:, None] * Y[:, i]
            alphas.append(a)
        h0 = torch.where(gamma > 0, gamma, first_step / g.norm(dim=-1).clamp_min(1e-12))
        r = h0[:, None] * q
        for i, a in zip(reversed(order), reversed(alphas), strict=True):
            r = r + (a - rho[:, i] * (Y[:, i] * r).sum(-1))[:, None] * S[:, i]
        d = -r
        gd = (g * d).sum(-1)
        bad = ~(gd < 0)  # not a descent direction (or NaN): steepest descent instead
        d = torch.where(bad[:, None], -h0[:, None] * g, d)
        gd = torch.where(bad, -(h0 * (g * g).sum(-1)), gd)
        t = torch.ones_like(f)
        done = torch.zeros_like(f, dtype=torch.bool)
        x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
        for _ in range(max_ls):
            ft, gt = _value_and_grad(fun, x + t[:, None] * d)
            ok = ~done & torch.isfinite(ft) & (ft <= f + c1 * t * gd)
            x_new = torch.where(ok[:, None], x + t[:, None] * d, x_new)
            f_new = torch.where(ok, ft, f_new)
            g_new = torch.where(ok[:, None], gt, g_new)
            done = done | ok
            if bool(done.all()):
                break
            t = torch.where(done, t, 0.5 * t)
        s, y = x_new - x, g_new - g
        sy, yy = (s * y).sum(-1), (y * y).sum(-1)
        keep = done & (sy > 1e-10 * yy.sqrt() * s.norm(dim=-1))  # curvature condition
        slot = k % history
        S[:, slot] = torch.where(keep[:, None], s, S[:, slot])
        Y[:, slot] = torch.where(keep[:, None], y, Y[:, slot])
        rho[:, slot] = torch.where(keep, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma = torch.where(keep, sy / yy.clamp_min(1e-30), gamma)
        x, f, g = x_new, f_new, g_new
        if on_iter is not None:
            on_iter(x, f)
    return x


def adam_minimize(fun: Energy, x0: torch.Tensor, iters: int, lr: float,
                  on_iter: Callback | None = None) -> torch.Tensor:
    """Adam on ``sum_b f_b(x_b)`` (element-wise, so frames stay independent)."""
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            f = fun(x)
            f.sum().backward()
        opt.step()
        if on_iter is not None:
            on_iter(x.detach(), f.detach())  # f is the energy before this step
    return x.detach()
