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
    monkeypatch.setenv("VHAKIT_FAST", "1")
    assert get_budget("teaching").bcp_steps <= 20
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


def test_vha_hash_ignores_bcp_settings_and_shared_vha_seed(monkeypatch):
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
    assert pipeline.Budget().vha_seed(2) == 2  # a prior per seed
    assert pipeline.Budget(shared_vha_seed=0).vha_seed(2) == 0  # one prior for all seeds
    assert pipeline.get_budget("teaching").vha_seed(1) == 0
