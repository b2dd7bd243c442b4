"""Named splits: registry, determinism, sizes, and disjointness where the protocol needs it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vhakit.data.joint_limits import within_limits
from vhakit.data.motion import load_deepmimic
from vhakit.data.procedural import ALL_ACTIONS
from vhakit.data.splits import SPLITS, get_split, split_frames

KEYS = {"poses", "betas", "transl", "clip", "action", "subject", "frame", "names"}


@pytest.fixture(scope="module")
def body():
    try:
        from vhakit.body.model import BodyModel
        return BodyModel.open()
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"open body model not available ({err}); build it first")


@pytest.fixture(scope="module")
def h36m(body):
    return {part: split_frames("h36m_like", part, "tiny", seed=0, body_model=body)
            for part in ("train", "test")}


def _check_arrays(d: dict, n: int) -> None:
    assert set(d) == KEYS
    assert d["poses"].shape == (n, 72) and d["betas"].shape == (n, 10)
    assert d["transl"].shape == (n, 3) and d["frame"].shape == (n,)
    assert d["poses"].dtype == np.float32 and np.isfinite(d["poses"]).all()
    assert len(set(d["names"])) == n  # one unique label per frame


def test_registry_and_errors():
    assert set(SPLITS) == {"h36m_like", "lightstage_like", "prior_pool", "real_mocap"}
    with pytest.raises(ValueError, match="h36m_like.*lightstage_like.*prior_pool.*real_mocap"):
        get_split("h36m")
    with pytest.raises(ValueError, match="part"):
        split_frames("prior_pool", part="val")
    with pytest.raises(ValueError, match="size"):
        split_frames("prior_pool", size="huge")
    with pytest.raises(ValueError, match="evaluation only"):
        split_frames("real_mocap", part="train")


def test_h36m_like_protocol(h36m, body):
    train, test = h36m["train"], h36m["test"]
    spec = get_split("h36m_like")
    _check_arrays(train, 5 * 7 * 6)
    _check_arrays(test, 2 * 7 * 6)
    assert set(train["subject"]) == {"S1", "S5", "S6", "S7", "S8"}
    assert set(test["subject"]) == {"S9", "S11"}
    assert set(train["action"]) == set(test["action"]) == set(spec.actions)
    for subj in spec.train_subjects + spec.test_subjects:  # one fixed body per subject
        part = train if subj in spec.train_subjects else test
        rows = part["betas"][part["subject"] == subj.name]
        np.testing.assert_allclose(rows, np.broadcast_to(subj.betas, rows.shape), atol=1e-6)
    assert not set(map(tuple, train["betas"])) & set(map(tuple, test["betas"]))
    assert within_limits(torch.from_numpy(train["poses"])).all()
    assert (np.diff(train["frame"][train["clip"] == train["clip"][0]]) == spec.stride).all()
    with torch.no_grad():  # frames are placed on the floor
        low = body.from_poses(torch.from_numpy(test["poses"]), torch.from_numpy(test["betas"]),
                              torch.from_numpy(test["transl"])).vertices[..., 1].amin(1)
    assert low.abs().max() < 1e-3


def test_h36m_like_is_deterministic_and_seeded(h36m, body):
    again = split_frames("h36m_like", "test", "tiny", seed=0, body_model=body)
    for k in KEYS:
        np.testing.assert_array_equal(again[k], h36m["test"][k])
    other = split_frames("h36m_like", "test", "tiny", seed=1, body_model=body)
    assert not np.array_equal(other["poses"], h36m["test"]["poses"])
    np.testing.assert_array_equal(other["betas"], h36m["test"]["betas"])  # subjects are fixed


def test_lightstage_like_other_actions_and_bodies(h36m, body):
    spec = get_split("lightstage_like")
    assert spec.frames[-1] * len(spec.actions) * len(spec.train_subjects) == 2700
    assert spec.frames[-1] * len(spec.actions) * len(spec.test_subjects) == 540
    test = split_frames("lightstage_like", "test", "tiny", seed=0, body_model=body)
    _check_arrays(test, 1 * 6 * 5)
    assert not set(test["action"]) & set(h36m["train"]["action"])
    h36m_bodies = set(map(tuple, np.concatenate([h36m["train"]["betas"], h36m["test"]["betas"]])))
    assert not set(map(tuple, test["betas"])) & h36m_bodies
    assert not {s.name for s in spec.train_subjects} & {s.name for s in spec.test_subjects}


def test_prior_pool():
    train = split_frames("prior_pool", "train", "tiny", seed=0)
    test = split_frames("prior_pool", "test", "tiny", seed=0)
    _check_arrays(train, 512)
    _check_arrays(test, 128)
    assert within_limits(torch.from_numpy(train["poses"])).all()
    assert (train["transl"] == 0).all()
    assert not set(map(tuple, train["poses"])) & set(map(tuple, test["poses"]))
    assert len(np.unique(train["betas"], axis=0)) > 256  # many bodies
    # Every procedural action, the everyday ones included, even at the tiny size.
    assert set(train["action"]) == {"sampler", *ALL_ACTIONS}
    assert set(test["action"]) == {"sampler", *ALL_ACTIONS}
    again = split_frames("prior_pool", "train", "tiny", seed=0)
    np.testing.assert_array_equal(again["poses"], train["poses"])


def test_real_mocap_is_the_deepmimic_clips_subsampled():
    clips = load_deepmimic()
    d = split_frames("real_mocap", "test", "tiny")
    _check_arrays(d, sum(len(range(0, c.num_frames, 10)) for c in clips))
    walk = next(c for c in clips if c.name == "walk")
    np.testing.assert_array_equal(d["poses"][d["action"] == "walk"], walk.poses[::10])
