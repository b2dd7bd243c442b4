"""Notebook widgets for the body model and for motion clips (core ipywidgets, matplotlib pictures).

::

    from vhakit.teaching.body_widgets import BodyExplorer, ClipPlayer
    BodyExplorer(body)                 # shape (betas) and joint-rotation sliders -> the mesh
    ClipPlayer(clip, body, step=2)     # play a MotionClip frame by frame

Both widgets are thin shells over plain functions (:func:`pose_from_controls`,
:func:`render_meshes_png`): every control calls :meth:`update`, so tests and scripts drive them
kernel-side by setting slider values. The picture is a PNG drawn by matplotlib (no OpenGL) into an
``ipywidgets.Image``; the widgets' own output also carries that PNG, so a notebook executed by
nbclient / nbconvert / nbmake (no widget front-end) still shows a static image.

Units: degrees on the sliders (what students read), radians in the body model; metres.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vhakit._util import check_shape, to_numpy
from vhakit.body.model import JOINT_NAMES, NUM_BETAS
from vhakit.data.joint_limits import JOINT_LIMITS_DEG
from vhakit.viz.backend import widget_bundle
from vhakit.viz.figures import draw_mesh, part_colors

__all__ = ["PoseControl", "DEFAULT_POSE_CONTROLS", "pose_from_controls", "render_meshes_png",
           "BodyExplorer", "ClipPlayer"]

_AXES = "xyz"
#: Half-width (m) of the fixed drawing window around the origin, so that shape changes show as
#: size changes instead of being hidden by autoscaling. A beta_0 = +3 body is ~2.0 m tall.
VIEW_HALF_WIDTH_M = 1.1


@dataclass(frozen=True)
class PoseControl:
    """One slider: a rotation of ``joint`` about its local ``axis`` (0 = x, 1 = y, 2 = z) in
    degrees; its range is the joint's limit (:data:`vhakit.data.joint_limits.JOINT_LIMITS_DEG`)."""

    label: str
    joint: str
    axis: int

    def __post_init__(self) -> None:
        if self.joint not in JOINT_NAMES or self.joint == "pelvis":
            raise ValueError(f"joint must be one of JOINT_NAMES[1:], got {self.joint!r}")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {self.axis!r}")

    @property
    def limits_deg(self) -> tuple[float, float]:
        lo, hi = JOINT_LIMITS_DEG[JOINT_NAMES.index(self.joint), self.axis]
        return float(lo), float(hi)


# Signs follow the conventions of vhakit.data.joint_limits (x left, y up, z forward).
DEFAULT_POSE_CONTROLS: tuple[PoseControl, ...] = (
    PoseControl("L shoulder (z: -90 = arm down)", "left_shoulder", 2),
    PoseControl("R shoulder (z: +90 = arm down)", "right_shoulder", 2),
    PoseControl("L elbow (y: - flexes)", "left_elbow", 1),
    PoseControl("R elbow (y: + flexes)", "right_elbow", 1),
    PoseControl("L hip (x: - = thigh forward)", "left_hip", 0),
    PoseControl("R hip (x: - = thigh forward)", "right_hip", 0),
    PoseControl("L knee (x: + flexes)", "left_knee", 0),
    PoseControl("R knee (x: + flexes)", "right_knee", 0),
    PoseControl("spine2 (x: + bends forward)", "spine2", 0),
    PoseControl("head (y: + turns left)", "head", 1),
)


def pose_from_controls(values_deg: Mapping[str, float],
                       controls: Sequence[PoseControl] = DEFAULT_POSE_CONTROLS,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SMPL ``body_pose (1, 69)`` radians from slider values ``{label: degrees}``.

    Components not controlled stay 0; two controls on the same component add up. Unknown labels
    raise a ValueError (a misspelled label must not be silently ignored).
    """
    by_label = {c.label: c for c in controls}
    unknown = sorted(set(values_deg) - set(by_label))
    if unknown:
        raise ValueError(f"values_deg has unknown labels {unknown}; valid: {sorted(by_label)}")
    pose = torch.zeros(23, 3, dtype=dtype)  # joints 1..23; joint 0 is global_orient
    for label, deg in values_deg.items():
        c = by_label[label]
        pose[JOINT_NAMES.index(c.joint) - 1, c.axis] += float(np.deg2rad(float(deg)))
    return pose.reshape(1, 69)


def render_meshes_png(vertices_m, faces, vertex_colors=None, *,
                      azimuths_deg: Sequence[float] = (0.0, 90.0),
                      size_px: tuple[int, int] = (480, 280), title: str | None = None,
                      half_width_m: float | None = VIEW_HALF_WIDTH_M,
                      centre_m=None, floor_y_m: float | None = None) -> bytes:
    """PNG of one mesh ``(V, 3)`` m seen from each azimuth (0 = the body's front, 90 = its left).

    Args:
        half_width_m: fixed window half-width around ``centre_m`` (default the origin), so that
            sizes compare across pictures; None autoscales each panel.
        centre_m: ``(3,)`` world point at the window centre (e.g. the pelvis of a moving clip).
        floor_y_m: height of the floor to draw as a line (views turn about y, so it stays flat).
    """
    import matplotlib.pyplot as plt

    from vhakit.viz.figures import view_rotation

    v = torch.as_tensor(to_numpy(vertices_m, np.float64))
    check_shape(v, "vertices_m", ("V", 3))
    c = np.zeros(3) if centre_m is None else to_numpy(centre_m, np.float64)
    fig, axes = plt.subplots(1, len(azimuths_deg), squeeze=False,
                             figsize=(size_px[0] / 100, size_px[1] / 100), dpi=100)
    try:
        for ax, az in zip(axes[0], azimuths_deg, strict=True):
            draw_mesh(ax, v, faces, vertex_colors, azimuth_deg=az)
            if half_width_m is not None:
                cx, cy = (view_rotation(az) @ c)[:2]
                ax.set_xlim(cx - half_width_m, cx + half_width_m)
                ax.set_ylim(cy - half_width_m, cy + half_width_m)
            if floor_y_m is not None:
                ax.axhline(floor_y_m, color="0.4", lw=1)
            ax.set_title(f"azimuth {az:g} deg", fontsize=8)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9 if title else 0.94,
                            wspace=0.02)
        if title:
            fig.suptitle(title, fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()


class BodyExplorer:
    """Shape and pose sliders for a body model, with the posed mesh drawn from two sides.

    Args:
        body: a :class:`vhakit.body.BodyModel`.
        num_betas: how many shape sliders (the first ``num_betas`` of the 10 betas), range +-3.
        controls: the joint-rotation sliders (:data:`DEFAULT_POSE_CONTROLS`).
        size_px: ``(W, H)`` of the picture.
    Attributes:
        widget: the ``ipywidgets.VBox`` to display; ``beta_sliders`` (list), ``pose_sliders``
            (label -> slider), ``readout`` (HTML: height and pelvis), ``view`` (Image).
        output: the :class:`~vhakit.body.BodyOutput` of the shown mesh; ``render_count``.
    """

    def __init__(self, body, *, num_betas: int = 4,
                 controls: Sequence[PoseControl] = DEFAULT_POSE_CONTROLS,
                 size_px: tuple[int, int] = (480, 280)):
        import ipywidgets as w

        if not 0 <= num_betas <= NUM_BETAS:
            raise ValueError(f"num_betas must be in 0..{NUM_BETAS}, got {num_betas}")
        self.body, self.controls, self.size_px = body, tuple(controls), tuple(size_px)
        self.colors = part_colors(body.part_labels)
        self.render_count = 0
        style = {"description_width": "210px"}
        layout = w.Layout(width="460px")
        self.beta_sliders = [w.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.1,
                                           description=f"beta {i}", continuous_update=False,
                                           style=style, layout=layout) for i in range(num_betas)]
        self.pose_sliders = {}
        for c in self.controls:
            lo, hi = c.limits_deg
            self.pose_sliders[c.label] = w.FloatSlider(
                value=0.0, min=lo, max=hi, step=1.0, description=c.label,
                continuous_update=False, style=style, layout=layout)
        self.reset_button = w.Button(description="reset")
        self.reset_button.on_click(lambda _: self.reset())
        self.readout = w.HTML()
        self.view = w.Image(format="png")
        self._quiet = False
        for s in [*self.beta_sliders, *self.pose_sliders.values()]:
            s.observe(self._on_change, names="value")
        self.widget = w.HBox([w.VBox([*self.beta_sliders, *self.pose_sliders.values(),
                                      self.reset_button]), w.VBox([self.readout, self.view])])
        self.update()

    @property
    def betas(self) -> torch.Tensor:
        """``(1, 10)`` the slider betas, the rest 0."""
        ref = self.body.v_template
        b = torch.zeros(1, NUM_BETAS, dtype=ref.dtype, device=ref.device)
        for i, s in enumerate(self.beta_sliders):
            b[0, i] = float(s.value)
        return b

    @property
    def body_pose(self) -> torch.Tensor:
        """``(1, 69)`` radians from the joint sliders (:func:`pose_from_controls`)."""
        ref = self.body.v_template
        return pose_from_controls({k: s.value for k, s in self.pose_sliders.items()},
                                  self.controls, dtype=ref.dtype).to(ref.device)

    def _on_change(self, change=None) -> None:
        if not self._quiet:
            self.update()

    def reset(self) -> None:
        """All sliders back to 0 (one re-render)."""
        self._quiet = True
        try:
            for s in [*self.beta_sliders, *self.pose_sliders.values()]:
                s.value = 0.0
        finally:
            self._quiet = False
        self.update()

    def update(self) -> None:
        """Pose the body with the sliders' values and redraw (all callbacks end here)."""
        with torch.no_grad():
            self.output = self.body(betas=self.betas, body_pose=self.body_pose)
        v = self.output.vertices[0]
        height_cm = 100 * float(v[:, 1].max() - v[:, 1].min())
        pelvis = self.output.joints[0, 0].tolist()
        self.readout.value = (f"<b>{self.body.name}</b> body: extent along y {height_cm:.1f} cm; "
                              f"pelvis at ({pelvis[0]:.3f}, {pelvis[1]:.3f}, {pelvis[2]:.3f}) m")
        self.view.value = render_meshes_png(v, self.body.faces, self.colors, size_px=self.size_px)
        self.render_count += 1

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = f"BodyExplorer: betas {self.betas[0].tolist()}"
        return widget_bundle(self.widget, {"image/png": self.view.value, "text/plain": text})

    def close(self) -> None:
        for s in [*self.beta_sliders, *self.pose_sliders.values()]:
            s.close()
        for x in (self.reset_button, self.readout, self.view, self.widget):
            x.close()


class ClipPlayer:
    """Play a :class:`~vhakit.data.motion.MotionClip` on a body: play button, frame slider.

    The meshes of the shown frames are computed once (``clip.frames[::step]``), so scrubbing only
    redraws. The window follows the pelvis; the floor (y = 0) is drawn as a line.

    Args:
        clip: a MotionClip (poses ``(T, 72)``, betas ``(10,)``, transl ``(T, 3)``).
        body: a :class:`vhakit.body.BodyModel`.
        step: show every ``step``-th frame (the play speed stays real time).
        azimuths_deg: viewing directions of the panels.
    Attributes:
        vertices: ``(T', V, 3)`` m of the shown frames; ``frame_index`` ``(T',)`` clip frames;
        widget, slider, play, view; ``shown`` (slider position drawn last).
    """

    def __init__(self, clip, body, *, step: int = 1,
                 azimuths_deg: Sequence[float] = (0.0, 90.0),
                 size_px: tuple[int, int] = (480, 280)):
        import ipywidgets as w

        if not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be a positive int, got {step!r}")
        self.clip, self.body, self.step = clip, body, step
        self.azimuths_deg, self.size_px = tuple(azimuths_deg), tuple(size_px)
        self.frame_index = np.arange(0, clip.num_frames, step)
        ref = body.v_template
        t = clip.frames(self.frame_index).to_torch(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            out = body.from_poses(t["poses"], t["betas"], t["transl"])
        self.vertices, self.pelvis = out.vertices.cpu(), out.joints[:, 0].cpu()
        self.colors = part_colors(body.part_labels)
        self.shown: int | None = None
        n = len(self.frame_index)
        self.slider = w.IntSlider(value=0, min=0, max=n - 1, description="frame",
                                  continuous_update=True)
        self.play = w.Play(value=0, min=0, max=n - 1, interval=int(1000 * step / clip.fps),
                           description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.readout = w.HTML()
        self.view = w.Image(format="png")
        self.slider.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.play, self.slider]), self.readout, self.view])
        self.update()

    def update(self) -> None:
        """Draw the frame at the slider's position."""
        i = int(self.slider.value)
        f = int(self.frame_index[i])
        self.readout.value = (f"<b>{self.clip.name}</b> ({self.clip.source}): frame {f} / "
                              f"{self.clip.num_frames - 1}, t = {f / self.clip.fps:.2f} s")
        self.view.value = self.frame_png(i)
        self.shown = i

    def frame_png(self, i: int) -> bytes:
        """PNG of shown frame ``i`` (0 <= i < len(frame_index))."""
        c = self.pelvis[i].clone()
        # Follow the body horizontally only, so that jumps and crouches show against the floor.
        c[1] = float(self.vertices[..., 1].amin() + self.vertices[..., 1].amax()) / 2
        return render_meshes_png(self.vertices[i], self.body.faces, self.colors,
                                 azimuths_deg=self.azimuths_deg, size_px=self.size_px,
                                 centre_m=c, floor_y_m=0.0)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return widget_bundle(self.widget, {
            "image/png": self.view.value,
            "text/plain": f"ClipPlayer: {self.clip.name}, {len(self.frame_index)} frames"})

    def close(self) -> None:
        for x in (self.slider, self.play, self.readout, self.view, self.widget):
            x.close()
