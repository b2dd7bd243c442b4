"""The experiment pipeline's pure parts: specs, subsets, evaluation against known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vhakit.data.datasets import MeshDataset
from vhakit.pipeline import ExperimentSpec, evaluate_vertices, get_budget, train_subset_indices


def test_spec_key_is_stable_and_field_sensitive():
    a = ExperimentSpec(seed=1)
    assert a.key() == ExperimentSpec(seed=1).key() and len(a.key()) == 12
    assert a.key() != ExperimentSpec(seed=2).key()
    assert a.key() != ExperimentSpec(seed=1, use_code_loss=False).key()
    assert ExperimentSpec(test_splits=["a", "b"]).test_splits == ("a", "b")


def test_specs_differing_only_in_test_splits_share_one_trained_model(tmp_path, monkeypatch):
    """model_key drops test_splits, equals key() for the default splits (models cached before
    it existed keep their folders), and train_predictor loads that folder instead of training."""
    from vhakit import pipeline, train_bcp

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
    from vhakit import pipeline

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
    # The fit recovers the body from its exact 108 vertices (fitting acceptance: <= 10 mm, 5 deg).
    assert summary["mpve_mm"] < 10 and summary["mpjpe_mm"] < 10 and summary["angle_deg"] < 5
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
    from vhakit import config, pipeline

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
    from vhakit import config, pipeline

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
    from vhakit import pipeline

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
    from vhakit.pipeline import predictor_plan, training_plan

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
    from vhakit import pipeline, train_bcp
    from vhakit.data import datasets

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
    from vhakit import pipeline

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
