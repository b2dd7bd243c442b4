"""The vertex heatmap autoencoder: shapes and parameter counts per preset (against the documented
structure), sparse == dense encoder input, soft-argmax consistency, loss (paper Eqs. 2-4),
batch consistency, every parameter learns, a tiny overfit, latent tools."""
from __future__ import annotations

import pytest
import torch

from vhakit.config import VHAConfig, vha_configs
from vhakit.heatmaps.core import Cuboid, encode_onehot, soft_argmax
from vhakit.models.vha import VHA, VHAOutput, interpolate_latents, perturb_latent, vha_loss


def res_params(ci: int, co: int, norm: str) -> int:
    """Res3D: conv3 (ci->co), conv3 (co->co), 1x1 skip when ci != co; a norm after each conv."""
    convs = [(27, ci, co), (27, co, co)] + ([(1, ci, co)] if ci != co else [])
    extra = 2 * co if norm != "none" else co  # norm affine (weight, bias) or the conv's own bias
    return sum(k * a * b + extra for k, a, b in convs)


def expected_params(cfg: VHAConfig) -> dict[str, int]:
    """Parameter count of the structure documented in vhakit/models/vha.py, written out."""
    c, n, N, s = cfg.channels, cfg.norm, cfg.n_vertices, cfg.stem_stride
    norm = lambda ch: 2 * ch if n != "none" else ch  # noqa: E731
    enc = N * cfg.stem_channels * cfg.stem_kernel ** 3 + norm(cfg.stem_channels)
    ins = [cfg.stem_channels] + [c[0]] * (cfg.front_blocks - 1)
    enc += sum(res_params(i, c[0], n) for i in ins)
    for lvl in range(1, len(c)):
        enc += res_params(c[lvl - 1], c[lvl], n) + (cfg.blocks - 1) * res_params(c[lvl], c[lvl], n)
    enc += c[-1] * cfg.latent_channels + cfg.latent_channels
    dec = res_params(cfg.latent_channels, c[-1], n)
    for lvl in range(len(c) - 1, 0, -1):
        dec += cfg.blocks * res_params(c[lvl], c[lvl], n) + 8 * c[lvl] * c[lvl - 1] + norm(c[lvl - 1])
    dec += (cfg.blocks + cfg.refine_blocks) * res_params(c[0], c[0], n)
    head_in = cfg.head_channels if s == 2 else c[0]
    head = (8 * c[0] * head_in + norm(head_in) if s == 2 else 0) + head_in * N
    dec += 2 * head
    return {"encoder": enc, "decoder": dec, "total": enc + dec}


# Pinned: a change of architecture must be deliberate (and these numbers updated in the docs).
PINNED_TOTALS = {"tiny": 348_648, "teaching": 794_064, "paper": 7_432_992}


@pytest.mark.parametrize("preset", ["tiny", "teaching", "paper"])
def test_parameter_counts_match_the_documented_structure(preset):
    cfg = vha_configs(preset).model
    with torch.device("meta"):  # no memory, no init cost (paper: 7.4 M parameters)
        model = VHA(cfg)
    counts = model.parameter_counts()
    assert counts == expected_params(cfg)
    assert counts["total"] == PINNED_TOTALS[preset]
    assert f"{counts['total']:,}" in model.summary()


@pytest.mark.parametrize("preset,latent", [("tiny", (8, 4, 4, 4)), ("teaching", (16, 8, 8, 8))])
def test_shapes_per_preset(preset, latent):
    cfg = vha_configs(preset).model
    torch.manual_seed(0)
    model = VHA(cfg)
    B, G = 2, cfg.grid
    verts = (torch.rand(B, 108, 3) - 0.5) * 1.6
    out = model(verts, torch.zeros(B, 3))
    assert isinstance(out, VHAOutput)
    assert out.latent.shape == (B, *latent) == (B, *cfg.latent_shape)
    assert out.vertices.shape == out.vertices_mid.shape == (B, 108, 3)
    assert out.logits.shape == out.logits_mid.shape == (B, 108, G, G, G)
    lean = model(verts, torch.zeros(B, 3), return_logits=False)
    assert lean.logits is None and lean.logits_mid is None
    torch.testing.assert_close(lean.vertices, out.vertices)


def test_paper_preset_is_the_papers_setting():
    cfg = vha_configs("paper")
    assert (cfg.model.grid, cfg.model.side_m, cfg.model.n_vertices) == (64, 2.0, 108)
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (1e-3, 10, 55)
    assert not cfg.task.rotate and cfg.task.jitter_m == 0  # "No augmentation" (Sec. 3.1)
    assert cfg.model.stem_stride == 1 and cfg.model.stem_kernel == 7  # V2V's full-res k7 stem
    assert cfg.model.latent_shape == (64, 4, 4, 4)


def test_vertices_are_the_soft_argmax_of_the_returned_logits():
    """Chunked heads (CPU) give the same vertices as heatmaps.soft_argmax on the full logits;
    the centre moves the cuboid, so shifting vertices and centre together shifts the output."""
    torch.manual_seed(1)
    model = VHA(vha_configs("tiny").model)
    verts = (torch.rand(5, 108, 3) - 0.5) * 1.6
    center = torch.randn(5, 3)
    out = model(verts + center[:, None], center)
    cub = Cuboid(center, 2.0, 16)
    beta = model.config.beta
    assert beta == 10.0  # the tiny preset's inverse temperature
    torch.testing.assert_close(out.vertices, soft_argmax(out.logits, cub, beta), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.vertices_mid, soft_argmax(out.logits_mid, cub, beta), atol=1e-6,
                               rtol=0)
    zero = model(verts, torch.zeros(5, 3))
    torch.testing.assert_close(out.vertices - center[:, None], zero.vertices, atol=1e-5, rtol=0)


def test_encoder_sparse_path_equals_dense_heatmap_path():
    torch.manual_seed(2)
    model = VHA(vha_configs("tiny").model)
    verts = (torch.rand(3, 108, 3) - 0.5) * 1.9
    center = torch.zeros(3, 3)
    z_sparse = model.encode(verts, center)
    z_dense = model.encoder(encode_onehot(verts, model.cuboid(center)))
    torch.testing.assert_close(z_sparse, z_dense, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        model.encoder()
    with pytest.raises(ValueError, match=r"\(B, 108, 16, 16, 16\)"):
        model.encoder(torch.zeros(1, 108, 8, 8, 8))


def test_batch_equals_items_and_every_parameter_learns():
    torch.manual_seed(3)
    model = VHA(vha_configs("tiny").model)
    verts = (torch.rand(3, 108, 3) - 0.5) * 1.6
    center = torch.zeros(3, 3)
    out = model(verts, center, return_logits=False)
    one = torch.cat([model(verts[i:i + 1], center[i:i + 1], return_logits=False).vertices
                     for i in range(3)])
    torch.testing.assert_close(out.vertices, one, atol=1e-5, rtol=0)
    vha_loss(out, verts)[0].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


def test_loss_is_eqs_2_to_4():
    """L = mean_i |V'_i - V_i^gt|_1 + mean_i |V_i - V_i^gt|_1, row-wise L1 norms in metres."""
    gt = torch.zeros(2, 3, 3)
    v_mid = torch.zeros(2, 3, 3)
    v_mid[0, 0] = torch.tensor([0.1, -0.2, 0.3])  # |.|_1 = 0.6
    v = torch.zeros(2, 3, 3)
    v[1, 2] = torch.tensor([0.0, 0.0, -0.06])
    out = VHAOutput(torch.zeros(2, 1), v_mid, v)
    loss, parts = vha_loss(out, gt)
    torch.testing.assert_close(parts["loss_mid"], torch.tensor(0.6 / 6))
    torch.testing.assert_close(parts["loss_final"], torch.tensor(0.06 / 6))
    torch.testing.assert_close(loss, torch.tensor(0.66 / 6))


def test_tiny_overfit_reduces_the_loss():
    torch.manual_seed(4)
    model = VHA(vha_configs("tiny").model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    verts = (torch.rand(4, 108, 3, generator=g) - 0.5) * 1.2
    center = torch.zeros(4, 3)
    losses = []
    for _ in range(30):
        loss, _ = vha_loss(model(verts, center, return_logits=False), verts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.97 * first, (first, last)


def test_latent_tools():
    z0, z1 = torch.zeros(4, 2, 2, 2), torch.ones(4, 2, 2, 2)
    path = interpolate_latents(z0, z1, 5)
    assert path.shape == (5, 4, 2, 2, 2)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path[2], torch.full_like(z0, 0.5))
    z = torch.randn(4, 2, 2, 2)
    torch.testing.assert_close(perturb_latent(z, 0.0), z)
    a = perturb_latent(z, 0.1, torch.Generator().manual_seed(0))
    b = perturb_latent(z, 0.1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, z)
    with pytest.raises(ValueError, match="same shape"):
        interpolate_latents(z0, torch.zeros(3), 2)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        VHAConfig(grid=20, channels=(8, 16, 32))
    with pytest.raises(ValueError, match="stem_stride"):
        VHAConfig(stem_stride=3)
    with pytest.raises(ValueError, match="norm must be one of"):
        VHAConfig(norm="layer")
    with pytest.raises(TypeError, match="VHAConfig"):
        VHA({"grid": 16})
    model = VHA(vha_configs("tiny").model)
    with pytest.raises(ValueError, match=r"\(B, 108, 3\)"):
        model(torch.zeros(2, 100, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="latent must have shape"):
        model.decode(torch.zeros(2, 16, 2, 2, 2), torch.zeros(2, 3))


@pytest.mark.parametrize("encoding", ["trilinear", "gaussian"])
def test_sparse_input_encodings_equal_their_dense_heatmaps(encoding):
    """input_heatmaps (the sparse entries scattered) against independent references, and the
    encoder's sparse path against the dense convolution of that volume."""
    from vhakit.heatmaps.core import encode_gaussian, encode_trilinear

    torch.manual_seed(0)
    model = VHA(vha_configs("tiny", input_encoding=encoding).model).double()
    g = torch.Generator().manual_seed(3)
    v = (torch.rand(2, 108, 3, generator=g, dtype=torch.float64) - 0.5) * 1.98  # faces included
    c = torch.zeros(2, 3, dtype=torch.float64)
    H = model.input_heatmaps(v, c)
    cub = model.cuboid(c)
    if encoding == "trilinear":
        torch.testing.assert_close(H, encode_trilinear(v, cub))
    else:  # the full Gaussian restricted to the 3^3 voxels around the vertex, renormalised
        full = encode_gaussian(v, cub, sigma_vox=1.0)
        mask = (H > 0).double()
        ref = full * mask
        torch.testing.assert_close(H, ref / ref.sum((2, 3, 4), keepdim=True))
        assert (mask.sum((2, 3, 4)) == 27).all()
    torch.testing.assert_close(H.sum((2, 3, 4)), torch.ones(2, 108, dtype=torch.float64))
    enc = model.encoder
    dense = enc.to_latent(enc.body(enc.stem_act(enc.stem(H))))
    torch.testing.assert_close(model.encode(v, c), dense)
