"""Sweeps of Tables 1, 2 and the efficiency curve with a fake runner: the right runs, caching,
resume, mean ± std against hand computation, the result files, the paper's numbers and the CLI."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from vhakit.experiments import ablate, pipeline
from vhakit.experiments.ablate import (
    EFFICIENCY_FRACTIONS,
    load_or_run,
    run_sweep,
    sweep_specs,
    table_cells,
)
from vhakit.experiments.paper import PAPER_TABLE1, PAPER_TABLE2
from vhakit.experiments.pipeline import METRIC_NAMES, ExperimentSpec


@pytest.fixture(autouse=True)
def _not_fast(monkeypatch):
    """Full-mode cache paths unless a test asks for fast mode (CI sets VHAKIT_FAST=1)."""
    monkeypatch.delenv("VHAKIT_FAST", raising=False)


def fake_metrics(spec: ExperimentSpec) -> dict:
    """Deterministic metrics: a per-spec base (from its fields, not its seed) + 3 * seed**2."""
    base = (10.0 * spec.use_vertex_loss + 20.0 * spec.use_code_loss + 40.0 * spec.init_from_vha
            + (5.0 if spec.method == "baseline" else 0.0) + 100.0 * spec.train_fraction
            + (7.0 if spec.vha_prior == "pool" else 0.0)
            + (1000.0 if spec.train_split == "lightstage_like" else 0.0))
    out = {}
    for j, split in enumerate(spec.test_splits):
        value = base + 3.0 * spec.seed ** 2 + 0.5 * j
        out[split] = {name: value + i for i, name in enumerate(METRIC_NAMES)}
        out[split]["num_frames"] = 20.0
    return out


class CountingRunner:
    def __init__(self, fail_at: int | None = None):
        self.calls: list[ExperimentSpec] = []
        self.fail_at = fail_at

    def __call__(self, spec, cache_dir, progress=True):
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            raise RuntimeError("interrupted")
        self.calls.append(spec)
        return fake_metrics(spec)


def test_table1_runs_are_the_papers_five_rows():
    cells = table_cells("1", "tiny")
    switches = [(c.spec.use_vertex_loss, c.spec.use_code_loss, c.spec.init_from_vha)
                for c in cells]
    # Paper Table 1, rows top to bottom: (vertex loss, code loss, pretrained weights).
    assert switches == [(True, False, False), (True, True, False), (True, False, True),
                        (False, True, True), (True, True, True)]
    assert {(c.spec.method, c.spec.train_split, c.spec.test_splits, c.test_split,
             c.spec.preset, c.spec.train_fraction) for c in cells} == {
        ("vha_bcp", "h36m_like", ("h36m_like",), "h36m_like", "tiny", 1.0)}
    assert [c.row for c in cells] == list(PAPER_TABLE1)


def test_table2_runs_and_columns():
    cells = table_cells("2", "teaching")
    specs = list(dict.fromkeys(c.spec for c in cells))
    # 3 methods x 2 training splits; one h36m-trained run serves in-domain and both cross columns.
    expected = set()
    for method, prior in (("baseline", "pool"), ("vha_bcp", "train_only"), ("vha_bcp", "pool")):
        expected.add((method, prior, "h36m_like", ("h36m_like", "lightstage_like", "real_mocap")))
        expected.add((method, prior, "lightstage_like", ("lightstage_like",)))
    assert {(s.method, s.vha_prior, s.train_split, s.test_splits) for s in specs} == expected
    assert len(specs) == 6 and len(cells) == 12
    by_column = {(c.row, c.column): (c.spec.train_split, c.test_split) for c in cells}
    row = "VHA+BCP, prior: + prior_pool"
    assert by_column[(row, "in-domain")] == ("h36m_like", "h36m_like")
    assert by_column[(row, "small data")] == ("lightstage_like", "lightstage_like")
    assert by_column[(row, "cross -> lightstage_like")] == ("h36m_like", "lightstage_like")
    assert by_column[(row, "cross -> real_mocap")] == ("h36m_like", "real_mocap")
    assert all((c.row, c.column) in PAPER_TABLE2 for c in cells if "real_mocap" not in c.column)
    assert all(s.use_vertex_loss and s.use_code_loss and s.init_from_vha for s in specs)


def test_efficiency_runs_and_seeds():
    cells = table_cells("efficiency", "tiny")
    assert {(c.spec.method, c.spec.train_fraction) for c in cells} == {
        (m, f) for m in ("baseline", "vha_bcp") for f in (1.0, 0.3, 0.1, 0.03)}
    assert EFFICIENCY_FRACTIONS == (1.0, 0.3, 0.1, 0.03)
    specs = sweep_specs(cells, 3)
    assert len(specs) == 24 == len(set(specs))
    assert [s.seed for s in specs[:8]] == [0] * 8 and {s.seed for s in specs} == {0, 1, 2}
    assert [s.seed for s in sweep_specs(cells, [5, 7])][::8] == [5, 7]
    # BCP at 100 % is Table 1's full row: the sweeps share that run.
    full = next(c.spec for c in table_cells("1", "tiny") if c.row == "vertex + code + pretrain")
    assert full in {c.spec for c in cells}
    with pytest.raises(ValueError, match="table"):
        table_cells("3", "tiny")
    with pytest.raises(ValueError, match="seeds"):
        sweep_specs(cells, 0)


def test_cache_calls_each_run_once_and_then_never(tmp_path):
    runner = CountingRunner()
    first = run_sweep("1", "tiny", 2, tmp_path / "cache", tmp_path / "res", runner, progress=False)
    assert len(runner.calls) == 10 == len(set(runner.calls))
    assert not any(r["cached"] for r in first.runs)
    for spec in runner.calls:
        record = json.loads(ablate.result_path(spec, tmp_path / "cache").read_text())
        assert record["spec"] == json.loads(json.dumps(asdict(spec))) and record["metrics"] == fake_metrics(spec)
    again = CountingRunner()
    second = run_sweep("1", "tiny", 2, tmp_path / "cache", tmp_path / "res", again,
                       progress=False)
    assert again.calls == [] and all(r["cached"] for r in second.runs)
    assert second.summary == first.summary
    # One more seed trains only the new seed's five runs.
    third = CountingRunner()
    run_sweep("1", "tiny", 3, tmp_path / "cache", None, third, progress=False)
    assert len(third.calls) == 5 and {s.seed for s in third.calls} == {2}


def test_interrupted_sweep_resumes(tmp_path):
    broken = CountingRunner(fail_at=4)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sweep("2", "tiny", 1, tmp_path / "cache", tmp_path / "res", broken, progress=False)
    done = list(broken.calls)
    assert len(done) == 3
    assert not (tmp_path / "res" / "table2.json").exists()
    resumed = CountingRunner()
    result = run_sweep("2", "tiny", 1, tmp_path / "cache", tmp_path / "res", resumed,
                       progress=False)
    assert len(resumed.calls) == 3 and not set(resumed.calls) & set(done)
    assert [r["cached"] for r in result.runs] == [True] * 3 + [False] * 3


def test_corrupt_or_foreign_cache_entries_are_rerun(tmp_path):
    spec = table_cells("1", "tiny")[0].spec
    path = ablate.result_path(spec, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")
    runner = CountingRunner()
    record = ablate.run_cached(spec, tmp_path, runner, progress=False)
    assert runner.calls == [spec] and not record["cached"]
    record = json.loads(path.read_text())
    record["spec"]["seed"] = 99  # a record of another spec in this folder
    path.write_text(json.dumps(record))
    ablate.run_cached(spec, tmp_path, runner, progress=False)
    assert len(runner.calls) == 2


def test_mean_and_std_match_hand_computation(tmp_path):
    result = run_sweep("1", "tiny", 3, tmp_path / "c", None, CountingRunner(), progress=False)
    # Row "vertex + code" (vertex, code, no pretrain): base 10 + 20 + 100 + 7 (pool) = 137;
    # MPVE is METRIC_NAMES index 2 -> 139; seeds add 0, 3, 12 -> 139, 142, 151.
    mean, std, n = result.value("vertex + code", "h36m_like", "mpve_mm")
    assert n == 3
    assert mean == pytest.approx(144.0)  # (139 + 142 + 151) / 3
    assert std == pytest.approx(math.sqrt(((-5) ** 2 + (-2) ** 2 + 7 ** 2) / 2))  # sqrt(39)
    one = run_sweep("1", "tiny", [1], tmp_path / "c", None, CountingRunner(), progress=False)
    mean, std, n = one.value("vertex + code", "h36m_like", "mpve_mm")
    assert (mean, n) == (142.0, 1) and math.isnan(std)


def test_table2_reads_the_right_split_of_a_shared_run(tmp_path):
    result = run_sweep("2", "tiny", 1, tmp_path / "c", None, CountingRunner(), progress=False)
    row = "baseline (LMT-style)"
    # baseline trained on h36m_like: base 10 + 20 + 40 + 5 + 100 + 7 = 182; MPJPE index 0;
    # test splits (h36m_like, lightstage_like, real_mocap) add 0, 0.5, 1.0.
    assert result.value(row, "in-domain", "mpjpe_mm")[0] == 182.0
    assert result.value(row, "cross -> lightstage_like", "mpjpe_mm")[0] == 182.5
    assert result.value(row, "cross -> real_mocap", "mpjpe_mm")[0] == 183.0
    assert result.value(row, "small data", "mpjpe_mm")[0] == 1182.0


def test_files_parse_back_and_show_the_papers_numbers(tmp_path):
    res = tmp_path / "results"
    t1 = run_sweep("1", "tiny", 2, tmp_path / "c", res, CountingRunner(), progress=False)
    t2 = run_sweep("2", "tiny", 2, tmp_path / "c", res, CountingRunner(), progress=False)
    eff = run_sweep("efficiency", "tiny", 2, tmp_path / "c", res, CountingRunner(),
                    progress=False)
    for stem in ("table1", "table2", "data_efficiency"):
        for suffix in ("md", "csv", "json"):
            assert (res / f"{stem}.{suffix}").stat().st_size > 0
    assert (res / "data_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    assert eff.paths["png"] == res / "data_efficiency.png"

    data = json.loads((res / "table1.json").read_text())
    assert data["preset"] == "tiny" and data["seeds"] == [0, 1]
    assert len(data["runs"]) == 10
    for run in data["runs"]:
        spec = ExperimentSpec(**run["spec"])
        assert run["seed"] == spec.seed and run["key"] == spec.key()
        assert run["metrics"] == fake_metrics(spec)
    rows = list(csv.DictReader((res / "table1.csv").open()))
    assert len(rows) == 5 * (len(METRIC_NAMES) + 1)
    for row in rows:
        mean, std, n = t1.value(row["row"], row["column"], row["metric"])
        assert float(row["mean"]) == mean and float(row["std"]) == pytest.approx(std)
        assert int(row["n"]) == n == 2

    md1 = (res / "table1.md").read_text()
    for values in PAPER_TABLE1.values():
        assert all(f"{v:.1f}" in md1 for v in values[:2]) and f"{values[2]:.2f}" in md1
    mean, std, _ = t1.value("vertex + pretrain", "h36m_like", "mpve_mm")
    assert f"{mean:.1f} ± {std:.1f}" in md1
    md2 = (res / "table2.md").read_text()
    assert "40.6" in md2 and "29.9" in md2 and "18.54" in md2 and md2 == t2.markdown
    assert "Did the paper's orderings reproduce?" in md1 and "| reproduced? |" in md2
    md_eff = (res / "data_efficiency.md").read_text()
    assert "100 %" in md_eff and "3 %" in md_eff and "18.6 vs 26.0" in md_eff


def test_bad_runner_output_is_rejected(tmp_path):
    def missing_split(spec, cache_dir, progress=True):
        return {}

    with pytest.raises(ValueError, match="test split"):
        run_sweep("1", "tiny", 1, tmp_path, None, missing_split, progress=False)

    def missing_metric(spec, cache_dir, progress=True):
        return {s: {"mpjpe_mm": 1.0} for s in spec.test_splits}

    with pytest.raises(ValueError, match="miss"):
        run_sweep("1", "tiny", 1, tmp_path, None, missing_metric, progress=False)
    assert not list(tmp_path.glob("*/result.json"))


def test_the_default_runner_is_run_experiment_looked_up_at_call_time(tmp_path, monkeypatch):
    runner = CountingRunner()
    monkeypatch.setattr(pipeline, "run_experiment", runner)
    run_sweep("1", "tiny", 1, tmp_path / "c", tmp_path / "r", progress=False)
    assert len(runner.calls) == 5
    assert run_sweep("efficiency", "tiny", 1, tmp_path / "c", None, progress=False,
                     fractions=(1.0,)).runs[1]["cached"]  # shared with Table 1's full row
    assert len(runner.calls) == 6


def test_load_or_run_reuses_saved_results(tmp_path):
    run_sweep("1", "tiny", 2, tmp_path / "old_cache", tmp_path / "res", CountingRunner(),
              progress=False)
    runner = CountingRunner()
    result = load_or_run("1", "tiny", 2, tmp_path / "new_cache", tmp_path / "res", runner,
                         progress=False)
    assert runner.calls == [] and all(r["cached"] for r in result.runs)
    load_or_run("1", "tiny", 3, tmp_path / "new_cache", tmp_path / "res", runner, progress=False)
    assert len(runner.calls) == 5


def test_results_written_before_the_standin_flag_was_dropped_still_load(tmp_path):
    """Older results JSONs (the committed ones among them) carry ``"standin": false`` at the top
    and in every run; they still seed the cache and reload as saved."""
    run_sweep("1", "tiny", 2, tmp_path / "old_cache", tmp_path / "res", CountingRunner(),
              progress=False)
    path = tmp_path / "res" / "table1.json"
    saved = json.loads(path.read_text())
    assert "standin" not in saved and not any("standin" in r for r in saved["runs"])
    old = {**saved, "standin": False, "runs": [{**r, "standin": False} for r in saved["runs"]]}
    path.write_text(json.dumps(old))
    assert ablate.sweep_from_saved(old).value("vertex", "h36m_like") == ablate.sweep_from_saved(
        saved).value("vertex", "h36m_like")
    runner = CountingRunner()
    result = load_or_run("1", "tiny", 2, tmp_path / "new_cache", tmp_path / "res", runner,
                         progress=False)
    assert runner.calls == [] and all(r["cached"] for r in result.runs)


def test_cli_ablate(tmp_path, monkeypatch, capsys):
    from vhakit.cli import main

    runner = CountingRunner()
    monkeypatch.setattr(pipeline, "run_experiment", runner)
    monkeypatch.setenv("VHAKIT_FAST", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", "--table", "1", "--cache", "c", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "preset `tiny`, 1 seed" in out and "25.1" in out
    assert len(runner.calls) == 5 and {s.preset for s in runner.calls} == {"tiny"}
    assert (tmp_path / "runs/results/fast-tiny/table1.md").exists()
    assert main(["ablate", "--table", "1", "--preset", "teaching", "--cache", "c", "--quiet"]) == 0
    assert (tmp_path / "runs/results/fast-teaching/table1.md").exists()
    assert not (tmp_path / "results").exists()  # only the full teaching sweep writes results/
    monkeypatch.delenv("VHAKIT_FAST")
    assert ablate.default_results_dir("teaching") == Path("results")
    assert ablate.default_results_dir("tiny") == Path("runs/results/tiny")
    assert main(["ablate", "--table", "2", "--preset", "teaching", "--seeds", "2",
                 "--cache", "c", "--results", "out", "--quiet"]) == 0
    assert len(runner.calls) == 10 + 12 and (tmp_path / "out/table2.csv").exists()
    assert {replace(s, seed=0).preset for s in runner.calls[10:]} == {"teaching"}


def test_fast_mode_runs_are_cached_apart_and_keep_the_runners_fields(tmp_path, monkeypatch):
    spec = table_cells("1", "tiny")[-1].spec

    def runner(spec, cache_dir, progress=True):  # like run_experiment: stores its own record
        path = cache_dir / pipeline.run_tag(spec) / "result.json"
        assert path.parent.name.startswith(f"fast-{spec.key()}-")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"spec": asdict(spec), "metrics": fake_metrics(spec),
                                    "model": "m1"}))
        return fake_metrics(spec)

    monkeypatch.setenv("VHAKIT_FAST", "1")
    record = ablate.run_cached(spec, tmp_path, runner, progress=False)
    assert record["fast"] and not list(tmp_path.glob(f"{spec.key()}*"))
    stored = json.loads(ablate.result_path(spec, tmp_path).read_text())
    assert stored["model"] == "m1" and stored["metrics"] == fake_metrics(spec)
    assert ablate.run_cached(spec, tmp_path, runner, progress=False)["cached"]
    result = run_sweep("1", "tiny", 1, tmp_path, None, CountingRunner(), progress=False)
    assert result.fast and "VHAKIT_FAST=1" in result.markdown
    monkeypatch.delenv("VHAKIT_FAST")
    counting = CountingRunner()
    assert not ablate.run_cached(spec, tmp_path, counting, progress=False)["cached"]
    assert counting.calls == [spec] and ablate.cached_runs(tmp_path, preset="tiny") != []
    assert len(ablate.cached_runs(tmp_path, preset="tiny")) == 1


def test_claims_verdicts_against_hand_computation(tmp_path, monkeypatch):
    from vhakit.experiments.claims import check_claims, claims_markdown

    result = run_sweep("1", "tiny", 3, tmp_path, None, CountingRunner(), progress=False)
    code = check_claims(result)[0]  # vertex + code (137 + 2) minus vertex (117 + 2) = +20
    assert code["kit"] == pytest.approx(20.0)
    assert code["se"] == pytest.approx(math.sqrt(39 / 3 + 39 / 3))  # per-cell std sqrt(39)
    assert code["paper"] == pytest.approx(24.0 - 25.1) and code["verdict"] == "no"
    # Welch with equal spreads and n = 3 each: dof = 4, t = 20 / sqrt(26)
    assert code["t"] == pytest.approx(20 / math.sqrt(26)) and code["dof"] == pytest.approx(4.0)
    assert code["p"] == pytest.approx(0.01717, abs=1e-4) and code["n"] == [3, 3]
    assert code["conditions"] == ["vertex + code | h36m_like", "vertex | h36m_like"]
    assert "| no |" in claims_markdown(result) and "-1.1 mm" in claims_markdown(result)
    assert "| +3.92 | 4.0 | 0.017 | 3/3 | no |" in claims_markdown(result)

    def prior_helps(spec, cache_dir, progress=True):  # big, seed-independent gains
        out = fake_metrics(replace(spec, seed=0))
        bonus = 50.0 * (spec.use_code_loss + spec.init_from_vha + spec.use_vertex_loss)
        return {s: {k: (v - bonus + 0.1 * spec.seed if k != "num_frames" else v)
                    for k, v in m.items()} for s, m in out.items()}

    good = run_sweep("1", "tiny", [0, 1, 2], tmp_path / "g", None, prior_helps, progress=False)
    # full 177-150=27, vertex+pretrain 157-100=57, vertex 117-50=67, code+pretrain 167-100=67
    assert [c["kit"] for c in check_claims(good)] == pytest.approx([-30.0, -10.0, -40.0, -30.0])
    assert [c["verdict"] for c in check_claims(good)] == ["yes"] * 4
    one = run_sweep("1", "tiny", 1, tmp_path / "g", None, prior_helps, progress=False)
    first = check_claims(one)[0]  # one seed: no spread, no test
    assert first["verdict"] == "not shown" and first["n"] == [1, 1]
    assert all(math.isnan(first[k]) for k in ("se", "t", "dof", "p"))
    eff = run_sweep("efficiency", "tiny", 1, tmp_path, None, CountingRunner(), progress=False)
    # smallest fraction 0.03: vha_bcp 181 + 3 vs baseline 186 + 3 -> -5; gap at 100 %: -5 too.
    assert [c["kit"] for c in check_claims(eff)] == [pytest.approx(-5.0), pytest.approx(0.0)]


def test_figures_show_every_cell(tmp_path):
    from vhakit.experiments.plots import comparison_figure, efficiency_figure

    t2 = run_sweep("2", "tiny", 2, tmp_path, None, CountingRunner(), progress=False)
    fig = comparison_figure(t2)
    kit, paper = fig.axes[:2]
    assert len(kit.patches) == len(paper.patches) == 12
    heights = sorted(p.get_height() for p in kit.patches)
    assert heights == pytest.approx(sorted(e["mean"] for e in t2.summary
                                           if e["metric"] == "mpve_mm"))
    assert max(p.get_height() for p in paper.patches if not math.isnan(p.get_height())) == 42.7
    eff = run_sweep("efficiency", "tiny", 2, tmp_path, None, CountingRunner(), progress=False)
    containers = efficiency_figure(eff).axes[0].containers  # one errorbar per method
    assert [c.get_label() for c in containers] == ["baseline (LMT-style)", "VHA+BCP"]
    for container, method in zip(containers, ("baseline", "vha_bcp"), strict=True):
        line = container.lines[0]
        assert list(line.get_xdata()) == [3.0, 10.0, 30.0, 100.0]
        expected = [eff.value(container.get_label(), f"{f:g}")[0] for f in (0.03, 0.1, 0.3, 1.0)]
        assert list(line.get_ydata()) == pytest.approx(expected)
        assert method in {c.spec.method for c in eff.cells if c.row == container.get_label()}


def test_saved_results_of_other_fitting_settings_are_re_evaluated(tmp_path, monkeypatch):
    """A results JSON measured with other SMPL-fitting settings (another eval hash) must not seed
    the cache under the current settings' tag: those runs are evaluated again."""
    run_sweep("1", "tiny", 1, tmp_path / "old_cache", tmp_path / "res", CountingRunner(),
              progress=False)
    saved = json.loads((tmp_path / "res" / "table1.json").read_text())
    assert {r["eval"] for r in saved["runs"]} == {pipeline.eval_hash()}
    monkeypatch.setattr(pipeline, "PREDICTION_NOISE_STD_M", 0.05)
    runner = CountingRunner()
    load_or_run("1", "tiny", 1, tmp_path / "new_cache", tmp_path / "res", runner, progress=False)
    assert len(runner.calls) == 5


def test_committed_sweep_prefers_teaching_then_tiny(tmp_path):
    from vhakit.experiments.ablate import committed_sweep

    assert committed_sweep("2", tmp_path) == ("teaching", tmp_path / "results")  # nothing yet
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    (tmp_path / "results" / "tiny" / "table2.json").write_text("{}")
    assert committed_sweep("2", tmp_path) == ("tiny", tmp_path / "results" / "tiny")
    (tmp_path / "results" / "table2.json").write_text("{}")
    assert committed_sweep("2", tmp_path) == ("teaching", tmp_path / "results")
    assert committed_sweep("efficiency", tmp_path)[0] == "teaching"


def test_reloading_a_sweep_leaves_its_files_untouched(tmp_path):
    """Re-running a cached sweep (as notebook 08 does with the committed results) must not
    rewrite its files: only created_utc would change, and that would dirty a checkout."""
    res = tmp_path / "res"
    run_sweep("efficiency", "tiny", 1, tmp_path / "cache", res, CountingRunner(), progress=False)
    files = sorted(res.iterdir())
    assert {f.suffix for f in files} == {".md", ".csv", ".json", ".png"}
    before = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in files}
    stamp = json.loads((res / "data_efficiency.json").read_text())["created_utc"]
    for f in files:  # an old stamp, so that a rewrite within the same clock tick is still seen
        os.utime(f, ns=(1, 1))
    runner = CountingRunner()
    load_or_run("efficiency", "tiny", 1, tmp_path / "cache2", res, runner, progress=False)
    assert runner.calls == []
    assert all(f.stat().st_mtime_ns == 1 and f.read_bytes() == before[f][1] for f in files)
    assert json.loads((res / "data_efficiency.json").read_text())["created_utc"] == stamp
    run_sweep("efficiency", "tiny", 2, tmp_path / "cache", res, CountingRunner(), progress=False)
    assert all(f.stat().st_mtime_ns != 1 for f in files)  # new results: every file rewritten


def test_welch_contrast_equals_scipys_ttest_ind():
    """Two conditions: exactly Welch's two-sample test (scipy as the independent reference)."""
    from scipy import stats

    from vhakit.experiments.claims import welch_contrast

    a = np.array([101.3, 97.2, 104.8])
    b = np.array([92.0, 99.5, 94.1, 90.2, 96.6])
    ref = stats.ttest_ind(a, b, equal_var=False)
    got = welch_contrast((1, -1), (a.mean(), b.mean()), (a.std(ddof=1), b.std(ddof=1)),
                         (len(a), len(b)))
    assert got["estimate"] == pytest.approx(a.mean() - b.mean())
    assert got["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert got["dof"] == pytest.approx(ref.df, rel=1e-12)
    assert got["se"] == pytest.approx(math.sqrt(a.var(ddof=1) / 3 + b.var(ddof=1) / 5))
    assert math.isnan(welch_contrast((1, -1), (1.0, 2.0), (1.0, math.nan), (3, 1))["p"])


def test_welch_contrast_of_four_means_against_a_loop_reference():
    """A difference of gains: Welch-Satterthwaite degrees of freedom, written out naively; and
    two extra conditions measured almost exactly leave the two-sample test."""
    from scipy import stats

    from vhakit.experiments.claims import welch_contrast

    rng = np.random.default_rng(3)
    groups = [rng.normal(mu, sd, n) for mu, sd, n in ((20, 2, 3), (26, 4, 3), (22, 1, 5),
                                                        (23, 3, 4))]
    coefs = (1, -1, -1, 1)
    estimate, var, denom = 0.0, 0.0, 0.0
    for c, g in zip(coefs, groups, strict=True):
        term = c * c * g.var(ddof=1) / len(g)
        estimate += c * g.mean()
        var += term
        denom += term ** 2 / (len(g) - 1)
    dof = var ** 2 / denom
    t = estimate / math.sqrt(var)
    got = welch_contrast(coefs, [g.mean() for g in groups], [g.std(ddof=1) for g in groups],
                         [len(g) for g in groups])
    assert got["t"] == pytest.approx(t) and got["dof"] == pytest.approx(dof)
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert 2 < got["dof"] < 15  # between the smallest group's and the pooled dof
    a, b = groups[:2]
    near = welch_contrast(coefs, [a.mean(), b.mean(), 0.0, 0.0],
                          [a.std(ddof=1), b.std(ddof=1), 1e-9, 1e-9], [3, 3, 10**6, 10**6])
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert near["p"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert near["dof"] == pytest.approx(ref.df, rel=1e-6)


def test_two_standard_errors_with_three_seeds_is_not_shown(tmp_path):
    """A difference of 2.4 standard errors over 3 seeds per condition was "reproduced" under the
    2-s.e. rule; Welch's test (dof 4, p about 0.07) does not show it."""
    from scipy import stats

    from vhakit.experiments.claims import check_claims

    def noisy(spec, cache_dir, progress=True):  # spread 1 in every cell, seeds -1, 0, +1
        out = fake_metrics(replace(spec, seed=0))
        gain = 1.96 if spec.use_code_loss and not spec.init_from_vha else 0.0
        return {s: {k: (v - 20.0 * spec.use_code_loss - gain + (spec.seed - 1.0)
                        if k == "mpve_mm" else v) for k, v in m.items()}
                for s, m in out.items()}

    result = run_sweep("1", "tiny", 3, tmp_path, None, noisy, progress=False)
    claim = check_claims(result)[0]  # code loss helps: vertex + code < vertex
    assert claim["kit"] == pytest.approx(-1.96) and claim["se"] == pytest.approx(math.sqrt(2 / 3))
    assert -claim["kit"] > 2 * claim["se"]  # "yes" under the 2-s.e. rule
    values = {row: [r["metrics"]["h36m_like"]["mpve_mm"] for r in result.runs
                    if (r["spec"]["use_code_loss"], r["spec"]["init_from_vha"],
                        r["spec"]["use_vertex_loss"]) == sw]
              for row, sw in (("vertex + code", (True, False, True)),
                              ("vertex", (False, False, True)))}
    ref = stats.ttest_ind(values["vertex + code"], values["vertex"], equal_var=False)
    assert claim["p"] == pytest.approx(ref.pvalue) and claim["t"] == pytest.approx(ref.statistic)
    assert 0.05 < claim["p"] < 0.12 and claim["verdict"] == "not shown"


def test_every_claim_keeps_the_papers_direction():
    """Each claim says "< 0"; where the paper has numbers its own combination is negative."""
    from vhakit.experiments.claims import CLAIMS
    from vhakit.experiments.paper import paper_numbers

    checked = 0
    for table, claims in CLAIMS.items():
        for claim in claims:
            numbers = [paper_numbers(table, row, column) for _, row, column in claim.terms]
            if all(numbers):
                value = sum(c * n[claim.metric]
                            for (c, _, _), n in zip(claim.terms, numbers, strict=True))
                assert value < 0, claim.text
                checked += 1
    assert checked == 9  # Table 1's four, Table 2's five (real_mocap has no paper number)


def test_claims_rows_carry_the_test_in_json_and_markdown(tmp_path):
    res = tmp_path / "res"
    result = run_sweep("2", "tiny", 2, tmp_path / "c", res, CountingRunner(), progress=False)
    data = json.loads((res / "table2.json").read_text())
    assert data["protocol"] == ablate.PROTOCOL and data["vha_per_seed"] is True
    assert data["budget"]["epochs"] == 6.0 and data["budget"]["min_steps"] == 300
    assert len(data["claims"]) == 6
    for claim in data["claims"]:
        assert {"t", "dof", "p", "n", "verdict", "kit", "se"} <= set(claim)
        assert claim["verdict"] in ("yes", "no", "not shown")
    gain = data["claims"][2]  # a contrast of four means
    assert gain["n"] == [2, 2, 2, 2] and len(gain["conditions"]) == 4
    assert "| t | dof | p | n per condition |" in result.markdown
    assert "Welch" in result.markdown and "weak" not in result.markdown
    assert f"Protocol: {ablate.PROTOCOL}." in result.markdown


def test_more_seeds_train_only_the_new_ones(tmp_path):
    run_sweep("1", "tiny", 3, tmp_path, None, CountingRunner(), progress=False)
    more = CountingRunner()
    result = run_sweep("1", "tiny", 5, tmp_path, None, more, progress=False)
    assert sorted({s.seed for s in more.calls}) == [3, 4] and len(more.calls) == 10
    from vhakit.experiments.claims import check_claims

    assert all(c["n"] == [5, 5] for c in check_claims(result))
    assert result.value("vertex", "h36m_like")[2] == 5


def test_records_name_their_prior_and_the_markdown_shows_who_shares(tmp_path):
    per_seed = run_sweep("2", "tiny", 2, tmp_path, None, CountingRunner(), progress=False)
    assert all(c.spec.vha_per_seed for c in per_seed.cells)
    keys = {(r["spec"]["method"], r["spec"]["vha_prior"], r["spec"]["train_split"], r["seed"]):
            r["vha_key"] for r in per_seed.runs}
    assert keys[("vha_bcp", "pool", "h36m_like", 0)] == "tiny-pool-h36m_like-s0"
    assert keys[("vha_bcp", "pool", "h36m_like", 1)] == "tiny-pool-h36m_like-s1"
    assert keys[("baseline", "pool", "h36m_like", 1)] is None
    assert "| pool-h36m_like-s0/1 |" in per_seed.markdown
    assert "| train_only-lightstage_like-s0/1 |" in per_seed.markdown
    shared = run_sweep("2", "tiny", 2, tmp_path, None, CountingRunner(), progress=False,
                       vha_per_seed=False)
    assert not any(c.spec.vha_per_seed for c in shared.cells)
    assert {r["vha_key"] for r in shared.runs if r["spec"]["method"] == "vha_bcp"} == {
        f"tiny-{p}-{s}-s0" for p in ("pool", "train_only")
        for s in ("h36m_like", "lightstage_like")}
    assert "| pool-h36m_like-s0 (shared by 2 runs) |" in shared.markdown
    cells = json.loads(json.dumps(ablate_report_payload(shared)))["cells"]
    assert [r["vha_key"] for r in cells[-1]["runs"]] == ["tiny-pool-h36m_like-s0"] * 2


def ablate_report_payload(result):
    from vhakit.experiments.report import _json_payload

    return _json_payload(result)


def recording_runner(spec, cache_dir, progress=True):
    """Like run_experiment: stores a training record (steps by the tiny budget's rule) beside
    the metrics in the run's result.json."""
    frames = max(1, round(210 * spec.train_fraction))
    plan = pipeline.predictor_plan(spec, pipeline.get_budget(spec.preset), frames)
    path = Path(cache_dir) / pipeline.run_tag(spec) / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metrics": fake_metrics(spec),
                                "training": {"predictor": {"plan": plan}, "vha": None}}))
    return fake_metrics(spec)


def test_efficiency_rows_record_steps_epochs_and_samples(tmp_path):
    res = tmp_path / "res"
    result = run_sweep("efficiency", "tiny", 2, tmp_path / "c", res, recording_runner,
                       progress=False)
    data = json.loads((res / "data_efficiency.json").read_text())
    by_cell = {(c["row"], c["column"]): c["runs"] for c in data["cells"]}
    full, small = by_cell[("VHA+BCP", "1")], by_cell[("VHA+BCP", "0.03")]
    assert [(r["steps"], r["epochs"], r["samples"]) for r in full] == [(630, 6.0, 1260)] * 2
    assert [(r["steps"], r["epochs"], r["samples"]) for r in small] == [(300, 100.0, 600)] * 2
    assert [r["vha_key"] for r in small] == ["tiny-pool-h36m_like-f0.03-s0",
                                             "tiny-pool-h36m_like-f0.03-s1"]
    assert "| 630 (6 ep) | 630 (6 ep) |" in result.markdown
    assert "| 300 (100 ep) | 300 (100 ep) |" in result.markdown
    assert "max(6.0 epochs, 300 steps)" in result.markdown
    rows = list(csv.DictReader((res / "data_efficiency.csv").open()))
    row = next(r for r in rows if r["row"] == "VHA+BCP" and r["column"] == "0.03")
    assert (row["steps"], row["epochs"], row["samples"]) == ("300/300", "100/100", "600/600")


COMMITTED = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("table, stem", [("1", "table1"), ("2", "table2"),
                                         ("efficiency", "data_efficiency")])
def test_committed_tiny_sweeps_are_the_current_protocol_and_reload(tmp_path, table, stem):
    """results/tiny was re-run under the current protocol: it reloads without training or a
    protocol warning, with its numbers."""
    import warnings

    committed = COMMITTED / "tiny"
    saved = json.loads((committed / f"{stem}.json").read_text())
    assert saved["protocol"].startswith("v2") and saved["vha_per_seed"] is True
    res = tmp_path / "res"
    res.mkdir()
    for f in committed.glob(f"{stem}.*"):
        (res / f.name).write_bytes(f.read_bytes())
    runner = CountingRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = load_or_run(table, saved["preset"], len(saved["seeds"]), tmp_path / "cache",
                             res, runner, progress=False)
    assert runner.calls == []
    for entry in saved["summary"]:
        mean = result.value(entry["row"], entry["column"], entry["metric"])[0]
        assert mean == pytest.approx(entry["mean"], rel=1e-12)
    from vhakit.experiments.claims import check_claims

    assert [c["verdict"] for c in check_claims(result)] == [c["verdict"] for c in saved["claims"]]


@pytest.mark.parametrize("folder", [""])
@pytest.mark.parametrize("table, stem", [("1", "table1"), ("2", "table2"),
                                         ("efficiency", "data_efficiency")])
def test_committed_v1_sweeps_reload_as_saved(tmp_path, folder, table, stem):
    """The committed sweeps predate the current protocol: reloading them shows their numbers
    (no training, no file rewritten) under their v1 stamp, claims re-tested."""
    committed = COMMITTED / folder
    saved = json.loads((committed / f"{stem}.json").read_text())
    assert saved["protocol"].startswith("v1 (before issue-19 fixes")
    assert "protocol: v1" in (committed / f"{stem}.md").read_text()
    res = tmp_path / "res"
    res.mkdir()
    for f in committed.glob(f"{stem}.*"):
        (res / f.name).write_bytes(f.read_bytes())
    before = {f.name: f.read_bytes() for f in res.iterdir()}
    runner = CountingRunner()
    with pytest.warns(UserWarning, match="protocol"):
        result = load_or_run(table, saved["preset"], len(saved["seeds"]), tmp_path / "cache",
                             res, runner, progress=False)
    assert runner.calls == [] and not list((tmp_path / "cache").glob("*"))
    assert {f.name: f.read_bytes() for f in res.iterdir()} == before
    assert result.protocol == saved["protocol"] and "v1" in result.markdown
    for entry in saved["summary"]:
        mean = result.value(entry["row"], entry["column"], entry["metric"])[0]
        assert mean == pytest.approx(entry["mean"], rel=1e-12)
    assert "Welch" in result.markdown and "| reproduced? |" in result.markdown
    # a sweep the file does not hold (more seeds) runs afresh, none of its v1 runs reused
    fresh = CountingRunner()
    load_or_run(table, saved["preset"], 1, tmp_path / "cache", res, fresh, progress=False)
    assert len(fresh.calls) == len({c.spec for c in result.cells})
