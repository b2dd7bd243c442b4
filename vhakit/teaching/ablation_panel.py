"""An ablation panel for notebooks: toggle Table 1's switches, pick the training-set size, press
Run, and see the run beside every cached run, and Table 1's claims tested over the seeds cached so
far (core ipywidgets only)::

    from vhakit.teaching.ablation_panel import AblationPanel
    panel = AblationPanel(preset="teaching", cache_dir="../runs/cache")
    panel                      # checkboxes, slider, Run button, results table and MPVE bars

Every control calls a plain method (:meth:`AblationPanel.run`, :meth:`AblationPanel.spec`), so
tests and scripts drive the panel kernel-side (``panel.run_button.click()``). A run goes through
:func:`vhakit.experiments.ablate.run_cached`: a cached run returns at once, a new one trains (tiny preset:
seconds to a minute). Displayed where no widget front-end is alive (nbclient, exported
notebooks), the panel shows its results table as HTML and the bars as a PNG.
"""
from __future__ import annotations

import base64
import html
import io
import math

from vhakit.experiments.ablate import (
    EFFICIENCY_FRACTIONS,
    H36M,
    SweepResult,
    cached_runs,
    run_cached,
    summarize,
    table_cells,
)
from vhakit.experiments.pipeline import ExperimentSpec
from vhakit.viz.backend import widget_bundle

__all__ = ["AblationPanel", "run_rows", "claims_html"]


def claims_html(result) -> str:
    """The claims of ``result`` (:func:`vhakit.experiments.claims.check_claims`) as an HTML table:
    difference ± s.e., Welch's t, degrees of freedom, p, seeds per condition and the verdict."""
    from vhakit.experiments.claims import check_claims, fmt_num, fmt_p

    head = ("<tr><th>claim</th><th>difference</th><th>t</th><th>dof</th><th>p</th>"
            "<th>n per condition</th><th>verdict</th></tr>")
    body = []
    for c in check_claims(result):
        unit = "deg" if c["metric"] == "angle_deg" else "mm"
        diff = fmt_num(c["kit"], "+.1f") + ("" if math.isnan(c["se"]) else f" ± {c['se']:.1f}")
        cells = [c["text"], f"{diff} {unit}", fmt_num(c["t"], "+.2f"), fmt_num(c["dof"], ".1f"),
                 fmt_p(c["p"]), "/".join(map(str, c["n"])), c["verdict"]]
        body.append(f'<tr data-verdict="{html.escape(c["verdict"])}" data-p="{c["p"]}">'
                    + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    return (f"<table class='vhakit-claims'><caption>table {html.escape(result.table)}: the "
            f"paper's claims, Welch's t-test over seeds (yes / no: p &lt; 0.05)</caption>"
            f"{head}{''.join(body)}</table>")


def run_rows(records: list[dict], test_split: str = H36M) -> list[dict]:
    """One flat row per run record: the switches, fraction, prior (``prior``: its data,
    ``vha_key``: the trained VHA it decodes through, None for the baseline), seed and metrics on
    ``test_split`` (records without that split are skipped), sorted by MPVE."""
    rows = []
    for r in records:
        s, m = r["spec"], r["metrics"].get(test_split)
        if m is None:
            continue
        rows.append({"key": r["key"], "method": s["method"], "vertex": s["use_vertex_loss"],
                     "code": s["use_code_loss"], "pretrain": s["init_from_vha"],
                     "fraction": s["train_fraction"], "prior": s["vha_prior"],
                     "vha_key": r.get("vha_key"), "seed": s["seed"], "mpjpe_mm": m["mpjpe_mm"],
                     "mpve_mm": m["mpve_mm"], "angle_deg": m["angle_deg"]})
    return sorted(rows, key=lambda row: (math.isnan(row["mpve_mm"]), row["mpve_mm"]))


def _prior(key: str | None, preset: str) -> str:
    """A run's prior id for the table (its ``vha_key`` without the preset), "–" for none."""
    if key is None:
        return "–"
    return key[len(preset) + 1:] if key.startswith(f"{preset}-") else key


def _label(row: dict) -> str:
    if row["method"] == "baseline":
        name = "baseline"
    else:
        name = "+".join(n for n, on in (("V", row["vertex"]), ("C", row["code"]),
                                        ("P", row["pretrain"])) if on)
    prior = " (prior: split)" if row["method"] == "vha_bcp" and row["prior"] == "train_only" else ""
    return f"{name}{prior} {row['fraction'] * 100:g}% s{row['seed']}"


class AblationPanel:
    """Three switches (vertex loss, code loss, pretrained VHA weights), a training-set-size
    slider, a seed picker, a Run button, a results table, an MPVE bar chart and Table 1's claims
    over the cached seeds (runs with one VHA per seed, as the sweeps train them).

    Args:
        runner: ``runner(spec, cache_dir, progress=...)``; None:
            :func:`vhakit.experiments.pipeline.run_experiment` (looked up at call time).
        cache_dir: the run cache shared with ``vhakit ablate`` (so its sweeps show up here).
        preset: model/data preset of the runs (``"tiny"`` trains in about a minute on a CPU).
        train_split: BCP's training and test split.
        fractions: training-set fractions offered by the slider.
        seeds: seeds offered (5 or more make the claims' tests sharper).
    Attributes:
        widget: the ``ipywidgets.VBox`` to display; ``boxes`` (name -> Checkbox),
            ``fraction_slider``, ``seed_select``, ``run_button``, ``status``, ``table``,
            ``chart``, ``claims``. ``last_record``: the record of the last run (None before).
    """

    SWITCHES = {"vertex loss": "use_vertex_loss", "code loss": "use_code_loss",
                "pretrained VHA weights": "init_from_vha"}

    def __init__(self, runner=None, cache_dir="runs/cache", preset: str = "tiny",
                 train_split: str = H36M, fractions=EFFICIENCY_FRACTIONS,
                 seeds=(0, 1, 2, 3, 4)):
        import ipywidgets as w

        self.runner = runner
        self.cache_dir = cache_dir
        self.preset = preset
        self.train_split = train_split
        self.last_record: dict | None = None
        self.boxes = {name: w.Checkbox(value=True, description=name, indent=False)
                      for name in self.SWITCHES}
        self.fraction_slider = w.SelectionSlider(
            options=[(f"{f * 100:g} %", float(f)) for f in fractions], value=float(fractions[0]),
            description="train set")
        self.seed_select = w.Dropdown(options=list(seeds), value=seeds[0], description="seed")
        self.run_button = w.Button(description="Run", button_style="primary",
                                   tooltip="train (or load the cached run) and evaluate")
        self.run_button.on_click(self.run)
        self.status = w.HTML()
        self.table = w.HTML()
        self.chart = w.Image(format="png")
        self.claims = w.HTML()
        self.widget = w.VBox([w.HBox(list(self.boxes.values())),
                              w.HBox([self.fraction_slider, self.seed_select, self.run_button]),
                              self.status, w.HBox([self.table, self.chart]), self.claims])
        self.refresh()

    def spec(self) -> ExperimentSpec:
        """The run the controls describe (ValueError if neither loss is on)."""
        switches = {field: box.value for (name, field), box in
                    zip(self.SWITCHES.items(), self.boxes.values(), strict=True)}
        return ExperimentSpec(method="vha_bcp", preset=self.preset, train_split=self.train_split,
                              train_fraction=float(self.fraction_slider.value),
                              test_splits=(self.train_split,), seed=int(self.seed_select.value),
                              vha_per_seed=True, **switches)

    def run(self, _button=None) -> dict | None:
        """The Run button: train or load the controls' run, then refresh the table and chart.
        Returns the run record, or None when the switches are invalid (the status says why)."""
        try:
            spec = self.spec()
        except ValueError as err:
            self.status.value = f'<span class="vhakit-error">{html.escape(str(err))}</span>'
            return None
        self.status.value = f"running {html.escape(spec.key())} ..."
        record = run_cached(spec, self.cache_dir, self.runner, progress=False)
        self.last_record = record
        how = "loaded from the cache" if record["cached"] else f"trained in {record['seconds']:.0f} s"
        mpve = record["metrics"][self.train_split]["mpve_mm"]
        self.status.value = (f'<span data-key="{spec.key()}" data-mpve-mm="{mpve:.3f}">run '
                             f"{spec.key()} {how}: MPVE {mpve:.1f} mm</span>")
        self.refresh()
        return record

    def rows(self) -> list[dict]:
        """Every cached run of this preset trained and tested on the panel's split, best MPVE
        first."""
        return run_rows(cached_runs(self.cache_dir, preset=self.preset,
                                    train_split=self.train_split), self.train_split)

    def table1_result(self) -> SweepResult | None:
        """Table 1 over every seed cached for this preset (None unless the panel trains on
        ``h36m_like``, Table 1's split): the summary :meth:`claims_html` tests."""
        if self.train_split != H36M:
            return None
        cells = table_cells("1", self.preset)
        templates = {c.spec for c in cells}
        runs = [r for r in cached_runs(self.cache_dir, preset=self.preset, train_split=H36M)
                if ExperimentSpec(**{**r["spec"], "seed": 0}) in templates]
        seeds = tuple(sorted({r["seed"] for r in runs}))
        return SweepResult("1", self.preset, seeds, cells, runs, summarize(cells, runs))

    def claims_html(self) -> str:
        """Table 1's claims over the cached seeds (:func:`claims_html`); empty off h36m_like."""
        result = self.table1_result()
        return "" if result is None else claims_html(result)

    def table_html(self) -> str:
        """The results table (the last run's row is bold)."""
        current = self.last_record["key"] if self.last_record else None
        head = ("<tr><th>method</th><th>vertex</th><th>code</th><th>pretrain</th>"
                "<th>train set</th><th>seed</th><th>prior</th><th>MPJPE mm</th><th>MPVE mm</th>"
                "<th>angle deg</th></tr>")
        body = []
        for r in self.rows():
            tick = {True: "✓", False: "✗"}
            bcp = r["method"] == "vha_bcp"
            cells = [r["method"], *(tick[r[k]] if bcp else "–" for k in ("vertex", "code",
                                                                         "pretrain")),
                     f"{r['fraction'] * 100:g} %", str(r["seed"]),
                     _prior(r["vha_key"], self.preset),
                     *(f"{r[k]:.{2 if k == 'angle_deg' else 1}f}"
                       for k in ("mpjpe_mm", "mpve_mm", "angle_deg"))]
            style = ' style="font-weight:bold"' if r["key"] == current else ""
            body.append(f'<tr data-key="{r["key"]}"{style}>'
                        + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        if not body:
            body.append('<tr><td colspan="10">no cached runs yet: press Run</td></tr>')
        return (f"<table class='vhakit-ablation'><caption>runs of preset {self.preset}, "
                f"{self.train_split}</caption>{head}{''.join(body)}</table>")

    def chart_png(self) -> bytes:
        """:meth:`chart_figure` as PNG bytes."""
        buf = io.BytesIO()
        self.chart_figure().savefig(buf, format="png")
        return buf.getvalue()

    def chart_figure(self):
        """MPVE of the 20 best listed runs as horizontal bars, best at the top, the last run in
        orange (a matplotlib ``Figure``)."""
        from matplotlib.figure import Figure

        rows = [r for r in self.rows() if not math.isnan(r["mpve_mm"])][:20]
        fig = Figure(figsize=(4.5, 1.2 + 0.25 * len(rows)), dpi=90)
        ax = fig.add_subplot()
        current = self.last_record["key"] if self.last_record else None
        ypos = list(range(len(rows)))[::-1]  # best at the top; positions keep equal labels apart
        ax.barh(ypos, [r["mpve_mm"] for r in rows],
                color=["tab:orange" if r["key"] == current else "tab:blue" for r in rows])
        ax.set_yticks(ypos, [_label(r) for r in rows])
        if not rows:
            ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("MPVE mm (lower is better)")
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        return fig

    def refresh(self) -> None:
        """Re-read the cache into the table and the chart."""
        self.table.value = self.table_html()
        self.chart.value = self.chart_png()
        self.claims.value = self.claims_html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        # Without a live widget front-end (nbclient, exports) the table and chart are shown.
        png = base64.b64encode(self.chart.value).decode("ascii")
        return widget_bundle(self.widget, {
            "text/html": (self.status.value + self.table.value
                          + f'<img src="data:image/png;base64,{png}"/>' + self.claims.value),
            "text/plain": f"AblationPanel: {len(self.rows())} cached runs of {self.preset}"},
            include, exclude)

    def close(self) -> None:
        """Release the widgets."""
        for child in [*self.boxes.values(), self.fraction_slider, self.seed_select,
                      self.run_button, self.status, self.table, self.chart, self.claims,
                      *self.widget.children, self.widget]:
            child.close()
