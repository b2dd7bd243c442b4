"""Latent-space tools: encode/decode agree with the model's forward, interpolation ends are the
decoded ends, perturbation, input position error against a loop reference, figures."""
from __future__ import annotations

import math

import pytest
import torch

from vhakit.config import vha_configs
from vhakit.heatmaps.core import expected_coordinates
from vhakit.models.latent import (
    decode,
    encode,
    heatmap_pair,
    input_position_error_mm,
    interpolate,
    perturb,
    reconstruct,
)
from vhakit.models.vha import VHA
from vhakit.viz.latent import plot_bodies, plot_reconstruction_3d


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VHA(vha_configs("tiny").model).eval()


def bodies(n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    center = (torch.rand(n, 3, generator=g) - 0.5) * 2
    return center[:, None] + (torch.rand(n, 108, 3, generator=g) - 0.5) * 1.4, center


def test_decode_of_encode_is_the_forward_pass(model):
    v, c = bodies()
    with torch.no_grad():
        out = model(v, c, return_logits=False)
    z = encode(model, v, c)
    torch.testing.assert_close(z, out.latent)
    torch.testing.assert_close(decode(model, z, c), out.vertices)
    torch.testing.assert_close(decode(model, z, c, intermediate=True), out.vertices_mid)
    torch.testing.assert_close(reconstruct(model, v, c), out.vertices)
    # a single body: no batch axis in, none out, same numbers
    torch.testing.assert_close(encode(model, v[1], c[1]), z[1])
    torch.testing.assert_close(reconstruct(model, v[1], c[1]), out.vertices[1])


def test_interpolation_ends_are_the_decoded_ends_and_the_middle_is_the_mean_code(model):
    v, c = bodies()
    path = interpolate(model, v[0], c[0], v[1], c[1], steps=5)
    rec = reconstruct(model, v, c)
    assert path.vertices.shape == (5, 108, 3) and path.latents.shape == (5, 8, 4, 4, 4)
    torch.testing.assert_close(path.vertices[0], rec[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(path.vertices[-1], rec[1], atol=1e-5, rtol=0)
    z = encode(model, v, c)
    torch.testing.assert_close(path.latents[2], 0.5 * (z[0] + z[1]))
    torch.testing.assert_close(path.centers[2], 0.5 * (c[0] + c[1]))
    torch.testing.assert_close(path.t, torch.tensor([0, 0.25, 0.5, 0.75, 1]))
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        interpolate(model, v[0], c[0], v[1], c[1], steps=1)
    with pytest.raises(ValueError, match=r"one body \(N, 3\)"):
        interpolate(model, v, c, v[1], c[1])


def test_perturb(model):
    v, c = bodies(1)
    zs, vs = perturb(model, v[0], c[0], sigma=0.0, samples=3)
    for k in range(3):
        torch.testing.assert_close(vs[k], reconstruct(model, v[0], c[0]))
    z = encode(model, v[0], c[0])
    zs, vs = perturb(model, v[0], c[0], sigma=0.5, samples=2, generator=torch.Generator().manual_seed(1))
    spread = ((zs - z) / z.std()).std().item()  # noise of sigma x the code's spread
    assert 0.35 < spread < 0.65, spread
    assert not torch.allclose(vs[0], vs[1])
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        perturb(model, v[0], c[0], sigma=-1.0)


def test_input_position_error_one_hot_against_a_loop_and_gaussian_is_smaller(model):
    v, c = bodies(2)
    side, G = model.config.side_m, model.config.grid
    ref = []  # distance to the centre of the containing voxel, written out per coordinate
    for b in range(2):
        for n in range(108):
            d2 = 0.0
            for a in range(3):
                u = (v[b, n, a] - c[b, a]).item() / side * G + G / 2
                i = min(max(math.floor(u), 0), G - 1)
                centre = c[b, a].item() - side / 2 + (i + 0.5) * side / G
                d2 += (v[b, n, a].item() - centre) ** 2
            ref.append(math.sqrt(d2))
    ref_mm = 1000 * sum(ref) / len(ref)
    assert input_position_error_mm(model, v, c) == pytest.approx(ref_mm, rel=1e-5)
    # ~0.48 voxel on average for uniformly placed vertices (125 mm voxels at 16^3)
    assert 0.38 * 125 < ref_mm < 0.58 * 125
    # trilinear: the centre of mass is the vertex; Gaussian on 3^3 voxels: pulled towards the
    # middle voxel by the truncation, yet a monotone function of the position (nothing lost)
    tri = VHA(vha_configs("tiny", input_encoding="trilinear").model)
    assert input_position_error_mm(tri, v, c) < 1e-3
    gauss = VHA(vha_configs("tiny", input_encoding="gaussian").model)
    assert input_position_error_mm(gauss, v, c) < 0.6 * ref_mm


def test_heatmap_pair_probabilities_give_the_decoded_vertex(model):
    v, c = bodies(1)
    h_in, probs = heatmap_pair(model, v, c, vertex=7)
    G = model.config.grid
    assert h_in.shape == probs.shape == (G, G, G)
    assert h_in.sum().item() == pytest.approx(1.0) and h_in.max().item() == 1.0  # one-hot
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    v_from_probs = expected_coordinates(probs[None, None], model.cuboid(c))[0, 0]
    torch.testing.assert_close(v_from_probs, reconstruct(model, v, c)[0, 7], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="vertex must be in"):
        heatmap_pair(model, v, c, vertex=108)


def test_figures_and_bad_input(model):
    v, c = bodies(3)
    fig = plot_bodies(v, titles=["a", "b", "c"], colors=torch.arange(108) % 20)
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "b"
    fig = plot_reconstruction_3d(v[0], v[0] + 0.01)
    assert "17.3 mm" in fig.axes[0].get_title()  # |(10, 10, 10) mm| = 17.3 mm
    with pytest.raises(ValueError, match=r"titles must have 3"):
        plot_bodies(v, titles=["a"])
    with pytest.raises(ValueError, match=r"vertices must have shape \(B, 108, 3\)"):
        encode(model, v[:, :100], c)
    with pytest.raises(ValueError, match=r"center must have shape \(3, 3\)"):
        encode(model, v, c[:2])
    with pytest.raises(TypeError, match="VHA"):
        encode(torch.nn.Linear(2, 2), v, c)
