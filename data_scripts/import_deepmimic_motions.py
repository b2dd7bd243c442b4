"""Retarget the 20 human DeepMimic mocap clips shipped in the pybullet wheel to SMPL's 24 joints.

Source: ``pybullet_data/data/motions/humanoid3d_*.txt`` (15 clips) and ``.../walker/*.txt`` (5),
zlib licence (pybullet 3.2.7 ``LICENSE.txt``); DeepMimic says they are mocap clips (probably CMU,
provenance not recorded: xbpeng/DeepMimic issue #176). Output: ``vhakit/assets/deepmimic_smpl.npz``
(read with :func:`vhakit.data.motion.load_deepmimic`).

DeepMimic format (one frame = 44 floats):
``[dt, root_pos(3), root_quat(4), chest(4), neck(4), r_hip(4), r_knee(1), r_ankle(4),
r_shoulder(4), r_elbow(1), l_hip(4), l_knee(1), l_ankle(4), l_shoulder(4), l_elbow(1)]``,
quaternions ``(w, x, y, z)``, knees and elbows hinge angles (radians) about the joint's local z.
The character lives in a y-up world (metres), faces **+x** and has its right side towards **+z**
at identity; every joint frame is parallel to the root frame in the rest pose, which has the legs
straight and the **arms hanging down**. Skeleton offsets come from ``humanoid/humanoid.urdf`` at
DeepMimic's ``globalScaling=0.25`` (``pybullet_envs/deep_mimic/env/humanoid_stable_pd.py``).

Retargeting (all joint frames of both skeletons are parallel to the body frame at rest, so a local
rotation carries over by a change of basis, except where the rest poses differ):

* frame: ``M = R_y(-90 deg)`` maps DeepMimic (forward +x, up +y, right +z) to the kit
  (forward +z, up +y, left +x); a rotation ``R`` becomes ``M R M^T``, a point ``p`` becomes ``M p``.
* chest -> spine1, spine2, spine3 (a third of the rotation each: same axis, so they compose back
  exactly); neck -> neck and head (half each).
* hips, ankles: change of basis. Knee hinge ``theta <= 0`` about DeepMimic z (= kit -x) -> SMPL
  knee ``(-theta, 0, 0)``: flexion about +x. Knee and elbow hyperextension (a hinge angle of the
  wrong sign: knees only, up to 13 degrees in 40 frames of 4 clips) is clamped to 0.
* shoulders: SMPL rests in a T-pose, DeepMimic with arms down, so ``R_smpl = (M R M^T) C`` with the
  rest difference ``C = R_z(-90 deg)`` (left arm, +x -> down) or ``R_z(+90 deg)`` (right arm).
  Elbows: ``C^T (M R M^T) C``: the left elbow flexes about -y, the right about +y.
* collars, wrists, hands and toes: 0 (DeepMimic has no such joints).
* translation: SMPL's pelvis follows DeepMimic's root scaled by the ratio of leg lengths (hip to
  ankle) so that steps fit the body; then each frame is shifted vertically so that the body's
  lowest vertex is as high above y = 0 as DeepMimic's lowest collision surface (capsules, spheres
  and foot boxes of humanoid.urdf), or on the floor where DeepMimic touches or sinks into it
  (open body, betas = 0). Contacts are exact; flight phases keep their clearance.

Usage: ``python data_scripts/import_deepmimic_motions.py [--out PATH] [--check-dir /tmp]``
(needs the ``assets`` extra: pybullet). ``--check-dir`` also draws DeepMimic's own forward
kinematics (pybullet) next to the retargeted SMPL joints for a few frames.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from vhakit.data.motion import DEEPMIMIC_ASSET, MotionClip, save_clips
from vhakit.data.placement import place_on_floor
from vhakit.geometry.rotations import matrix_to_axis_angle

URDF_SCALE = 0.25  # DeepMimic loads humanoid.urdf with globalScaling=0.25
M_KIT_FROM_DM = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # R_y(-90 deg)
# DeepMimic joints in frame order: (name, number of values, parent).
DM_JOINTS = [("chest", 4, "root"), ("neck", 4, "chest"), ("right_hip", 4, "root"),
             ("right_knee", 1, "right_hip"), ("right_ankle", 4, "right_knee"),
             ("right_shoulder", 4, "chest"), ("right_elbow", 1, "right_shoulder"),
             ("left_hip", 4, "root"), ("left_knee", 1, "left_hip"),
             ("left_ankle", 4, "left_knee"), ("left_shoulder", 4, "chest"),
             ("left_elbow", 1, "left_shoulder")]
DM_LINKS = ["root"] + [n for n, _, _ in DM_JOINTS] + ["right_wrist", "left_wrist"]
DM_PARENT = {n: p for n, _, p in DM_JOINTS} | {"right_wrist": "right_elbow",
                                               "left_wrist": "left_elbow"}
# pybullet link indices of the DeepMimic humanoid (humanoid_stable_pd.py); 0 is the root link.
PB_INDEX = {"root": 0, "chest": 1, "neck": 2, "right_hip": 3, "right_knee": 4, "right_ankle": 5,
            "right_shoulder": 6, "right_elbow": 7, "right_wrist": 8, "left_hip": 9,
            "left_knee": 10, "left_ankle": 11, "left_shoulder": 12, "left_elbow": 13,
            "left_wrist": 14}
# SMPL joints that receive each DeepMimic rotation (see the module docstring).
SPINE, NECK_HEAD = (3, 6, 9), (12, 15)
HIP, KNEE, ANKLE, SHOULDER, ELBOW = ({"left": 1, "right": 2}, {"left": 4, "right": 5},
                                     {"left": 7, "right": 8}, {"left": 16, "right": 17},
                                     {"left": 18, "right": 19})


def rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


LEFT_JOINTS, RIGHT_JOINTS = (1, 4, 7, 10, 13, 16, 18, 20, 22), (2, 5, 8, 11, 14, 17, 19, 21, 23)
REST_OFFSET = {"left": rot_z(-90.0), "right": rot_z(90.0)}  # T-pose arm -> arm hanging down


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (w, x, y, z), normalised here -> ``(..., 3, 3)``."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                    -1).reshape(*q.shape[:-1], 3, 3)


def hinge_z(theta: np.ndarray) -> np.ndarray:
    c, s, o, i = np.cos(theta), np.sin(theta), np.zeros_like(theta), np.ones_like(theta)
    return np.stack([c, -s, o, s, c, o, o, o, i], -1).reshape(*theta.shape, 3, 3)


def urdf_offsets(urdf_path: Path) -> dict[str, np.ndarray]:
    """Joint origins (child link frame in the parent link frame), metres after scaling."""
    text = urdf_path.read_bytes().replace(b"\x00", b"").decode("utf-8")
    offsets = {}
    for m in re.finditer(r'<joint name="(\w+)".*?</joint>', text, re.S):
        body = m.group(0)
        origins = re.findall(r'<origin[^>]*xyz\s*=\s*"([^"]+)"', body)
        offsets[m.group(1)] = URDF_SCALE * np.array([float(v) for v in origins[-1].split()])
    return offsets


def parse_frames(frames: np.ndarray) -> dict[str, np.ndarray]:
    """``(T, 44)`` -> root position ``(T, 3)`` and local rotations ``(T, 3, 3)`` per joint."""
    out = {"dt": frames[:, 0], "root_pos": frames[:, 1:4],
           "root": quat_wxyz_to_matrix(frames[:, 4:8])}
    col = 8
    for name, n, _ in DM_JOINTS:
        vals = frames[:, col:col + n]
        out[name] = quat_wxyz_to_matrix(vals) if n == 4 else hinge_z(vals[:, 0])
        if n == 1:
            out[name + "_angle"] = vals[:, 0]
        col += n
    if col != frames.shape[1]:
        raise ValueError(f"expected 44 values per frame, got {frames.shape[1]}")
    return out


def deepmimic_fk(parsed: dict[str, np.ndarray], offsets: dict[str, np.ndarray]) -> dict:
    """World positions ``(T, 3)`` (DeepMimic frame) of every link frame, by hand."""
    glob_R, pos = {"root": parsed["root"]}, {"root": parsed["root_pos"]}
    for name in DM_LINKS[1:]:
        par = DM_PARENT[name]
        pos[name] = pos[par] + np.einsum("tij,j->ti", glob_R[par], offsets[name])
        glob_R[name] = glob_R[par] @ parsed[name] if name in parsed else glob_R[par]
    return {"pos": pos, "R": glob_R}


def retarget_poses(parsed: dict[str, np.ndarray]) -> np.ndarray:
    """Local DeepMimic rotations -> SMPL axis-angle ``(T, 72)`` (see the module docstring)."""
    T = parsed["root"].shape[0]
    M = M_KIT_FROM_DM

    def kit(R: np.ndarray) -> torch.Tensor:  # change of basis, then axis-angle
        return matrix_to_axis_angle(torch.as_tensor(M @ R @ M.T))

    poses = torch.zeros(T, 24, 3, dtype=torch.float64)
    poses[:, 0] = kit(parsed["root"])
    for j in SPINE:
        poses[:, j] = kit(parsed["chest"]) / len(SPINE)
    for j in NECK_HEAD:
        poses[:, j] = kit(parsed["neck"]) / len(NECK_HEAD)
    for side in ("left", "right"):
        C = REST_OFFSET[side]
        poses[:, HIP[side]] = kit(parsed[f"{side}_hip"])
        poses[:, ANKLE[side]] = kit(parsed[f"{side}_ankle"])
        sh = M @ parsed[f"{side}_shoulder"] @ M.T @ C
        poses[:, SHOULDER[side]] = matrix_to_axis_angle(torch.as_tensor(sh))
        # Hinges, written analytically (exact zeros off-axis); hyperextension clamped to 0.
        knee = np.clip(-parsed[f"{side}_knee_angle"], 0.0, None)
        poses[:, KNEE[side], 0] = torch.as_tensor(knee)
        elbow = np.clip(parsed[f"{side}_elbow_angle"], 0.0, None)  # C^T R_{-x}(a) C = R_{-+y}(a)
        poses[:, ELBOW[side], 1] = torch.as_tensor(-elbow if side == "left" else elbow)
    return poses.reshape(T, 72).numpy()


def leg_length_dm(offsets: dict[str, np.ndarray]) -> float:
    return float(np.linalg.norm(offsets["left_knee"]) + np.linalg.norm(offsets["left_ankle"]))


def motion_files(data_dir: Path) -> list[Path]:
    motions = data_dir / "data" / "motions"
    return sorted(motions.glob("humanoid3d_*.txt")) + sorted((motions / "walker").glob("*.txt"))


def clip_name(path: Path) -> str:
    stem = path.stem.replace("humanoid3d_", "")
    return f"walker_{stem}" if path.parent.name == "walker" else stem


def import_clip(path: Path, offsets: dict, shapes: dict, body_model, smpl_leg_m: float,
                pelvis_rest_m: np.ndarray) -> tuple[MotionClip, dict, dict]:
    frames = np.asarray(json.loads(path.read_text())["Frames"], dtype=np.float64)
    parsed = parse_frames(frames)
    dts = parsed["dt"][parsed["dt"] > 0]
    fps = float(1.0 / np.median(dts))
    scale = smpl_leg_m / leg_length_dm(offsets)
    root_kit = parsed["root_pos"] @ M_KIT_FROM_DM.T * scale
    clip = MotionClip(poses=retarget_poses(parsed), betas=np.zeros(10),
                      transl=root_kit - pelvis_rest_m, fps=fps, name=clip_name(path),
                      source="deepmimic")
    # Floor contact: each frame's lowest vertex goes to the height of DeepMimic's lowest
    # collision surface, floored at 0 (the mocap itself sinks up to 10 cm into the floor).
    clearance = np.maximum(deepmimic_lowest(deepmimic_fk(parsed, offsets), shapes), 0.0)
    clip = place_on_floor(clip, body_model, mode="frame", lift_m=clearance)
    return clip, parsed, {"scale": scale}


def urdf_collision_points(urdf_path: Path) -> dict[str, tuple[np.ndarray, float]]:
    """Per link, the collision shape as points + radius in the link frame (metres, scaled).

    sphere: its centre and radius; capsule (all along the link's y axis here, ``rpy = -pi/2 0 0``):
    the 2 end centres and radius; box: its 8 corners and radius 0. The lowest surface point of a
    posed link is ``min(points_y) - radius``.
    """
    text = urdf_path.read_bytes().replace(b"\x00", b"").decode("utf-8")
    shapes = {}
    for m in re.finditer(r'<link name="(\w+)".*?</link>', text, re.S):
        col = re.search(r"<collision>.*?</collision>", m.group(0), re.S)
        if col is None:
            continue
        c = col.group(0)
        xyz = np.array([float(v) for v in re.search(r'xyz\s*=\s*"([^"]+)"', c).group(1).split()])
        sph = re.search(r'<sphere radius\s*=\s*"([^"]+)"', c)
        cap = re.search(r'<capsule length="([^"]+)" radius="([^"]+)"', c)
        box = re.search(r'<box size="([^"]+)"', c)
        if sph:
            pts, r = xyz[None], float(sph.group(1))
        elif cap:
            half = np.array([0.0, float(cap.group(1)) / 2, 0.0])
            pts, r = np.stack([xyz - half, xyz + half]), float(cap.group(2))
        elif box:
            size = np.array([float(v) for v in box.group(1).split()])
            signs = np.array([[a, b, c] for a in (-.5, .5) for b in (-.5, .5) for c in (-.5, .5)])
            pts, r = xyz + signs * size, 0.0
        else:
            continue
        shapes[m.group(1)] = (URDF_SCALE * pts, URDF_SCALE * r)
    return shapes


def deepmimic_lowest(fk: dict, shapes: dict, links: tuple[str, ...] | None = None) -> np.ndarray:
    """``(T,)`` height of the lowest collision surface point of DeepMimic's character."""
    lows = []
    for name, (pts, r) in shapes.items():
        if links is None or name in links:
            world = fk["pos"][name][:, None] + np.einsum("tij,cj->tci", fk["R"][name], pts)
            lows.append(world[..., 1].min(1) - r)
    return np.min(lows, axis=0)


@torch.no_grad()
def contact_errors(clip: MotionClip, parsed: dict, offsets: dict, shapes: dict,
                   model) -> np.ndarray:
    """SMPL sole height (m) at DeepMimic's foot contacts (sole < 2 cm, speed < 0.3 m/s)."""
    fk = deepmimic_fk(parsed, offsets)
    t = clip.to_torch()
    verts = model.from_poses(t["poses"], t["betas"], t["transl"]).vertices  # (T, V, 3)
    errs = []
    for side, parts in (("left", (7, 10)), ("right", (8, 11))):
        h_dm = deepmimic_lowest(fk, shapes, (f"{side}_ankle",))
        vel = np.gradient(fk["pos"][f"{side}_ankle"][:, [0, 2]], axis=0) * clip.fps
        contact = (h_dm < 0.02) & (np.linalg.norm(vel, axis=1) < 0.3)
        mask = torch.isin(model.part_labels, torch.tensor(parts))
        h_smpl = verts[:, mask, 1].amin(1).double().numpy()
        errs.append(h_smpl[contact])
    return np.concatenate(errs)


def pybullet_positions(data_dir: Path, frames: np.ndarray) -> dict[str, np.ndarray]:
    """DeepMimic's own forward kinematics (pybullet, DIRECT mode): link origins ``(T, 3)``."""
    import pybullet as pb

    cid = pb.connect(pb.DIRECT)
    try:
        hum = pb.loadURDF(str(data_dir / "humanoid" / "humanoid.urdf"), [0, 0, 0],
                          globalScaling=URDF_SCALE, flags=pb.URDF_MAINTAIN_LINK_ORDER,
                          physicsClientId=cid)
        out = {n: np.zeros((len(frames), 3)) for n in DM_LINKS}
        for t, f in enumerate(frames):
            pb.resetBasePositionAndOrientation(hum, f[1:4], [*f[5:8], f[4]], physicsClientId=cid)
            col = 8
            for name, n, _ in DM_JOINTS:
                v = f[col:col + n]
                if n == 4:  # pybullet quaternions are (x, y, z, w)
                    pb.resetJointStateMultiDof(hum, PB_INDEX[name], [*v[1:], v[0]],
                                               physicsClientId=cid)
                else:
                    pb.resetJointState(hum, PB_INDEX[name], v[0], physicsClientId=cid)
                col += n
            for name in DM_LINKS:
                out[name][t] = pb.getLinkState(hum, PB_INDEX[name], computeForwardKinematics=True,
                                               physicsClientId=cid)[4]
        return out
    finally:
        pb.disconnect(cid)


@torch.no_grad()
def draw_check(out_dir: Path, clip: MotionClip, frames: np.ndarray, data_dir: Path,
               model) -> Path:
    """DeepMimic (pybullet FK, kit frame) next to the retargeted SMPL joints, 4 frames."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vhakit.body.model import SMPL_PARENTS
    ts = np.linspace(0, clip.num_frames - 1, 4).astype(int)
    dm = pybullet_positions(data_dir, frames[ts])
    t = clip.to_torch()
    J = model.from_poses(t["poses"][ts], t["betas"][ts], t["transl"][ts]).joints.numpy()
    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    for k in range(4):
        for row, (h, label) in enumerate(((2, "side: z forward"), (0, "front: x left"))):
            ax = axes[row, k]
            for name in DM_LINKS[1:]:
                a, b = (dm[DM_PARENT[name]][k] @ M_KIT_FROM_DM.T,
                        dm[name][k] @ M_KIT_FROM_DM.T)
                col = "r" if "right" in name else "b" if "left" in name else "k"
                ax.plot([a[h] - 1.0, b[h] - 1.0], [a[1], b[1]], col, lw=3, alpha=0.5)
            for j in range(1, 24):
                a, b = J[k, SMPL_PARENTS[j]], J[k, j]
                col = "r" if j in RIGHT_JOINTS else "b" if j in LEFT_JOINTS else "k"
                ax.plot([a[h] + 0.5, b[h] + 0.5], [a[1], b[1]], col, lw=1.5)
            ax.axhline(0.0, color="g", lw=0.8)
            ax.set_aspect("equal")
            ax.set_title(f"{clip.name} frame {ts[k]} ({label})", fontsize=9)
    fig.suptitle("left of each panel: DeepMimic's own FK (pybullet, shifted -1 m); right: "
                 "retargeted SMPL joints (open body, shifted +0.5 m). blue = left, red = right")
    path = out_dir / f"deepmimic_check_{clip.name}.png"
    fig.savefig(path, dpi=60)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    import pybullet_data

    from vhakit.body.model import BodyModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEEPMIMIC_ASSET)
    ap.add_argument("--check-dir", type=Path, default=None,
                    help="draw DeepMimic (pybullet FK) vs retargeted SMPL joints here")
    args = ap.parse_args(argv)

    data_dir = Path(pybullet_data.getDataPath())
    offsets = urdf_offsets(data_dir / "humanoid" / "humanoid.urdf")
    shapes = urdf_collision_points(data_dir / "humanoid" / "humanoid.urdf")
    model = BodyModel.open().eval()
    with torch.no_grad():
        rest = model.from_poses(torch.zeros(1, 72), torch.zeros(1, 10), torch.zeros(1, 3))
    J = rest.joints[0].double().numpy()
    smpl_leg_m = float(np.linalg.norm(J[4] - J[1]) + np.linalg.norm(J[7] - J[4]))
    clips = []
    for path in motion_files(data_dir):
        clip, parsed, info = import_clip(path, offsets, shapes, model, smpl_leg_m, J[0])
        clips.append(clip)
        frames = np.asarray(json.loads(path.read_text())["Frames"], dtype=np.float64)
        some = np.linspace(0, len(frames) - 1, 5).astype(int)
        ref, mine = pybullet_positions(data_dir, frames[some]), deepmimic_fk(parsed, offsets)
        fk_err = max(np.abs(ref[n] - mine["pos"][n][some]).max() for n in DM_LINKS)
        if fk_err > 1e-4:  # our reading of the format must reproduce DeepMimic's own kinematics
            raise RuntimeError(f"{path.name}: forward kinematics differ from pybullet's by "
                               f"{fk_err:.2e} m")
        err = contact_errors(clip, parsed, offsets, shapes, model)
        knee = np.degrees(clip.poses[:, [12, 15]])
        print(f"{clip.name:22s} {clip.num_frames:4d} fr {clip.fps:5.1f} fps  knee "
              f"{knee.min():5.1f}..{knee.max():5.1f} deg  FK vs pybullet {fk_err:.0e} m  "
              f"contact sole height (m): n={err.size:3d}"
              + (f" mean {np.abs(err).mean():.3f} max {np.abs(err).max():.3f}" if err.size else ""))
        if args.check_dir is not None and clip.name in ("walk", "run", "cartwheel", "punch"):
            print("  drew", draw_check(args.check_dir, clip, frames, data_dir, model))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_clips(args.out, clips)
    print(f"wrote {len(clips)} clips, {sum(c.num_frames for c in clips)} frames -> {args.out}")


if __name__ == "__main__":
    main()
