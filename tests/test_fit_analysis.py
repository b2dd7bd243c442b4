"""Fitting experiments (vhakit.fitting.analysis) and their figures (vhakit.viz.fitting), against
closed forms, numpy references and fit_smpl itself."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vhakit.body.model import BodyModel  # noqa: E402
from vhakit.fitting.analysis import (  # noqa: E402
    FitTargets,
    add_vertex_noise,
    fit_accuracy,
    fit_stages,
    format_sweep,
    make_fit_targets,
    no_prior_config,
    noise_matched_config,
    noise_sweep,
)
from vhakit.fitting.fit import FitConfig, fit_smpl  # noqa: E402
from vhakit.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from vhakit.viz.fitting import (  # noqa: E402
    draw_error_mesh,
    draw_stages,
    draw_targets,
    plot_convergence,
    plot_noise_sweep,
)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.open()


@pytest.fixture(scope="module")
def targets(body) -> FitTargets:
    return make_fit_targets(body, 4, seed=3)


def test_noise_has_the_requested_std_and_is_reproducible():
    v = torch.zeros(200, 108, 3)
    n1 = add_vertex_noise(v, 0.02, torch.Generator().manual_seed(0))
    n2 = add_vertex_noise(v, 0.02, torch.Generator().manual_seed(0))
    assert torch.equal(n1, n2)
    assert abs(float(n1.std()) - 0.02) < 0.0005  # 64,800 samples: std error ~ 0.3 %
    assert abs(float(n1.mean())) < 0.0005
    assert torch.equal(add_vertex_noise(v + 1.0, 0.0), v + 1.0)
    with pytest.raises(ValueError, match="noise_std_m"):
        add_vertex_noise(v, -0.01)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        add_vertex_noise(torch.zeros(108, 3), 0.01)


def test_config_helpers():
    base = FitConfig()
    assert noise_matched_config(0.0, base) == base
    cfg = noise_matched_config(0.02, base)
    assert cfg.data_scale_m == pytest.approx(math.sqrt(3) * 0.02)
    assert cfg.restart_threshold_m == pytest.approx(2 * math.sqrt(3) * 0.02)
    assert cfg.pose_prior_weight == base.pose_prior_weight
    off = no_prior_config(cfg)
    assert off.pose_prior_weight == 0 and off.joint_limit_weight == 0
    assert off.data_scale_m == cfg.data_scale_m and off.shape_weight == base.shape_weight


def test_targets_are_the_body_models_output(body, targets):
    assert targets.vertices108.shape == (4, 108, 3) and targets.poses.shape == (4, 72)
    again = make_fit_targets(body, 4, seed=3)
    assert torch.equal(again.vertices, targets.vertices)
    idx = body.subsample_indices
    assert torch.allclose(targets.vertices[:, idx], targets.vertices108, atol=1e-6)
    with pytest.raises(ValueError, match="num_poses"):
        make_fit_targets(body, 0)


def test_fit_accuracy_against_numpy(targets):
    g = torch.Generator().manual_seed(1)
    v = targets.vertices + 0.01 * torch.randn(targets.vertices.shape, generator=g)
    poses = targets.poses.clone()
    poses[:, 3 * 5] += 0.3  # right knee, 0.3 rad about x, composed in axis-angle
    acc = fit_accuracy(v, poses, targets)
    ref_mpve = np.linalg.norm(v.numpy() - targets.vertices.numpy(), axis=-1).mean(-1) * 1000
    assert np.allclose(acc["mpve_mm"].numpy(), ref_mpve, rtol=1e-5)
    Ra = axis_angle_to_matrix(poses.double().view(4, 24, 3)).numpy()
    Rb = axis_angle_to_matrix(targets.poses.double().view(4, 24, 3)).numpy()
    tr = np.einsum("bkij,bkij->bk", Ra, Rb)
    ref_ang = np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1))).mean(-1)
    assert np.allclose(acc["angle_deg"].numpy(), ref_ang, atol=2e-3)
    assert acc["angle_deg"].min() > 0.5  # one joint of 24 off by up to 0.3 rad (17 deg)
    exact = fit_accuracy(targets.vertices, targets.poses, targets)
    assert float(exact["mpve_mm"].max()) == 0.0 and float(exact["angle_deg"].max()) < 0.05


def test_procrustes_stage_recovers_a_rigid_motion(body):
    """A zero-pose body, rotated and moved: the Procrustes stage alone is exact."""
    orient = torch.tensor([[0.3, -1.2, 0.4]])
    transl = torch.tensor([[0.2, -0.1, 1.5]])
    with torch.no_grad():
        out = body(global_orient=orient, transl=transl)
    stages, _ = fit_stages(out.vertices108, body, FitConfig(full_iters=2, restarts=False))
    p = stages["procrustes"]
    assert float(p.data_error_m[0]) < 1e-4
    assert torch.allclose(axis_angle_to_matrix(p.poses[:, :3]), axis_angle_to_matrix(orient),
                          atol=1e-4)
    assert torch.count_nonzero(p.poses[:, 3:]) == 0 and torch.count_nonzero(p.betas) == 0


def test_fit_stages_final_is_fit_smpl_and_errors_shrink(body, targets):
    cfg = FitConfig()
    stages, fit = fit_stages(targets.vertices108, body, cfg)
    assert list(stages) == ["procrustes", "global", "full"]
    ref = fit_smpl(targets.vertices108, body, cfg)
    assert torch.allclose(fit.vertices, ref.vertices, atol=1e-6)
    assert torch.equal(stages["full"].vertices, fit.vertices)
    e = [float(s.data_error_m.mean()) for s in stages.values()]
    assert e[0] > e[1] > e[2] and e[2] < 0.002, e
    # the global stage leaves shape at zero; only the root (and the starting pose) moved
    assert torch.count_nonzero(stages["global"].betas) == 0


def test_noise_sweep_small(body):
    rows = noise_sweep(body, (0, 20), num_poses=4, seed=1)
    assert [(r.noise_mm, r.setting) for r in rows] == [
        (0, "prior"), (0, "no prior"), (20, "prior"), (20, "no prior")]
    clean, noisy = rows[0], rows[2]
    assert clean.mpve_mm < 10 and clean.angle_deg < 5  # the acceptance bounds, clean targets
    assert noisy.mpve_mm > clean.mpve_mm
    # per-coordinate noise s moves a vertex by ~1.6 s on average: the data term sees it
    assert 1.2 * 20 < noisy.data_error_mm < 1.8 * 20
    assert noisy.angle_deg < rows[3].angle_deg  # the prior keeps the noisy joints plausible
    table = format_sweep(rows)
    assert table.count("\n") == 1 + len(rows) and "no prior" in table
    with pytest.raises(ValueError, match="settings"):
        noise_sweep(body, (0,), num_poses=1, settings=("bogus",))


def test_figures(body, targets):
    stages, fit = fit_stages(targets.vertices108[:1], body, FitConfig(full_iters=5))
    fig, axes = plt.subplots(1, 5)
    draw_stages(axes[:3], stages, body.faces, targets.vertices108[:1])
    err_mm = draw_error_mesh(axes[3], fit.vertices[0], targets.vertices[0], body.faces)
    ref = np.linalg.norm(fit.vertices[0].numpy() - targets.vertices[0].numpy(), axis=1) * 1000
    assert np.allclose(err_mm, ref, rtol=1e-6)
    pts = draw_targets(axes[4], torch.tensor([[0.1, 0.2, 0.3]]), azimuth_deg=0.0)
    assert np.allclose(pts.get_offsets(), [[0.1, 0.2]])  # front view: x right, y up
    with pytest.raises(ValueError, match="one axes per stage"):
        draw_stages(axes[:2], stages, body.faces, targets.vertices108[:1])
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_convergence(ax, fit)
    assert len(ax.lines[0].get_xdata()) == len(fit.loss_history)
    assert ax.get_yscale() == "symlog"  # the energy can end below zero (GMM log-likelihood)
    empty = fit_smpl(targets.vertices108[:1], body, FitConfig(global_iters=0, full_iters=0,
                                                              restarts=False))
    with pytest.raises(ValueError, match="loss_history"):
        plot_convergence(ax, empty)
    plt.close(fig)
    rows = noise_sweep(body, (0, 5), num_poses=1)
    fig, axes = plt.subplots(1, 2)
    plot_noise_sweep(axes, rows)
    assert len(axes[0].lines) == 2 and list(axes[1].lines[0].get_xdata()) == [0, 5]
    plt.close(fig)
