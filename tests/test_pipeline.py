"""The experiment pipeline's pure parts: specs, subsets, evaluation against known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vhakit.data.datasets import MeshDataset
from vhakit.experiments.pipeline import (
    ExperimentSpec,
    evaluate_vertices,
    get_budget,
    train_subset_indices,
)


def test_spec_key_is_stable_and_field_sensitive():
    a = ExperimentSpec(seed=1)
    assert a.key() == ExperimentSpec(seed=1).key() and len(a.key()) == 12
    assert a.key() != ExperimentSpec(seed=2).key()
    assert a.key() != ExperimentSpec(seed=1, use_code_loss=False).key()
    assert ExperimentSpec(test_splits=["a", "b"]).test_splits == ("a", "b")


def test_specs_differing_only_in_test_splits_share_one_trained_model(tmp_path, monkeypatch):
    """model_key drops test_splits, equals key() for the default splits (models cached before
    it existed keep their folders), and train_predictor loads that folder instead of training."""
    from vhakit.experiments import pipeline
    from vhakit.training import bcp as train_bcp

    table1 = ExperimentSpec(seed=1)  # Table 1's full row / the curve's 100 % point
    table2 = ExperimentSpec(seed=1, test_splits=("h36m_like", "lightstage_like", "real_mocap"))
    assert table2.key() != table1.key()
    assert table2.model_key() == table1.model_key() == table1.key()
    assert ExperimentSpec(seed=2).model_key() != table1.model_key()
    assert ExperimentSpec(seed=1, train_fraction=0.3).model_key() != table1.model_key()
    folder = tmp_path / f"vha_bcp-{table1.key()}-{pipeline.recipe_hash('teaching')}"
    folder.mkdir()
    (folder / "done.json").write_text("{}")
    monkeypatch.setattr(train_bcp, "load_bcp", lambda path, device=None: ("loaded", path))

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a model for these settings is cached")
    monkeypatch.setattr(train_bcp, "train_bcp", no_training)
    model, out = pipeline.train_predictor(table2, tmp_path, pipeline.get_budget("teaching"), False)
    assert model == ("loaded", folder) and out == folder


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "lmt"}, "method"), ({"train_fraction": 0.0}, "train_fraction"),
    ({"vha_prior": "amass"}, "vha_prior"),
    ({"use_vertex_loss": False, "use_code_loss": False}, "at least one"),
])
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExperimentSpec(**kwargs)


def test_train_subsets_are_nested_and_sized():
    big, small = train_subset_indices(1000, 0.3), train_subset_indices(1000, 0.03)
    assert len(big) == 300 and len(small) == 30
    assert set(small) <= set(big)
    assert np.array_equal(train_subset_indices(1000, 1.0), np.arange(1000))
    assert len(train_subset_indices(10, 0.01)) == 1


def test_fast_mode_swaps_the_budget(monkeypatch):
    from vhakit.experiments import pipeline

    monkeypatch.setenv("VHAKIT_FAST", "1")
    fast = get_budget("teaching")
    assert fast.min_steps <= 20 and fast.max_frames == 48
    # 48 frames at the tiny batch of 2: 0.2 epochs = 5 steps, the floor makes it 10
    assert pipeline.predictor_plan(ExperimentSpec(preset="tiny"), fast, 48)["steps"] == 10
    monkeypatch.setenv("VHAKIT_FAST", "0")
    assert get_budget("teaching").data_preset == "teaching"
    with pytest.raises(ValueError, match="preset"):
        get_budget("huge")


@pytest.fixture(scope="module")
def meshes(open_body):
    return MeshDataset.from_split("h36m_like", "test", size="tiny", body=open_body).subset(
        list(range(0, 84, 14)))


def test_evaluating_the_truth_gives_zero_error(meshes, open_body):
    summary, details = evaluate_vertices(meshes.arrays["vertices108"], meshes, open_body)
    assert summary["mpve108_mm"] == 0.0
    assert summary["num_frames"] == len(meshes)
    # The fit recovers the body from its exact 108 vertices: positions within the fitting
    # acceptance (10 mm); local angles within 8 degrees (6.2 here), not 5: collar and shoulder
    # rotations move nearly the same vertices, and the real-mocap prior does not know how the
    # data generator splits a shrug between them (the generator's own GMM did: 0.7 degrees).
    assert summary["mpve_mm"] < 10 and summary["mpjpe_mm"] < 10 and summary["angle_deg"] < 8
    assert details["vertices"].shape == (len(meshes), open_body.num_vertices, 3)


def test_a_known_offset_is_measured_exactly(meshes, open_body):
    shift = torch.tensor([0.03, -0.04, 0.0])  # 5 cm everywhere
    summary, _ = evaluate_vertices(meshes.arrays["vertices108"] + shift, meshes, open_body)
    assert summary["mpve108_mm"] == pytest.approx(50.0, abs=1e-3)
    # Pelvis-aligned metrics ignore a global translation.
    assert summary["mpjpe_mm"] < 10 and summary["mpve_mm"] < 10


def test_bad_predictions_are_refused(meshes, open_body):
    v = meshes.arrays["vertices108"].clone()
    with pytest.raises(ValueError, match="shape"):
        evaluate_vertices(v[:-1], meshes, open_body, fit=False)
    v[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        evaluate_vertices(v, meshes, open_body, fit=False)


def test_changing_a_preset_changes_the_cache_folder(monkeypatch):
    from vhakit import config
    from vhakit.experiments import pipeline

    monkeypatch.delenv("VHAKIT_FAST", raising=False)  # CI runs the suite in fast mode
    spec = ExperimentSpec(preset="tiny")
    before = pipeline.run_tag(spec)
    assert before.startswith(spec.key() + "-")
    monkeypatch.setitem(config.PRESETS["tiny"]["bcp"]["train"], "lr", 0.5)
    assert pipeline.run_tag(spec) != before
    # a change of the evaluation's fitting re-evaluates (new result folder) but keeps the models
    lr_changed = pipeline.run_tag(spec)
    monkeypatch.setattr(pipeline, "PREDICTION_NOISE_STD_M", 0.03)
    assert pipeline.run_tag(spec) != lr_changed
    assert pipeline.run_tag(spec).rsplit("-", 1)[0] == lr_changed.rsplit("-", 1)[0]
    monkeypatch.setenv("VHAKIT_FAST", "1")
    assert pipeline.run_tag(spec).startswith("fast-")


def test_vha_hash_ignores_bcp_settings(monkeypatch):
    from vhakit import config
    from vhakit.experiments import pipeline

    monkeypatch.delenv("VHAKIT_FAST", raising=False)
    whole, vha = pipeline.recipe_hash("tiny"), pipeline.recipe_hash("tiny", "vha")
    monkeypatch.setitem(config.PRESETS["tiny"]["bcp"]["train"], "lr", 0.5)
    assert pipeline.recipe_hash("tiny") != whole  # BCP runs retrain ...
    assert pipeline.recipe_hash("tiny", "vha") == vha  # ... on the same cached prior
    monkeypatch.setitem(config.PRESETS["tiny"]["vha"]["train"], "lr", 0.5)
    assert pipeline.recipe_hash("tiny", "vha") != vha
    with pytest.raises(ValueError, match="stage"):
        pipeline.recipe_hash("tiny", "bcp")


def test_vha_per_seed_gives_each_seed_its_own_prior(tmp_path):
    """On: two seeds decode through two VHAs (two cache folders); off: they share seed 0's."""
    from vhakit.experiments import pipeline

    on = [ExperimentSpec(preset="tiny", seed=s) for s in (0, 1)]
    off = [ExperimentSpec(preset="tiny", seed=s, vha_per_seed=False) for s in (0, 1)]
    assert ExperimentSpec().vha_per_seed is True
    assert [s.vha_seed for s in on] == [0, 1] and [s.vha_seed for s in off] == [0, 0]
    assert pipeline.vha_key(on[0]) != pipeline.vha_key(on[1])
    assert pipeline.vha_dir(on[0], tmp_path) != pipeline.vha_dir(on[1], tmp_path)
    assert pipeline.vha_key(off[0]) == pipeline.vha_key(off[1]) == pipeline.vha_key(on[0])
    assert pipeline.vha_dir(off[0], tmp_path) == pipeline.vha_dir(off[1], tmp_path)
    assert pipeline.vha_key(on[1]) == "tiny-pool-h36m_like-s1"
    # the curve's subsets have their own priors; the baseline has none
    assert pipeline.vha_key(ExperimentSpec(preset="tiny", train_fraction=0.03)) == \
        "tiny-pool-h36m_like-f0.03-s0"
    assert pipeline.vha_key(ExperimentSpec(method="baseline")) is None
    with pytest.raises(TypeError, match="vha_per_seed"):
        ExperimentSpec(vha_per_seed=1)


def test_training_plan_epochs_with_a_step_floor(monkeypatch):
    from vhakit.experiments.pipeline import predictor_plan, training_plan

    monkeypatch.delenv("VHAKIT_FAST", raising=False)  # CI runs the suite in fast mode
    tiny = get_budget("tiny")
    assert (tiny.epochs, tiny.min_steps) == (6.0, 300)
    full = ExperimentSpec(preset="tiny")
    small = ExperimentSpec(preset="tiny", train_fraction=0.03)
    # tiny h36m_like train: 210 frames at batch 2 -> 105 steps per epoch; 6 epochs = 630 steps.
    assert predictor_plan(full, tiny, 210) == {"frames": 210, "batch_size": 2,
                                               "steps_per_epoch": 105, "steps": 630,
                                               "epochs": 6.0, "samples": 1260}
    # 3 %: 6 frames, 3 steps per epoch; 6 epochs would be 18 steps, the floor makes it 300.
    plan = predictor_plan(small, tiny, 6)
    assert (plan["steps"], plan["epochs"], plan["samples"]) == (300, 100.0, 600)
    assert predictor_plan(ExperimentSpec(method="baseline", preset="tiny"), tiny, 210)["steps"] \
        == 630  # the baseline follows the same rule
    teaching = get_budget("teaching")  # 2100 frames at batch 3: 2 epochs = 1400 steps
    assert predictor_plan(ExperimentSpec(), teaching, 2100)["steps"] == 1400
    assert predictor_plan(ExperimentSpec(), teaching, 63)["steps"] == 600
    assert training_plan(7, 2, 1.5)["steps"] == 5  # ceil(1.5 * 3)
    assert training_plan(100, 10, 5, max_steps=20)["steps"] == 20
    with pytest.raises(ValueError, match="one batch"):
        training_plan(1, 2, 6)


class _FakeFrames:
    """Stands in for a MultiViewDataset of ``n`` frames (length and subsets only)."""

    def __init__(self, root, n=210):
        self.root, self.n = root, n

    def __len__(self):
        return self.n

    def subset(self, indices):
        return _FakeFrames(self.root, len(indices))


@pytest.mark.parametrize("fraction, steps, epochs", [(1.0, 630, 6.0), (0.03, 300, 100.0)])
def test_predictor_trains_its_plan_and_records_it(tmp_path, monkeypatch, fraction, steps, epochs):
    from vhakit.data import datasets
    from vhakit.experiments import pipeline
    from vhakit.training import bcp as train_bcp

    monkeypatch.delenv("VHAKIT_FAST", raising=False)
    monkeypatch.setattr(pipeline, "_dataset", lambda *args: tmp_path / "data")
    monkeypatch.setattr(datasets, "MultiViewDataset", _FakeFrames)
    seen = {}

    class Trained:
        model = torch.nn.Linear(1, 1)

    def fake_train(preset, train, out, **kwargs):
        seen.update(frames=len(train), **kwargs)
        return Trained()

    monkeypatch.setattr(train_bcp, "train_baseline", fake_train)
    spec = ExperimentSpec(method="baseline", preset="tiny", train_fraction=fraction)
    _, out = pipeline.train_predictor(spec, tmp_path, get_budget("tiny"), False)
    assert seen["frames"] == (210 if fraction == 1.0 else 6)
    assert seen["max_steps"] == steps
    record = pipeline.training_record(spec, tmp_path)
    plan = record["predictor"]["plan"]
    assert (plan["steps"], plan["epochs"], plan["samples"]) == (steps, epochs, 2 * steps)
    assert record["predictor"]["folder"] == out.name and record["vha"] is None


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    from vhakit.data.build import build_dataset

    root = tmp_path_factory.mktemp("sets")
    return {split: build_dataset("tiny", split, "train", root / split, images=False,
                                 max_frames=40, progress=False)
            for split in ("h36m_like", "prior_pool")}


@pytest.mark.parametrize("prior", ["pool", "train_only"])
def test_the_prior_sees_no_labelled_frame_outside_the_subset(small_sets, monkeypatch, prior):
    from vhakit.experiments import pipeline

    monkeypatch.delenv("VHAKIT_FAST", raising=False)
    monkeypatch.setattr(pipeline, "_dataset", lambda budget, split, part, progress:
                        small_sets[split])
    everything = MeshDataset.from_dir(small_sets["h36m_like"])
    spec = ExperimentSpec(preset="tiny", train_fraction=0.1, vha_prior=prior)
    keep = train_subset_indices(len(everything), 0.1)
    assert len(keep) == 4  # what BCP trains on
    sets = pipeline.vha_training_sets(spec, get_budget("tiny"), progress=False)
    assert list(sets) == (["prior_pool", "h36m_like"] if prior == "pool" else ["h36m_like"])
    held_out = np.setdiff1d(np.arange(len(everything)), keep)
    poses = torch.cat([s.arrays["poses"] for s in sets.values()])  # every frame the VHA sees
    for i in held_out:  # no held-out labelled frame, by name or by pose
        assert not (poses == everything.arrays["poses"][i]).all(dim=1).any()
    assert set(sets["h36m_like"].names) == {everything.names[i] for i in keep}
    assert not set(everything.names[i] for i in held_out) & {
        n for s in sets.values() for n in s.names}
    full = pipeline.vha_training_sets(ExperimentSpec(preset="tiny", vha_prior=prior),
                                      get_budget("tiny"), progress=False)
    assert len(full["h36m_like"]) == 40  # the 100 % point's prior sees the whole split


# ---------------------------------------------------------------- tuning on validation frames
@pytest.fixture(scope="module")
def train_meshes(open_body):
    return MeshDataset.from_split("h36m_like", "train", size="tiny", body=open_body)


@pytest.fixture(scope="module")
def train_names(train_meshes):
    return list(train_meshes.names)


def test_validation_frames_are_held_out_training_subjects(train_names):
    from vhakit.experiments.pipeline import VALIDATION_SUBJECTS, validation_indices

    val, rest = validation_indices(train_names, "h36m_like")
    assert VALIDATION_SUBJECTS["h36m_like"] == ("S8",)
    assert len(val) == 7 * 6 and len(val) + len(rest) == len(train_names)  # 7 actions x 6 frames
    assert all(train_names[i].startswith("h36m_like/S8/") for i in val)
    assert not any(train_names[i].startswith("h36m_like/S8/") for i in rest)
    with pytest.raises(ValueError, match="validation subjects"):
        validation_indices(train_names, "prior_pool")


def test_the_tuner_refuses_test_frames(meshes, train_meshes):
    """The fitting setting must never be tuned on test frames (nor on frames a predictor
    trained on): the tuner checks every frame before fitting anything."""
    from vhakit.experiments.pipeline import tune_prediction_noise

    assert all(n.split("/")[1] in ("S9", "S11") for n in meshes.names)  # h36m_like test part
    with pytest.raises(ValueError, match="test frame"):
        tune_prediction_noise(meshes.arrays["vertices108"], meshes)
    train = train_meshes.subset([0])  # S1: a subject the predictor trains on
    assert train.names[0].startswith("h36m_like/S1/")
    with pytest.raises(ValueError, match="outside the validation subjects"):
        tune_prediction_noise(train.arrays["vertices108"], train)


def test_the_tuner_fits_validation_frames_and_keeps_the_best(monkeypatch, train_meshes,
                                                             train_names):
    """Each candidate fits the validation frames once, with the noise-matched config; the
    lowest criterion wins (a stand-in evaluation with its minimum at 30 mm)."""
    from vhakit.experiments import pipeline

    val, _ = pipeline.validation_indices(train_names, "h36m_like")
    ds = train_meshes.subset(val[::7])
    seen = []

    def fake_evaluate(pred108, dataset, body=None, fit_config=None):
        seen.append((list(dataset.names), fit_config.data_scale_m))
        s = fit_config.data_scale_m / 3 ** 0.5  # noise_matched_config: data scale sqrt(3) s
        return {"mpjpe17_mm": abs(s - 0.03) * 1000, "num_frames": float(len(dataset))}, {}

    monkeypatch.setattr(pipeline, "evaluate_vertices", fake_evaluate)
    out = pipeline.tune_prediction_noise(ds.arrays["vertices108"], ds)
    assert out["noise_std_m"] == 0.03 and out["criterion"] == "mpjpe17_mm"
    assert len(seen) == len(pipeline.PREDICTION_NOISE_CANDIDATES_M)
    assert all(names == ds.names and all("/S8/" in n for n in names) for names, _ in seen)
    assert sorted(out["table"]) == sorted(pipeline.PREDICTION_NOISE_CANDIDATES_M)


def test_h36m_joints_are_reported_beside_smpl_joints(meshes, open_body):
    """mpjpe17 / pa_mpjpe17: the 17-joint regressor applied to both meshes, rooted at joint 0
    (the pelvis between the hips), recomputed here in numpy from the fitted meshes."""
    from vhakit.body.model import h36m_regressor

    shift = torch.tensor([0.0, 0.02, 0.0])
    summary, details = evaluate_vertices(meshes.arrays["vertices108"] + shift, meshes, open_body)
    assert details["joints17_source"] == "mesh-equivalent"
    W = h36m_regressor(open_body)[0].double().numpy()
    with torch.no_grad():
        true = open_body.from_poses(meshes.arrays["poses"], meshes.arrays["betas"],
                                    meshes.arrays["transl"]).vertices.double().numpy()
    fit = details["vertices"].double().numpy()
    per_frame = []
    for f in range(len(fit)):
        p, t = W @ fit[f], W @ true[f]  # (17, 3)
        per_frame.append(np.linalg.norm((p - p[0]) - (t - t[0]), axis=1).mean() * 1000)
    assert summary["mpjpe17_mm"] == pytest.approx(np.mean(per_frame), rel=1e-4)
    assert np.allclose(details["per_frame"]["mpjpe17_mm"], per_frame, rtol=1e-4)
    assert 0 < summary["pa_mpjpe17_mm"] < 10 and summary["mpjpe17_mm"] < 10
    assert summary["mpjpe_mm"] < 10  # the 24-joint column stays
