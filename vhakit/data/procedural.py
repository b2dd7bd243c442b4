"""Procedural motion: parameterised actions built from smooth joint-angle curves.

Every action is a function of time made of sinusoids and raised cosines, so clips are smooth; its
randomness (tempo, amplitude, style, side, heading, body shape) is drawn once per sequence from a
``torch.Generator``. A joint rotation is a product of elementary rotations about the body axes
(x left, y up, z forward; meanings in :mod:`vhakit.data.joint_limits`), converted to SMPL
axis-angle and clamped into the joint limits (a safety net: the curves are designed inside them).

Placement in the world needs the body (:func:`make_clip`): feet are kept planted by moving
``transl`` (the stance foot, or the mid-point of both feet, stays where it is) and every frame is
lowered until its lowest vertex touches ``y = 0`` (plus a hop for jumping actions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from vhakit._util import check_shape
from vhakit.data.joint_limits import clamp_to_limits
from vhakit.data.motion import MotionClip
from vhakit.data.placement import foot_lock_xz, lowest_vertex_height, rest_joints, skeleton_joints
from vhakit.geometry.rotations import matrix_to_axis_angle

__all__ = ["ACTIONS", "EVERYDAY_ACTIONS", "ALL_ACTIONS", "ActionParams", "sample_params",
           "action_poses", "make_clip", "sample_betas"]

L, R = {"hip": 1, "knee": 4, "ankle": 7, "foot": 10, "collar": 13, "shoulder": 16, "elbow": 18,
        "wrist": 20}, {"hip": 2, "knee": 5, "ankle": 8, "foot": 11, "collar": 14,
                       "shoulder": 17, "elbow": 19, "wrist": 21}
SPINE, NECK, HEAD = (3, 6, 9), 12, 15
_AXIS = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class ActionParams:
    """Per-sequence randomness of an action (drawn by :func:`sample_params`).

    freq_hz: tempo (cycles per second). amp: amplitude multiplier (~0.7-1.2). style: in [0, 1),
    picks a variant (e.g. lateral vs frontal arm raise). side: +1 left, -1 right (leading limb).
    phase: start phase, radians. heading: initial yaw about +y, radians. turn_rate: yaw speed of
    the ``turn`` action, radians per second.
    """

    freq_hz: float
    amp: float
    style: float
    side: int
    phase: float
    heading: float
    turn_rate: float = 0.0


class _Pose:
    """Per-frame joint rotations ``(T, 24, 3, 3)``; :meth:`rot` composes on the right (the new
    rotation acts in the joint frame produced by the earlier calls)."""

    def __init__(self, t: torch.Tensor):
        self.t = t
        self.R = torch.eye(3, dtype=t.dtype).expand(t.shape[0], 24, 3, 3).clone()

    def rot(self, joint: int, axis: str, deg: torch.Tensor | float) -> _Pose:
        a = torch.deg2rad(torch.as_tensor(deg, dtype=self.t.dtype).expand_as(self.t))  # (T,)
        c, s, o, i = a.cos(), a.sin(), torch.zeros_like(a), torch.ones_like(a)
        rows = {"x": (i, o, o, o, c, -s, o, s, c), "y": (c, o, s, o, i, o, -s, o, c),
                "z": (c, -s, o, s, c, o, o, o, i)}[axis]
        self.R[:, joint] = self.R[:, joint] @ torch.stack(rows, -1).reshape(-1, 3, 3)
        return self

    def arm(self, side: dict, lower: torch.Tensor | float, swing: torch.Tensor | float = 0.0,
            twist: torch.Tensor | float = 0.0, elbow: torch.Tensor | float = 0.0) -> _Pose:
        """Arm lowered from the T-pose by ``lower`` degrees, swung forward by ``swing`` degrees
        (about the body's x axis), twisted about its own axis, elbow flexed by ``elbow``."""
        sgn = 1.0 if side is L else -1.0
        self.rot(side["shoulder"], "x", -torch.as_tensor(swing))
        self.rot(side["shoulder"], "z", -sgn * torch.as_tensor(lower))
        self.rot(side["shoulder"], "x", torch.as_tensor(twist))
        return self.rot(side["elbow"], "y", -sgn * torch.as_tensor(elbow))

    def leg(self, side: dict, flex: torch.Tensor | float, knee: torch.Tensor | float = 0.0,
            ankle: torch.Tensor | float = 0.0, abduct: torch.Tensor | float = 0.0) -> _Pose:
        """Hip flexion (thigh forward, degrees), knee flexion, ankle plantar flexion, abduction."""
        sgn = 1.0 if side is L else -1.0
        self.rot(side["hip"], "z", sgn * torch.as_tensor(abduct))
        self.rot(side["hip"], "x", -torch.as_tensor(flex))
        self.rot(side["knee"], "x", knee)
        return self.rot(side["ankle"], "x", ankle)

    def spine(self, flex: torch.Tensor | float, twist: torch.Tensor | float = 0.0,
              bend: torch.Tensor | float = 0.0) -> _Pose:
        """Trunk flexion / left twist / right side-bend in degrees, shared by the 3 spine joints."""
        for j, w in zip(SPINE, (0.4, 0.35, 0.25), strict=True):
            self.rot(j, "x", w * torch.as_tensor(flex)).rot(j, "y", w * torch.as_tensor(twist))
            self.rot(j, "z", w * torch.as_tensor(bend))
        return self


def _bump(x: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Raised cosine ``((1 - cos x) / 2) ** power`` in [0, 1]: 0 at x = 0, 1 at x = pi."""
    return ((1.0 - torch.cos(x)) / 2.0) ** power


def _walk(P: _Pose, ph: torch.Tensor, p: ActionParams, run: bool = False) -> None:
    a = p.amp * (1.6 if run else 1.0)
    for side, off in ((L, 0.0), (R, math.pi)):
        q = ph + off
        P.leg(side, flex=8 + 22 * a * torch.sin(q),
              knee=(12 if run else 4) + (70 if run else 55) * min(a, 1.3) * _bump(q + 3.4, 2.0),
              ankle=8 * torch.sin(q - 0.6))
        P.arm(side, lower=75 - 10 * p.style, swing=(25 if run else 0) - 22 * a * torch.sin(q),
              elbow=(80 if run else 15) + 10 * a * (1 - torch.sin(q)))
    P.spine(flex=10 if run else 3, twist=-4 * p.amp * torch.sin(ph))
    P.rot(0, "y", 5 * p.amp * torch.sin(ph))


def _squat(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = p.amp * 0.8 * _bump(ph)
    P.rot(0, "x", 25 * s)
    for side in (L, R):
        P.leg(side, flex=95 * s, knee=120 * s, ankle=-25 * s, abduct=8)
        P.arm(side, lower=80 - 10 * s, swing=85 * s * (1 - p.style) + 20 * s, elbow=20 * s)
    P.spine(flex=10 * s)


def _lunge(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = p.amp * 0.9 * _bump(ph)
    front, back = (L, R) if p.side > 0 else (R, L)
    P.leg(front, flex=20 + 65 * s, knee=5 + 85 * s, ankle=-15 * s)
    P.leg(back, flex=-15 - 5 * s, knee=5 + 85 * s, ankle=20 + 20 * s)
    P.rot(back["foot"], "x", -35 * s)
    for side in (L, R):
        P.arm(side, lower=75 - 20 * p.style, elbow=20 + 40 * p.style)
    P.spine(flex=-5 * s)


def _arm_raise(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    for side, off in ((L, 0.0), (R, math.pi if p.style > 0.66 else 0.0)):
        s = p.amp * _bump(ph + off)
        if p.style < 0.33:  # lateral raise (arms up sideways)
            P.arm(side, lower=80 - 160 * s.clamp(max=1.05))
        else:  # frontal raise (arms forward, then up)
            P.arm(side, lower=80, swing=150 * s.clamp(max=1.0), elbow=10 * s)


def _wave(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    wave, rest = (L, R) if p.side > 0 else (R, L)
    P.arm(wave, lower=-20 - 25 * p.style, twist=-90, elbow=65 + 25 * p.amp * torch.sin(ph))
    P.arm(rest, lower=78, swing=5 * torch.sin(ph / 3), elbow=10)
    P.rot(NECK, "y", 10 * p.side).rot(HEAD, "y", 10 * p.side)
    P.spine(flex=0, bend=-5 * p.side)


def _jumping_jacks(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = _bump(ph)
    for side in (L, R):
        P.leg(side, flex=0, knee=10 + 15 * torch.sin(2 * ph) ** 2, abduct=3 + 22 * p.amp * s,
              ankle=10 * torch.sin(2 * ph) ** 2)
        P.arm(side, lower=80 - 160 * min(p.amp, 1.0) * s, elbow=10 * s)


def _boxing(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    punch = {id(L): torch.clamp(torch.sin(ph), min=0) ** 3,
             id(R): torch.clamp(torch.sin(ph + math.pi), min=0) ** 3}
    for side in (L, R):
        q = punch[id(side)] * p.amp
        P.arm(side, lower=70 - 45 * q, swing=45 + 40 * q, elbow=120 - 110 * min(p.amp, 1.0) *
              punch[id(side)])
        P.leg(side, flex=15, knee=25, ankle=-8, abduct=8)
    P.spine(flex=10, twist=15 * p.amp * (punch[id(R)] - punch[id(L)]))
    P.rot(0, "y", 8 * p.side)


def _bend_pick_up(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = _bump(ph) * min(p.amp, 1.1)
    P.rot(0, "x", 55 * s)
    for side in (L, R):
        P.leg(side, flex=(60 + 40 * p.style) * s, knee=(10 + 70 * p.style) * s,
              ankle=-(10 + 20 * p.style) * s, abduct=5)
        P.arm(side, lower=78 - 10 * s, swing=95 * s, elbow=15 * s)
    P.spine(flex=45 * s)
    P.rot(NECK, "x", -20 * s)


def _turn(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    P.rot(0, "y", torch.rad2deg(p.turn_rate * P.t))
    for side, off in ((L, 0.0), (R, math.pi)):
        q = ph + off
        P.leg(side, flex=5 + 8 * p.amp * torch.sin(q), knee=5 + 30 * p.amp * _bump(q + 3.4, 2.0))
        P.arm(side, lower=75, swing=-8 * torch.sin(q), elbow=15)
    P.rot(NECK, "y", 15 * math.copysign(1.0, p.turn_rate))


def _kneel(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = _bump(ph) * min(p.amp, 1.05)
    front, back = (L, R) if p.side > 0 else (R, L)
    P.leg(front, flex=90 * s, knee=95 * s, ankle=-15 * s)
    P.leg(back, flex=-5 * s, knee=100 * s, ankle=35 * s)
    P.rot(back["foot"], "x", -40 * s)
    for side in (L, R):
        P.arm(side, lower=78 - 8 * s, swing=20 * s, elbow=30 * s)
    P.spine(flex=10 * s)


def _idle(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    sway = torch.sin(ph)
    P.rot(0, "z", 3 * p.amp * sway)
    for side, sgn in ((L, 1.0), (R, -1.0)):
        P.leg(side, flex=2, knee=3 + 4 * (1 + sgn * sway), abduct=4 - 3 * sgn * p.amp * sway)
        P.arm(side, lower=76 - 6 * p.style, swing=4 * torch.sin(ph * 0.7), elbow=10 + 15 * p.style)
    P.spine(flex=2, bend=-3 * p.amp * sway, twist=6 * torch.sin(0.5 * ph))
    P.rot(NECK, "y", 20 * p.amp * torch.sin(0.3 * ph + p.phase))


def _kick(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    s = _bump(ph, 2.0) * min(p.amp, 1.15)
    kick, stand = (L, R) if p.side > 0 else (R, L)
    P.leg(kick, flex=85 * s, knee=100 * torch.sin(math.pi * s / 1.15), ankle=30 * s)
    P.leg(stand, flex=5 * s, knee=15 * s)
    for side in (L, R):
        P.arm(side, lower=60, swing=40 + 15 * s, elbow=100)
    P.spine(flex=-10 * s)


def _sit(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    """Seated on an invisible chair: thighs level, shins near vertical, feet flat, trunk rocking
    and one hand gesturing; ``style`` sets how far the feet are tucked and the knees apart."""
    lean = 4 + 6 * p.style + 6 * p.amp * _bump(ph)  # pelvis tilted forward, degrees
    knee = 82 + 20 * p.style + 6 * torch.sin(ph + 1.0)
    for side in (L, R):
        P.leg(side, flex=88 + lean, knee=knee, ankle=88 - knee, abduct=4 + 10 * p.style)
    P.rot(0, "x", lean)
    gesture, rest = (L, R) if p.side > 0 else (R, L)
    P.arm(rest, lower=80, swing=40, elbow=45)  # hand resting on the thigh
    P.arm(gesture, lower=78, swing=35 + 25 * p.amp * _bump(ph + 0.8), elbow=55 + 30 * torch.sin(ph))
    P.spine(flex=6 * torch.sin(ph), twist=8 * torch.sin(0.5 * ph))
    P.rot(NECK, "y", 15 * p.amp * torch.sin(0.4 * ph + p.phase))


def _crouch(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    """Deep crouch on the balls of the feet (heels near the pelvis), weight shifting, hands
    towards the floor in front; the depth breathes between 85 % and 100 %."""
    d = 0.85 + 0.15 * _bump(ph)
    P.rot(0, "x", 35 * d).rot(0, "z", 4 * p.amp * torch.sin(0.5 * ph))
    for side in (L, R):
        P.leg(side, flex=118 * d, knee=150 * d, ankle=-40 * d, abduct=10 + 12 * p.style)
        P.rot(side["foot"], "x", -25 * d)  # toes flat on the floor, heels raised
        P.arm(side, lower=80 - 10 * p.style, swing=45 + 25 * p.amp * d, elbow=30 + 30 * p.style)
    P.spine(flex=15 * d, twist=6 * torch.sin(0.5 * ph))
    P.rot(NECK, "x", -15 * d)


def _reach(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    """Reach up to a shelf (``style`` < 0.5, on tiptoe, one arm or both) or forward across a
    table (trunk leaning, leading arm out); the reach extends and eases off between 70 % and
    100 % of its range."""
    r = 0.7 + 0.3 * _bump(ph) * min(p.amp, 1.0)
    lead, other = (L, R) if p.side > 0 else (R, L)
    if p.style < 0.5:  # up
        P.arm(lead, lower=80, swing=150 * r, elbow=10)
        if p.style < 0.2:
            P.arm(other, lower=80, swing=140 * r, elbow=15)
        else:
            P.arm(other, lower=78, swing=10, elbow=20)
        for side in (L, R):
            P.leg(side, flex=2, knee=3, ankle=25 * r)
            P.rot(side["foot"], "x", -25 * r)  # on tiptoe: toes flat, heels up
        P.spine(flex=-8 * r, bend=-6 * p.side * r)
        P.rot(NECK, "x", -20 * r)
    else:  # forward
        P.rot(0, "x", 20 * r)
        for side in (L, R):
            P.leg(side, flex=20 * r + (10 * r if side is lead else 0),
                  knee=(15 if side is lead else 5) * r, ankle=-5 * r)
        P.arm(lead, lower=80, swing=95 + 20 * r, elbow=10)
        P.arm(other, lower=75, swing=30, elbow=30)
        P.spine(flex=25 * r, twist=-12 * p.side * r)
        P.rot(NECK, "x", -25 * r)


def _lie(P: _Pose, ph: torch.Tensor, p: ActionParams) -> None:
    """Lying on the floor: supine (``style`` < 0.4), on one side (< 0.7) or prone, with slow
    limb movements (a knee drawn up, a small roll of the body)."""
    b = _bump(ph) * min(p.amp, 1.1)
    roll = 8 * torch.sin(0.5 * ph)
    up, down = (L, R) if p.side > 0 else (R, L)
    if p.style < 0.4:  # supine: head-to-feet axis horizontal, facing up
        P.rot(0, "x", -90).rot(0, "y", roll)
        P.leg(up, flex=45 * b, knee=90 * b, ankle=-10 * b)
        P.leg(down, flex=3, knee=5, ankle=20)
        P.arm(up, lower=60 + 20 * p.amp, swing=10 * b, elbow=20)
        P.arm(down, lower=80, swing=15, elbow=60 * b)
        P.rot(NECK, "x", 15)
    elif p.style < 0.7:  # on the ``down`` side, knees drawn in
        P.rot(0, "z", 90 * (1 if down is L else -1)).rot(0, "y", roll)
        for side in (L, R):
            P.leg(side, flex=35 + 20 * b, knee=50 + 30 * b, ankle=10)
            P.arm(side, lower=80, swing=60 + 20 * b, elbow=50)
        P.spine(flex=10 + 5 * b)
        P.rot(NECK, "z", 20 * (1 if down is L else -1))
    else:  # prone, forearms under the head, one lower leg swinging
        P.rot(0, "x", 90).rot(0, "y", roll)
        P.leg(up, flex=0, knee=70 * b, ankle=30)
        P.leg(down, flex=0, knee=5, ankle=35)
        for side in (L, R):
            P.arm(side, lower=-10, swing=60, elbow=110)
        P.rot(NECK, "y", 30 * p.side).rot(HEAD, "x", -10)


_ACTION_FNS: dict[str, tuple[Callable, tuple[float, float], str]] = {
    # name: (builder, tempo range Hz, foot lock: "stance" | "both" | "side")
    "walk": (_walk, (0.75, 1.05), "stance"),
    "run": (lambda P, ph, p: _walk(P, ph, p, run=True), (1.25, 1.55), "stance"),
    "squat": (_squat, (0.2, 0.4), "both"),
    "lunge": (_lunge, (0.2, 0.35), "both"),
    "arm_raise": (_arm_raise, (0.2, 0.45), "both"),
    "wave": (_wave, (1.2, 2.2), "both"),
    "jumping_jacks": (_jumping_jacks, (0.8, 1.2), "both"),
    "boxing": (_boxing, (0.7, 1.4), "both"),
    "bend_pick_up": (_bend_pick_up, (0.15, 0.3), "both"),
    "turn": (_turn, (0.8, 1.1), "stance"),
    "kneel": (_kneel, (0.1, 0.2), "side"),
    "idle": (_idle, (0.1, 0.3), "both"),
    "kick": (_kick, (0.4, 0.7), "side"),
    "sit": (_sit, (0.1, 0.25), "both"),
    "crouch": (_crouch, (0.1, 0.25), "both"),
    "reach": (_reach, (0.15, 0.35), "both"),
    "lie": (_lie, (0.05, 0.15), "both"),
}
#: The everyday poses away from standing (seated, crouched, reaching, lying on the floor): part of
#: the autoencoder's pose pool, kept out of the benchmark splits and of
#: :func:`vhakit.data.pose_sampler.sample_poses`' mixture.
EVERYDAY_ACTIONS: tuple[str, ...] = ("sit", "crouch", "reach", "lie")
#: Names of the standing procedural actions (the benchmark splits draw from these), fixed order.
ACTIONS: tuple[str, ...] = tuple(a for a in _ACTION_FNS if a not in EVERYDAY_ACTIONS)
#: Every procedural action: :data:`ACTIONS` then :data:`EVERYDAY_ACTIONS`.
ALL_ACTIONS: tuple[str, ...] = ACTIONS + EVERYDAY_ACTIONS
HOP_M = {"jumping_jacks": 0.07, "run": 0.05}  # peak height of flight phases, metres


def _check_action(action: str) -> None:
    if action not in _ACTION_FNS:
        raise ValueError(f"unknown action {action!r}; valid actions: {', '.join(ALL_ACTIONS)}")


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def sample_params(action: str, generator: torch.Generator) -> ActionParams:
    """Draw the per-sequence randomness of ``action`` (tempo within the action's range)."""
    _check_action(action)
    lo, hi = _ACTION_FNS[action][1]
    return ActionParams(freq_hz=_uniform(generator, lo, hi), amp=_uniform(generator, 0.75, 1.15),
                        style=_uniform(generator, 0.0, 1.0),
                        side=1 if _uniform(generator, 0, 1) < 0.5 else -1,
                        phase=_uniform(generator, 0.0, 2 * math.pi),
                        heading=_uniform(generator, -math.pi, math.pi),
                        turn_rate=math.radians(_uniform(generator, 45, 120))
                        * (1 if _uniform(generator, 0, 1) < 0.5 else -1))


def action_poses(action: str, t_s: torch.Tensor, params: ActionParams,
                 clamp: bool = True) -> torch.Tensor:
    """SMPL poses of ``action`` at times ``t_s`` ``(T,)`` seconds -> ``(T, 72)`` radians.

    ``clamp=False`` returns the designed curves before the joint-limit safety clamp (tests use it
    to check that the design itself respects the limits). dtype follows ``t_s`` (use float64).
    """
    _check_action(action)
    P = _Pose(t_s)
    P.rot(0, "y", math.degrees(params.heading))
    phase = 2 * math.pi * params.freq_hz * t_s + params.phase  # (T,)
    _ACTION_FNS[action][0](P, phase, params)
    poses = matrix_to_axis_angle(P.R).reshape(-1, 72)  # (T, 72)
    return clamp_to_limits(poses) if clamp else poses


def sample_betas(n: int, generator: torch.Generator, scale: float = 1.0,
                 max_abs: float = 2.0) -> torch.Tensor:
    """``(n, 10)`` shape coefficients ~ N(0, scale^2) clipped to +-max_abs (adult bodies)."""
    b = torch.randn(n, 10, generator=generator, dtype=torch.float64) * scale
    return b.clamp(-max_abs, max_abs)


def _place(action: str, params: ActionParams, num_frames: int, fps: float, betas: torch.Tensor,
           body_model: torch.nn.Module, poses: torch.Tensor) -> torch.Tensor:
    """``transl (T, 3)``: planted feet stay put, each frame's lowest vertex at the hop height.

    The stance-foot lock integrates foot motion at >= 60 Hz (on the skeleton, cheap) whatever the
    clip's frame rate, so a clip made at 6 fps walks exactly like every 5th frame of a 30 fps one.
    """
    lock = _ACTION_FNS[action][2]
    sub = max(1, math.ceil(60.0 / fps)) if lock == "stance" else 1
    t_fine = torch.arange((num_frames - 1) * sub + 1, dtype=torch.float64) / (fps * sub)
    fine = poses if sub == 1 else action_poses(action, t_fine, params)
    joints = skeleton_joints(fine, rest_joints(body_model, betas))  # (T_fine, 24, 3)
    if lock == "side":  # the supporting foot is the one that does not move
        lock = "right" if params.side > 0 else "left"
    xz = foot_lock_xz(joints, lock)[::sub]  # (T, 2)
    phase = 2 * math.pi * params.freq_hz * t_fine[::sub] + params.phase
    # Two flights per cycle, at the largest leg spread (run) or between open and closed (jacks).
    lift = HOP_M.get(action, 0.0) * params.amp * torch.sin(phase) ** 4
    transl = torch.zeros(num_frames, 3, dtype=torch.float64)
    transl[:, 0], transl[:, 2] = xz[:, 0], xz[:, 1]
    transl[:, 1] = lift - lowest_vertex_height(poses, betas, body_model)
    return transl


def make_clip(action: str, num_frames: int, fps: float, seed: int | torch.Generator,
              betas: torch.Tensor | np.ndarray | None = None,
              body_model: torch.nn.Module | None = None) -> MotionClip:
    """A randomised, grounded clip of a procedural action.

    Args:
        action: one of :data:`ALL_ACTIONS`.
        num_frames: ``T >= 1``. fps: frames per second (e.g. 30).
        seed: int or ``torch.Generator``: tempo, amplitude, style, side, start phase, heading
            and (when ``betas`` is None) the body shape are drawn from it.
        betas: ``(10,)`` fixed body shape, or None to draw one.
        body_model: a :class:`vhakit.body.BodyModel` for foot placement; default
            ``BodyModel.open()`` (pass one in when making many clips).
    Returns:
        :class:`MotionClip` with ``source="procedural"`` and ``name=action``.
    """
    _check_action(action)
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    params = sample_params(action, gen)
    b = sample_betas(1, gen)[0] if betas is None else torch.as_tensor(betas, dtype=torch.float64)
    check_shape(b, "betas", (10,))
    if body_model is None:
        from vhakit.body.model import BodyModel  # deferred: the body model is only needed here
        body_model = BodyModel.open()
    poses = action_poses(action, torch.arange(num_frames, dtype=torch.float64) / fps, params)
    transl = _place(action, params, num_frames, fps, b, body_model, poses)
    return MotionClip(poses=poses.numpy(), betas=b.numpy(), transl=transl.numpy(), fps=fps,
                      name=action, source="procedural")
