"""The ablation panel's callbacks, kernel-side with a fake runner: the controls make the right
spec, Run trains once and then loads the cache, invalid switches are refused, and the table,
chart and static fallback show the numbers."""
from __future__ import annotations

import re

import pytest

from tests.test_ablate import CountingRunner, fake_metrics
from vhakit.experiments.ablate import run_sweep
from vhakit.teaching.ablation_panel import AblationPanel, run_rows


@pytest.fixture(autouse=True)
def _not_fast(monkeypatch):
    monkeypatch.delenv("VHAKIT_FAST", raising=False)


def test_controls_make_the_spec_and_run_trains_once(tmp_path):
    runner = CountingRunner()
    panel = AblationPanel(runner=runner, cache_dir=tmp_path, preset="tiny")
    assert "no cached runs" in panel.table.value
    panel.boxes["code loss"].value = False
    panel.boxes["pretrained VHA weights"].value = True
    panel.fraction_slider.value = 0.1
    panel.seed_select.value = 2
    spec = panel.spec()
    assert (spec.use_vertex_loss, spec.use_code_loss, spec.init_from_vha) == (True, False, True)
    assert (spec.train_fraction, spec.seed, spec.preset, spec.method) == (0.1, 2, "tiny",
                                                                          "vha_bcp")
    assert spec.test_splits == ("h36m_like",)

    panel.run_button.click()  # what pressing Run does, kernel-side
    assert runner.calls == [spec]
    expected = fake_metrics(spec)["h36m_like"]["mpve_mm"]
    status = panel.status.value
    assert float(re.search(r'data-mpve-mm="([\d.]+)"', status).group(1)) == pytest.approx(
        expected, abs=1e-3)
    assert "trained" in status and panel.last_record["key"] == spec.key()
    assert f"{expected:.1f}" in panel.table.value
    assert f'data-key="{spec.key()}" style="font-weight:bold"' in panel.table.value
    assert panel.chart.value[:4] == b"\x89PNG"

    record = panel.run()  # the same run again comes from the cache
    assert runner.calls == [spec] and record["cached"] and "cache" in panel.status.value
    panel.close()


def test_the_default_runner_is_run_experiment(tmp_path, monkeypatch):
    from vhakit.experiments import pipeline

    runner = CountingRunner()
    monkeypatch.setattr(pipeline, "run_experiment", runner)
    panel = AblationPanel(cache_dir=tmp_path, preset="tiny")
    record = panel.run()
    assert runner.calls == [panel.spec()] and not record["cached"]
    panel.close()


def test_invalid_switches_are_refused_without_training(tmp_path):
    runner = CountingRunner()
    panel = AblationPanel(runner=runner, cache_dir=tmp_path)
    panel.boxes["vertex loss"].value = False
    panel.boxes["code loss"].value = False
    assert panel.run() is None and runner.calls == []
    assert "vhakit-error" in panel.status.value and "at least one" in panel.status.value


def test_table_lists_a_sweeps_runs_best_first_and_degrades_to_html(tmp_path):
    run_sweep("1", "tiny", 1, tmp_path, None, CountingRunner(), progress=False)
    run_sweep("efficiency", "tiny", 1, tmp_path, None, CountingRunner(), progress=False,
              fractions=(1.0,))
    run_sweep("1", "teaching", 1, tmp_path, None, CountingRunner(), progress=False)
    panel = AblationPanel(runner=CountingRunner(), cache_dir=tmp_path, preset="tiny")
    rows = panel.rows()
    assert len(rows) == 6  # Table 1's five runs + the baseline; not the teaching runs
    assert [r["mpve_mm"] for r in rows] == sorted(r["mpve_mm"] for r in rows)
    assert {r["method"] for r in rows} == {"vha_bcp", "baseline"}
    assert panel.table.value.count("<tr data-key=") == 6
    bars = panel.chart_figure().axes[0].patches  # one bar per run, even with equal labels
    assert [b.get_width() for b in sorted(bars, key=lambda b: -b.get_y())] == pytest.approx(
        [r["mpve_mm"] for r in rows])
    bundle = panel._repr_mimebundle_()
    assert "<table" in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_run_rows_reads_one_split():
    spec_fields = {"method": "vha_bcp", "use_vertex_loss": True, "use_code_loss": False,
                   "init_from_vha": True, "train_fraction": 0.3, "vha_prior": "pool", "seed": 1}
    records = [{"key": "a", "spec": spec_fields,
                "metrics": {"x": {"mpjpe_mm": 1.0, "mpve_mm": 2.0, "angle_deg": 3.0}}},
               {"key": "b", "spec": spec_fields, "metrics": {"y": {}}}]
    assert run_rows(records, "x") == [{
        "key": "a", "method": "vha_bcp", "vertex": True, "code": False, "pretrain": True,
        "fraction": 0.3, "prior": "pool", "vha_key": None, "seed": 1, "mpjpe_mm": 1.0,
        "mpve_mm": 2.0, "angle_deg": 3.0}]


def test_panel_tests_table1s_claims_over_the_cached_seeds(tmp_path):
    """The claims table: Welch's t, dof, p and seeds per condition of Table 1's claims, the same
    numbers as the sweep's, updated as runs of new seeds land in the cache."""
    from vhakit.experiments.claims import check_claims

    sweep = run_sweep("1", "tiny", 3, tmp_path, None, CountingRunner(), progress=False)
    runner = CountingRunner()
    panel = AblationPanel(runner=runner, cache_dir=tmp_path, preset="tiny")
    assert runner.calls == []
    rows = re.findall(r'<tr data-verdict="([^"]+)" data-p="([^"]+)">(.*?)</tr>',
                      panel.claims.value)
    expected = check_claims(sweep)
    assert [v for v, _, _ in rows] == [c["verdict"] for c in expected]
    for (_, p, cells), claim in zip(rows, expected, strict=True):
        assert float(p) == pytest.approx(claim["p"])
        assert f"<td>{claim['t']:+.2f}</td><td>{claim['dof']:.1f}</td>" in cells
        assert "<td>3/3</td>" in cells
    assert "prior" in panel.table.value and "pool-h36m_like-s2" in panel.table.value
    assert panel.claims.value in panel._repr_mimebundle_()["text/html"]
    panel.seed_select.value = 3  # a fourth seed of the full model: its condition has n = 4
    for name in panel.boxes:
        panel.boxes[name].value = True
    panel.run()
    assert runner.calls == [panel.spec()] and panel.spec().vha_per_seed
    assert "<td>4/3</td>" in panel.claims.value or "<td>3/4</td>" in panel.claims.value
    panel.close()
