"""data_scripts/prepare_{amass,h36m,zju_mocap}.py and vhakit.data.real on tiny fixture files
written in the published layouts (tests/fixtures_real.py).

References: the fixtures' ground truth, built in each dataset's own world and conventions (z up,
mm, MoSh per-camera roots with the pi flip, EasyMocap's Rh/Th about the origin, Human3.6M's
distortion as una-dinosauria writes it), cv2.projectPoints / cv2.Rodrigues, and closed forms.
"""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import fixtures_real as fr
import numpy as np
import pytest
import torch

from vhakit.data import real
from vhakit.data.store import open_dataset, read_image
from vhakit.geometry.camera import crop_resize_matrix

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data_scripts"))
import _common  # noqa: E402
import prepare_amass  # noqa: E402
import prepare_h36m  # noqa: E402
import prepare_zju_mocap  # noqa: E402

A = fr.Y_FROM_Z


@pytest.fixture(scope="module", autouse=True)
def _cpu_only():
    """Byte-for-byte comparisons between runs need one device: the CPU (VHAKIT_DEVICE)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VHAKIT_DEVICE", "cpu")
        yield


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def fails_with(capsys, main, argv, *texts: str) -> str:
    """Run a script's main; it must exit with 1 and print every text on stderr."""
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    for text in texts:
        assert text in err, f"{text!r} not in {err!r}"
    return err


# ============================================================================ vhakit.data.real
def test_load_pickle_reads_data_and_refuses_code(tmp_path):
    d = {"cams": {"K": [np.eye(3)]}, "ims": [{"ims": ["a.jpg"]}], "x": np.float64(2.5)}
    np.save(tmp_path / "annots.npy", d, allow_pickle=True)
    out = real.load_pickle(tmp_path / "annots.npy")
    assert np.array_equal(out["cams"]["K"][0], np.eye(3)) and out["x"] == 2.5
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(os.system, protocol=2))
    with pytest.raises(ValueError, match="refusing"):
        real.load_pickle(tmp_path / "evil.pkl")


@pytest.mark.parametrize("axis", ["+x", "-x", "+y", "-y", "+z", "-z"])
def test_up_rotation_is_proper_and_maps_up_to_y(axis):
    A_, name = real.up_rotation(axis)
    v = np.zeros(3)
    v["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    assert name == axis and np.allclose(A_ @ A_.T, np.eye(3)) and np.isclose(np.linalg.det(A_), 1)
    assert np.allclose(A_ @ v, [0, 1, 0])
    rng = np.random.default_rng(0)
    dirs = v + rng.normal(0, 0.3, (50, 3))
    assert real.up_rotation("auto", dirs)[1] == axis
    if axis == "+z":
        assert np.allclose(A_, A)  # the AMASS convention of vhakit.data.motion


def test_up_rotation_auto_refuses_ambiguous_directions():
    with pytest.raises(ValueError, match="pass the up axis explicitly"):
        real.up_rotation("auto", np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 0.2, 0.2]]))


def _random_params(g: torch.Generator, n: int):
    return (torch.randn(n, 3, generator=g), torch.randn(n, 69, generator=g) * 0.2,
            torch.randn(n, 10, generator=g) * 0.5, torch.randn(n, 3, generator=g))


def test_smpl_change_frame_moves_the_vertices_rigidly(open_body):
    g = torch.Generator().manual_seed(0)
    go, bp, betas, transl = _random_params(g, 3)
    Rot = torch.as_tensor(fr.rodrigues([0.3, -1.2, 2.0]), dtype=torch.float32)
    b = torch.tensor([0.5, -1.0, 2.0])
    J0 = open_body(betas=betas).joints[:, 0]
    go2, transl2 = real.smpl_change_frame(go, transl, J0, Rot, b)
    v1 = open_body(betas=betas, body_pose=bp, global_orient=go, transl=transl).vertices
    v2 = open_body(betas=betas, body_pose=bp, global_orient=go2, transl=transl2).vertices
    assert (v1 @ Rot.T + b - v2).abs().max() < 1e-5


def test_zju_to_smpl_reproduces_easymocap_vertices(open_body):
    """EasyMocap: V = R(Rh) X(poses, shapes) + Th, X rotating by poses[:3] about J0, Rh about 0."""
    g = torch.Generator().manual_seed(1)
    go, bp, betas, Th = _random_params(g, 4)
    Rh = torch.randn(4, 3, generator=g)
    poses = torch.cat([go * 0.3, bp], 1)  # ZJU has poses[:, :3] = 0; the general case holds too
    X = open_body(betas=betas, body_pose=bp, global_orient=poses[:, :3]).vertices
    R = torch.stack([torch.as_tensor(fr.rodrigues(r), dtype=torch.float32) for r in Rh])
    V_ref = X @ R.transpose(1, 2) + Th[:, None]
    J0 = open_body(betas=betas).joints[:, 0]
    go2, bp2, transl = real.zju_to_smpl(poses, Rh, Th, J0)
    V = open_body(betas=betas, body_pose=bp2, global_orient=go2, transl=transl).vertices
    assert (V - V_ref).abs().max() < 1e-5


def test_h36m_root_to_world_undoes_the_camera_and_the_flip():
    rng = np.random.default_rng(2)
    G = fr.rodrigues(rng.normal(size=3))
    roots = []
    for _ in range(4):
        R_cam = fr.rodrigues(rng.normal(size=3))
        aa = fr.aa_of(R_cam @ G @ fr.rodrigues([math.pi, 0, 0]))  # what the MoSh file holds
        roots.append(real.h36m_root_to_world(torch.tensor(aa), torch.tensor(R_cam)))
    roots = torch.stack(roots)
    assert (roots - torch.as_tensor(G)).abs().max() < 1e-9
    noisy = roots @ torch.as_tensor(np.stack([fr.rodrigues(rng.normal(0, 0.05, 3))
                                              for _ in range(4)]))
    mean = real.mean_rotation(noisy)
    assert torch.allclose(mean @ mean.T, torch.eye(3, dtype=mean.dtype), atol=1e-9)
    assert real.geodesic_deg(mean, torch.as_tensor(G)) < 5.0
    assert real.mean_rotation(noisy[None].expand(2, 4, 3, 3)).shape == (2, 3, 3)


def test_distort_opencv_matches_cv2_and_h36m_matches_its_reference():
    rng = np.random.default_rng(3)
    xy = rng.uniform(-0.6, 0.6, (50, 2))
    d = np.array([-0.2, 0.24, -0.0016, -0.0009, -0.0029])
    ref = cv2.projectPoints(np.c_[xy, np.ones(50)], np.zeros(3), np.zeros(3), np.eye(3), d)[0]
    assert np.abs(real.distort(xy, d, "opencv") - ref.reshape(-1, 2)).max() < 1e-9
    assert np.abs(real.distort(xy, d, "h36m") - fr.h36m_distort(xy, d)).max() < 1e-12
    assert np.abs(real.distort(xy, d, "h36m") - real.distort(xy, d, "opencv")).max() > 1e-4


@pytest.mark.parametrize("model", ["opencv", "h36m"])
def test_undistort_crop_puts_points_at_their_pinhole_projection(model):
    """Dots drawn at distorted positions appear where the crop's pinhole camera projects them."""
    K = np.array([[300.0, 0, 200], [0, 300, 150], [0, 0, 1]])
    d = np.array([-0.25, 0.1, 0.01, -0.008, 0.0])
    img = np.zeros((300, 400, 3), np.uint8)
    grid = np.stack(np.meshgrid([-0.35, 0, 0.35], [-0.3, 0.3]), -1).reshape(-1, 2)
    for u, v in real.distort(grid, d, model) @ K[:2, :2].T + K[:2, 2]:
        cv2.circle(img, (round(u * 16), round(v * 16)), 40, (255, 255, 255), -1, cv2.LINE_AA,
                   shift=4)
    box = np.array([60.0, 20.0, 340.0, 300.0])  # 280 px -> 128 px: supersampled + area
    crop, K2 = real.undistort_crop(img, K, d, box, (128, 128), model)
    assert np.allclose(K2, crop_resize_matrix(torch.tensor(box), (128, 128)).numpy() @ K)
    w = crop[..., 0].astype(float)
    n, lab = cv2.connectedComponents((w > 60).astype(np.uint8))
    found = np.array([[(np.nonzero(lab == i)[1] * w[lab == i]).sum() / w[lab == i].sum(),
                       (np.nonzero(lab == i)[0] * w[lab == i]).sum() / w[lab == i].sum()]
                      for i in range(1, n)])
    want = grid @ K2[:2, :2].T + K2[:2, 2]
    err = np.linalg.norm(found[:, None] - want[None], axis=-1).min(0)
    assert len(found) == len(want) and err.max() < 0.25
    plain = grid  # ignoring the distortion would be off by pixels: the test can tell
    moved = real.distort(plain, d, model) @ K2[:2, :2].T + K2[:2, 2]
    assert np.linalg.norm(moved - want, axis=-1).max() > 1.0


def test_amass_split_by_folder_across_release_names():
    assert [real.amass_part(n) for n in ("CMU", "BioMotionLab_NTroje", "BMLrub", "MPI_Limits",
                                         "TCD_handMocap", "Eyes_Japan_Dataset")] == ["train"] * 6
    assert [real.amass_part(n) for n in ("HumanEva", "MPI_HDM05", "HDM05", "SFU", "MPI_mosh")] \
        == ["vald"] * 5
    assert [real.amass_part(n) for n in ("Transitions_mocap", "SSM_synced", "SSM")] == ["test"] * 3
    assert real.amass_part("ACCAD") is None and real.amass_part("GRAB") is None


def test_zju_param_index_of_both_image_namings():
    assert real.zju_param_index("Camera_B1/000123.jpg") == 123
    long = "Camera (1)/CoreView_313_Camera_(1)_0001_2019-08-23_16-08-50.592.jpg"
    assert real.zju_param_index(long) == 1  # sequences 313/315: 1-based parameter files
    with pytest.raises(ValueError, match="cannot read a frame number"):
        real.zju_param_index("Camera_B1/frame_a.jpg")


def test_unit_checks_name_the_problem():
    with pytest.raises(ValueError, match="looks like millimetres.*divide"):
        real.check_metres([0.5, 1200.0], "Th", 50.0, "divide by 1000")
    with pytest.raises(ValueError, match="looks like metres"):
        real.check_millimetres([3.2, 4.1, 5.0], "t", 100.0, "")
    real.check_metres([0.5, -3.0], "Th", 50.0, "")
    real.check_millimetres([3200.0, 4100.0], "t", 100.0, "")


# ============================================================================ AMASS
@pytest.fixture(scope="module")
def amass(tmp_path_factory, open_body):
    root = tmp_path_factory.mktemp("amass")
    files = fr.write_amass_tree(root / "in")
    assert prepare_amass.main([str(root / "in"), str(root / "out"), "--chunk-size", "2"]) == 0
    return root, files


def test_amass_both_formats_match_an_independent_reference(amass, open_body):
    root, files = amass
    parts = {p: open_dataset(root / "out" / p) for p in ("train", "vald", "test")}
    assert parts["train"].meta["sequences"] == ["CMU/01/01_01_poses.npz",
                                                "CMU/02/02_05_poses.npz",
                                                "KIT/3/walking_stageii.npz"]
    assert parts["vald"].meta["sequences"] == ["HumanEva/S1/box_stageii.npz"]
    assert not (root / "out" / "train" / ".partial").exists()
    J0 = open_body(betas=torch.zeros(1, 10)).joints[0, 0].double().numpy()
    for d in parts.values():
        seq, frame = d.array("sequence_index"), d.array("frame_index")
        poses, transl, betas = d.array("poses"), d.array("transl"), d.array("betas")
        src = [files[d.meta["sequences"][s]] for s in seq]
        for n, f in enumerate(frame.tolist()):
            assert f % 10 == 0  # every 10th frame
            p = src[n]["poses"][f]
            assert np.allclose(poses[n, 3:66], p[3:66], atol=1e-6)  # 21 body joints
            assert not poses[n, 66:].any()  # SMPL hands zero, never SMPL+H's finger values
            R = A @ fr.rodrigues(p[:3])
            assert np.allclose(fr.rodrigues(poses[n, :3]), R, atol=1e-5)
            assert np.allclose(transl[n], A @ (src[n]["trans"][f] + J0) - J0, atol=1e-5)
            assert not betas[n].any()  # --betas auto with the open body: zero
        # the vertices are the z-up body rotated into the y-up world
        body_z = np.stack([np.r_[q["poses"][f, :66], np.zeros(6)]
                           for q, f in zip(src, frame, strict=True)])
        trans_z = np.stack([q["trans"][f] for q, f in zip(src, frame, strict=True)])
        V, Jt = fr.body_vertices(open_body, body_z, np.zeros((len(seq), 10)), trans_z)
        idx = open_body.subsample_indices.numpy()
        assert np.abs(d.array("vertices108") - V[:, idx] @ A.T).max() < 1e-5
        assert np.abs(d.array("joints") - Jt @ A.T).max() < 1e-5
    assert len(parts["train"].array("poses")) == 3 + 4 + 3  # 25, 31, 25 frames -> stride 10


def test_amass_loads_as_mesh_dataset(amass):
    datasets = pytest.importorskip("vhakit.data.datasets", reason="vhakit/data/datasets.py absent")
    ds = datasets.MeshDataset.from_dir(amass[0] / "out" / "train")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["vertices108"].shape == (4, 108, 3) and batch["pelvis"].shape == (4, 3)
    assert torch.equal(batch["pelvis"], batch["joints"][:, 0])


def test_amass_target_fps_and_unlisted(tmp_path):
    fr.write_amass_tree(tmp_path / "in")
    assert prepare_amass.main([str(tmp_path / "in"), str(tmp_path / "out"), "--target-fps", "30",
                               "--unlisted", "train", "--parts", "train"]) == 0
    d = open_dataset(tmp_path / "out" / "train")
    assert "ACCAD/Female1/run_poses.npz" in d.meta["sequences"]
    seq, frame = d.array("sequence_index"), d.array("frame_index")
    kit = d.meta["sequences"].index("KIT/3/walking_stageii.npz")  # 100 fps -> stride 3
    assert frame[seq == kit].tolist() == list(range(0, 25, 3))
    assert not (tmp_path / "out" / "vald").exists()


@pytest.mark.parametrize("broken, text", [
    (dict(drop="trans"), "missing AMASS keys ['trans']"),
    (dict(scale_trans=1000.0), "looks like millimetres"),
    (dict(poses_width=100), "(T, 156) (SMPL+H) or (T, 165)"),
    (dict(degrees=True), "looks like degrees"),
])
def test_amass_malformed_inputs_fail_clearly(tmp_path, capsys, broken, text):
    path = tmp_path / "in" / "CMU" / "01" / "01_01_poses.npz"
    data = fr.write_amass_file(path, np.random.default_rng(0))
    if "drop" in broken:
        data.pop(broken["drop"])
    if "scale_trans" in broken:
        data["trans"] = data["trans"] * broken["scale_trans"]
    if "poses_width" in broken:
        data["poses"] = data["poses"][:, :broken["poses_width"]]
    if broken.get("degrees"):
        data["poses"] = np.rad2deg(data["poses"]) * 10
    np.savez(path, **data)
    fails_with(capsys, prepare_amass.main, [tmp_path / "in", tmp_path / "out"], text, str(path))


def test_amass_reports_a_missing_root_and_wrong_layout(tmp_path, capsys):
    fails_with(capsys, prepare_amass.main, [tmp_path / "nope", tmp_path / "out"],
               "is not a folder")
    (tmp_path / "empty").mkdir()
    fails_with(capsys, prepare_amass.main, [tmp_path / "empty", tmp_path / "out"],
               "no *_poses.npz", "AMASS root")


def test_amass_interrupted_run_resumes_to_the_same_output(tmp_path, monkeypatch, amass):
    root = amass[0]
    args = ["--chunk-size", "1"]
    monkeypatch.setenv(_common.FAIL_ENV, "2")
    with pytest.raises(_common.BuildInterrupted):
        prepare_amass.main([str(root / "in"), str(tmp_path / "a"), *args])
    assert (tmp_path / "a" / "train" / ".partial" / "chunk_00001.npz").exists()
    assert not (tmp_path / "a" / "train" / "meta.json").exists()
    monkeypatch.delenv(_common.FAIL_ENV)
    assert prepare_amass.main([str(root / "in"), str(tmp_path / "a"), *args]) == 0
    assert prepare_amass.main([str(root / "in"), str(tmp_path / "b"), *args]) == 0
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert prepare_amass.main([str(root / "in"), str(tmp_path / "a"), *args]) == 0  # complete


def test_amass_with_the_licensed_smpl_flag(tmp_path, monkeypatch, amass):
    """``--body smpl --smpl-dir``: a stand-in SMPL_NEUTRAL.pkl holding the open body's arrays
    gives the open body's vertices (betas kept: --betas auto with smpl)."""
    monkeypatch.setenv("VHAKIT_CACHE_DIR", str(tmp_path / "cache"))
    fr.write_stand_in_smpl(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    out = tmp_path / "out"
    assert prepare_amass.main([str(amass[0] / "in"), str(out), "--parts", "test", "--body",
                               "smpl", "--smpl-dir", str(tmp_path / "smpl")]) == 0
    d = open_dataset(out / "test")  # a SMPL+H file: betas kept (SMPL-X betas would be zeroed)
    assert d.meta["body_model"] == "smpl-neutral" and d.array("betas").any()
    from vhakit.body.model import BodyModel
    body = BodyModel.smpl(tmp_path / "smpl")
    ref = body.from_poses(*(torch.as_tensor(d.array(k)) for k in ("poses", "betas", "transl")))
    assert np.abs(d.array("vertices108") - ref.vertices108.numpy()).max() < 1e-6


def test_smpl_flag_without_files_says_where_to_get_smpl(tmp_path, capsys, amass):
    (tmp_path / "smpl").mkdir()
    fails_with(capsys, prepare_amass.main, [amass[0] / "in", tmp_path / "out", "--body", "smpl",
                                            "--smpl-dir", tmp_path / "smpl"],
               "No SMPL model file", "smpl.is.tue.mpg.de")


# ============================================================================ Human3.6M
H36M_ARGS = ["--betas", "keep", "--image-size", "64", "--chunk-size", "2"]


@pytest.fixture(scope="module")
def h36m(tmp_path_factory, open_body):
    root = tmp_path_factory.mktemp("h36m")
    fx = fr.write_h36m(root / "in", root / "mosh", open_body)
    assert prepare_h36m.main([str(root / "in"), str(root / "out"), "--mosh-dir",
                              str(root / "mosh"), *H36M_ARGS]) == 0
    return root, fx


def _project(K, R, t, X):
    x = X @ R.T + t
    return (x[..., :2] / x[..., 2:]) @ K[:2, :2].T + K[:2, 2]


def test_h36m_matches_the_ground_truth_and_the_images(h36m, open_body):
    root, fx = h36m
    idx = open_body.subsample_indices.numpy()
    names = {}
    for part in ("train", "test"):
        d = open_dataset(root / "out" / part, require_images=True)
        names[part] = d.meta["frame_names"]
        K, R, t, J = d.array("K"), d.array("R"), d.array("t"), d.array("joints")
        for n, name in enumerate(d.meta["frame_names"]):
            s, a, f = name.split("/")
            gt = fx["gt"][(s, a, int(f))]
            assert np.abs(d.array("vertices108")[n] - gt["vertices"][idx] @ A.T).max() < 1e-5
            assert np.abs(d.array("keypoints_h36m")[n, 6] - A @ gt["joints"][0]).max() < 1e-5
            assert np.allclose(d.array("betas")[n], gt["betas"], atol=1e-6)
            views = read_image(d.root, n, 4).astype(float).sum(-1)  # (4, 64, 64)
            for c in range(4):  # the bright dot drawn on the pelvis, distorted, in the original
                w = np.clip(views[c] - 0.6 * views[c].max(), 0, None)
                ys, xs = np.mgrid[:64, :64]
                dot = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
                assert np.linalg.norm(dot - _project(K[n, c], R[n, c], t[n, c], J[n, 0])) < 0.5
        assert not d.array("dist").any() and d.array("visibility").any()
        assert d.meta["world_up"] == "+z"
    # frame 3 has no MoSh row, frame 15 misses a view, Greeting-2 is a damaged test action
    assert names == {"train": ["S1/Directions-1/000000", "S1/Directions-1/000005",
                               "S1/Directions-1/000010"],
                     "test": ["S9/Walking-1/000000", "S9/Walking-1/000005",
                              "S9/Walking-1/000010"]}


def test_h36m_loads_as_multiview_dataset(h36m):
    datasets = pytest.importorskip("vhakit.data.datasets", reason="vhakit/data/datasets.py absent")
    ds = datasets.MultiViewDataset(h36m[0] / "out" / "train")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["images"].shape == (2, 4, 3, 64, 64) and batch["K"].shape == (2, 4, 3, 3)
    assert batch["visibility"].shape == (2, 4, 108)


def test_h36m_damaged_actions_and_thinning(tmp_path, h36m):
    root = h36m[0]
    assert prepare_h36m.main([str(root / "in"), str(tmp_path / "o"), "--mosh-dir",
                              str(root / "mosh"), "--parts", "test", "--with-damaged-actions",
                              "--test-every", "2", *H36M_ARGS]) == 0
    names = open_dataset(tmp_path / "o" / "test").meta["frame_names"]
    assert names == ["S9/Greeting-2/000000", "S9/Walking-1/000000", "S9/Walking-1/000010"]


def _broken_labels(root: Path, tmp: Path, change) -> Path:
    labels = real.load_pickle(root / "in" / "extra" / "human36m-multiview-labels-GTbboxes.npy")
    change(labels)
    (tmp / "extra").mkdir(parents=True)
    np.save(tmp / "extra" / "human36m-multiview-labels-GTbboxes.npy", labels, allow_pickle=True)
    return tmp


def _metres(labels):
    labels["cameras"]["t"] /= 1000.0


@pytest.mark.parametrize("change, text", [
    (lambda lb: lb.pop("table"), "lacks the keys ['table']"),
    (_metres, "looks like metres"),
    (lambda lb: lb.update(cameras=lb["cameras"][:, :3]), "expected (subjects, cameras)"),
])
def test_h36m_malformed_labels_fail_clearly(tmp_path, capsys, h36m, change, text):
    src = _broken_labels(h36m[0], tmp_path / "in", change)
    fails_with(capsys, prepare_h36m.main, [src, tmp_path / "out", "--mosh-dir",
                                           h36m[0] / "mosh"], text, "generate-labels-npy")


def test_h36m_without_fits_or_images_fails_clearly(tmp_path, capsys, h36m):
    root = h36m[0]
    (tmp_path / "mosh").mkdir()
    fails_with(capsys, prepare_h36m.main, [root / "in", tmp_path / "o1", "--mosh-dir",
                                           tmp_path / "mosh", "--parts", "train"],
               "has all 4 views and a MoSh fit", "_cam<i>_aligned.pkl")
    fails_with(capsys, prepare_h36m.main, [root / "in", tmp_path / "o2", "--mosh-dir",
                                           root / "mosh", "--undistorted", "--parts", "test"],
               "imageSequence-undistorted", "is missing")


# ============================================================================ ZJU-MoCap
ZJU_ARGS = ["--betas", "keep", "--image-size", "64", "--chunk-size", "1"]


@pytest.fixture(scope="module")
def zju(tmp_path_factory, open_body):
    root = tmp_path_factory.mktemp("zju")
    gt = {s: fr.write_zju_sequence(root / "in", s, open_body) for s in (377, 386)}
    assert prepare_zju_mocap.main([str(root / "in"), str(root / "out"), *ZJU_ARGS]) == 0
    return root, gt


def test_zju_round_trip_vertices_land_in_the_person_box(zju, open_body):
    root, gt = zju
    idx = open_body.subsample_indices.numpy()
    for part, seq in (("train", 377), ("test", 386)):
        d = open_dataset(root / "out" / part, require_images=True)
        assert d.meta["frame_names"] == [f"CoreView_{seq}/000000", f"CoreView_{seq}/000005"]
        assert d.meta["camera_indices"] == [0, 6, 12, 18] and d.meta["world_up"] == \
            {f"CoreView_{seq}": "+z"}
        K, R, t, boxes = d.array("K"), d.array("R"), d.array("t"), d.array("bboxes")
        for n, f in enumerate(d.array("frame_index")):
            V_gt = gt[seq]["vertices"][f]
            v108 = d.array("vertices108")[n]
            assert np.abs(v108 - V_gt[idx] @ A.T).max() < 1e-5
            for c, cam in enumerate((0, 6, 12, 18)):
                uv = _project(K[n, c], R[n, c], t[n, c], v108)  # in the stored 64 x 64 crop
                assert (uv > -0.5).all() and (uv < 63.5).all()
                back = np.linalg.inv(crop_resize_matrix(torch.tensor(boxes[n, c]),
                                                             (64, 64)).numpy())
                uv0 = uv @ back[:2, :2].T + back[:2, 2]  # original (undistorted) pixels
                x0, y0, x1, y1 = boxes[n, c]
                assert (uv0[:, 0] > x0).all() and (uv0[:, 0] < x1).all()
                assert (uv0[:, 1] > y0).all() and (uv0[:, 1] < y1).all()
                # the box is the mask's box squared and scaled by 1.2
                mx0, my0, mx1, my1 = gt[seq]["boxes"][(int(f), cam)]
                side = 1.2 * max(mx1 - mx0, my1 - my0)
                assert np.allclose([x1 - x0, (x0 + x1) / 2, (y0 + y1) / 2],
                                   [side, (mx0 + mx1) / 2, (my0 + my1) / 2], atol=1e-3)


def test_zju_loads_as_multiview_dataset(zju):
    datasets = pytest.importorskip("vhakit.data.datasets", reason="vhakit/data/datasets.py absent")
    ds = datasets.MultiViewDataset(zju[0] / "out" / "test")
    s = ds[1]
    assert s["images"].shape == (4, 3, 64, 64) and s["visibility"].shape == (4, 108)
    assert 0.2 < float(s["visibility"].mean()) < 0.9  # the far side of the body is hidden


def test_zju_converted_smpl_params_give_the_same_bodies(tmp_path, zju, open_body):
    """An already-converted params folder in SMPL's form (transfer_model's per-frame .pkl:
    rotation matrices, transl, betas) gives the same vertices as EasyMocap's Rh/Th files."""
    root = zju[0]
    src = root / "in" / "CoreView_377"
    conv = tmp_path / "smpl_377"
    conv.mkdir()
    for f in (0, 5):
        p = real.read_zju_params(src / "new_params" / f"{f}.npy")
        shapes = torch.as_tensor(p["shapes"], dtype=torch.float32)[None]
        J0 = open_body(betas=shapes).joints[:, 0].double()
        go, bp, transl = real.zju_to_smpl(*(torch.as_tensor(p[k])[None] for k in
                                            ("poses", "Rh", "Th")), J0)
        mats = lambda aa: np.stack([fr.rodrigues(r) for r in aa.reshape(-1, 3)])  # noqa: E731
        (conv / f"{f:06d}.pkl").write_bytes(pickle.dumps({
            "global_orient": mats(go.numpy())[None], "body_pose": mats(bp.numpy())[None],
            "transl": transl.numpy(), "betas": p["shapes"][None]}))
    out = tmp_path / "out"
    assert prepare_zju_mocap.main([str(root / "in"), str(out), "--test-seqs", "",
                                   "--params", str(tmp_path / "smpl_{seq}"), *ZJU_ARGS]) == 0
    a, b = open_dataset(out / "train"), open_dataset(root / "out" / "train")
    assert np.abs(a.array("vertices108") - b.array("vertices108")).max() < 1e-5


@pytest.mark.parametrize("breaks, text", [
    ("T_metres", "looks like metres"),
    ("Th_mm", "looks like millimetres"),
    ("no_cams", "lacks 'cams' or 'ims'"),
    ("few_cameras", "has 10 cameras; --cameras asks for index 18"),
])
def test_zju_malformed_inputs_fail_clearly(tmp_path, capsys, open_body, breaks, text):
    fr.write_zju_sequence(tmp_path / "in", 377, open_body, frames=1)
    seq = tmp_path / "in" / "CoreView_377"
    ann = real.load_pickle(seq / "annots.npy")
    if breaks == "T_metres":
        ann["cams"]["T"] = [T / 1000.0 for T in ann["cams"]["T"]]
    elif breaks == "no_cams":
        ann.pop("cams")
    elif breaks == "few_cameras":
        ann["cams"] = {k: v[:10] for k, v in ann["cams"].items()}
    elif breaks == "Th_mm":
        p = real.load_pickle(seq / "new_params" / "0.npy")
        p["Th"] = p["Th"] * 1000.0
        np.save(seq / "new_params" / "0.npy", p, allow_pickle=True)
    np.save(seq / "annots.npy", ann, allow_pickle=True)
    fails_with(capsys, prepare_zju_mocap.main, [tmp_path / "in", tmp_path / "out"], text)


def test_zju_interrupted_run_resumes_to_the_same_output(tmp_path, monkeypatch, capsys, zju):
    root = zju[0]
    monkeypatch.setenv(_common.FAIL_ENV, "1")
    with pytest.raises(_common.BuildInterrupted):
        prepare_zju_mocap.main([str(root / "in"), str(tmp_path / "a"), *ZJU_ARGS])
    assert (tmp_path / "a" / "train" / "images" / "000000.png").exists()
    monkeypatch.delenv(_common.FAIL_ENV)
    fails_with(capsys, prepare_zju_mocap.main, [root / "in", tmp_path / "a", *ZJU_ARGS,
                                                "--bbox-scale", "1.3"],
               "unfinished build made with other inputs or options", "--restart")
    assert prepare_zju_mocap.main([str(root / "in"), str(tmp_path / "a"), *ZJU_ARGS]) == 0
    assert tree_bytes(tmp_path / "a") == tree_bytes(root / "out")


def test_zju_parallel_workers_give_the_same_output(tmp_path, zju):
    root = zju[0]
    assert prepare_zju_mocap.main([str(root / "in"), str(tmp_path / "w"), *ZJU_ARGS,
                                   "--workers", "2", "--device", "cpu"]) == 0
    assert tree_bytes(tmp_path / "w") == tree_bytes(root / "out")


def test_script_runs_from_the_command_line(tmp_path, amass):
    res = subprocess.run([sys.executable, str(REPO / "data_scripts" / "prepare_amass.py"),
                          str(amass[0] / "in"), str(tmp_path / "out"), "--parts", "test"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "total: 3 frames in 1 parts" in res.stdout
