"""vhakit.geometry.rotations against independent references (smplx's Rodrigues, closed forms, gradcheck)."""
from __future__ import annotations

import math

import pytest
import torch
from smplx.lbs import batch_rodrigues

from vhakit.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, skew


def test_matches_smplx_rodrigues():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(500, 3, generator=g, dtype=torch.float64) * 1.5
    # smplx adds 1e-8 to the norm, so agreement is to ~1e-7.
    assert torch.allclose(axis_angle_to_matrix(aa), batch_rodrigues(aa), atol=1e-7)


def test_closed_form_90_degrees_about_z():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(R, expected, atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 1.0, 3.0, math.pi - 1e-7, math.pi])
def test_round_trip_including_near_pi(angle):
    g = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=torch.float64), dim=-1)
    R = axis_angle_to_matrix(axis * angle)
    aa = matrix_to_axis_angle(R)
    assert torch.allclose(axis_angle_to_matrix(aa), R, atol=1e-9)
    assert torch.allclose(aa.norm(dim=-1), torch.full((64,), angle, dtype=torch.float64), atol=1e-6)


def test_orthonormal_and_batched_shapes():
    aa = torch.randn(2, 5, 3)
    R = axis_angle_to_matrix(aa)
    assert R.shape == (2, 5, 3, 3)
    eye = torch.eye(3).expand(2, 5, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, 5), atol=1e-5)


def test_skew_is_cross_product():
    v, w = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    assert torch.allclose((skew(v) @ w[..., None])[..., 0], torch.linalg.cross(v, w))


def test_gradients_finite_at_zero_and_gradcheck():
    aa = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (x,))
    y = (torch.randn(4, 3, dtype=torch.float64) * 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: matrix_to_axis_angle(axis_angle_to_matrix(a)), (y,))


def test_bad_input():
    with pytest.raises(ValueError, match=r"aa must have shape"):
        axis_angle_to_matrix(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        axis_angle_to_matrix([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"R must have shape"):
        matrix_to_axis_angle(torch.zeros(3, 4))
