"""The paper's ablations as sweeps: Table 1, Table 2 and a data-efficiency curve.

A *table* is a list of :class:`Cell` s (row, column, the run's spec without a seed, the test split
read). A sweep trains and evaluates every distinct spec once per seed through a *runner* (by
default :func:`vhakit.experiments.pipeline.run_experiment`), caches each run, and reports mean ± std over
the seeds beside the paper's numbers::

    from vhakit.experiments.ablate import run_sweep
    result = run_sweep("1", preset="teaching", seeds=3, cache_dir="runs/cache",
                       results_dir="results")          # writes results/table1.{md,csv,json}
    print(result.markdown)

The same from a shell: ``vhakit ablate --table 1|2|efficiency [--preset teaching] [--seeds 3]
[--cache runs/cache] [--results results]`` (``VHAKIT_FAST=1``: defaults ``--preset tiny --seeds
1``, the pipeline's seconds-long budgets; see :func:`default_results_dir`: only the teaching
sweep writes the committed ``results/``).

Caching: run ``spec`` is stored as ``cache_dir/<spec.key()>/result.json`` (written atomically,
so an interrupted sweep continues where it stopped and a finished run returns instantly). The
runner gets the same ``cache_dir`` and reuses what runs share there: data sets, the VHA, and
trained predictors, which are keyed without the test splits (``ExperimentSpec.model_key``), so
Table 1's full row, Table 2's in-domain and cross-dataset row with the pool prior and the
efficiency curve's 100 % point are one training per seed.

Priors: every table trains one VHA per seed by default (``vha_per_seed=True``): every BCP row
decodes through its prior's frozen decoder, so each claim is about a prior, and the seed spread
must include the prior's own variance. Records name their prior (``vha_key``); rows with the same
key share one trained VHA. A prior sees only the labelled frames its BCP sees (the curve's
subset), plus ``prior_pool`` (:func:`vhakit.experiments.pipeline.vha_training_sets`).

Seeds: ``seeds=5`` (or ``--seeds 5``) after a 3-seed sweep trains only seeds 3 and 4; the claims'
Welch tests (:mod:`vhakit.experiments.claims`) use however many seeds each condition has.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from vhakit._util import write_json_atomic
from vhakit.experiments import pipeline
from vhakit.experiments.pipeline import METRIC_NAMES, ExperimentSpec
from vhakit.experiments.results import PROTOCOL, PROTOCOL_V1, Cell, cell_runs

__all__ = ["TABLES", "EFFICIENCY_FRACTIONS", "Cell", "SweepResult", "table_cells", "sweep_specs",
           "run_cached", "run_sweep", "summarize", "load_results", "load_or_run", "cached_runs", "resolve_seeds", "default_results_dir",
           "COMMITTED_SWEEPS", "committed_sweep", "PROTOCOL", "sweep_from_saved",
           "cell_runs"]

#: Table names accepted by :func:`table_cells` and the CLI (``vhakit ablate --table``).
TABLES = ("1", "2", "efficiency")
#: Fractions of the training set of the data-efficiency curve (100/30/10/3 %).
EFFICIENCY_FRACTIONS = (1.0, 0.3, 0.1, 0.03)
#: Table 1's rows (paper, Sec. 3.3): (use_vertex_loss, use_code_loss, init_from_vha).
TABLE1_SWITCHES = ((True, False, False), (True, True, False), (True, False, True),
                   (False, True, True), (True, True, True))
H36M, LIGHTSTAGE, REAL = "h36m_like", "lightstage_like", "real_mocap"
#: Table 2's columns: name -> (train split, test split).
TABLE2_COLUMNS = {"in-domain": (H36M, H36M), "small data": (LIGHTSTAGE, LIGHTSTAGE),
                  "cross -> lightstage_like": (H36M, LIGHTSTAGE),
                  "cross -> real_mocap": (H36M, REAL)}
#: Table 2's rows: name -> spec fields (the baseline keeps the BCP-only fields at defaults).
TABLE2_ROWS = {"baseline (LMT-style)": {"method": "baseline"},
               "VHA+BCP, prior: train split only": {"method": "vha_bcp", "vha_prior": "train_only"},
               "VHA+BCP, prior: + prior_pool": {"method": "vha_bcp", "vha_prior": "pool"}}
EFFICIENCY_ROWS = {"baseline (LMT-style)": "baseline", "VHA+BCP": "vha_bcp"}
RESULT_FILE = "result.json"
RECORD_VERSION = 2


def table1_label(vertex: bool, code: bool, pretrain: bool) -> str:
    """Row name of Table 1, e.g. ``"vertex + code + pretrain"``."""
    parts = [name for name, on in (("vertex", vertex), ("code", code), ("pretrain", pretrain))
             if on]
    return " + ".join(parts)


def table_cells(table: str, preset: str, fractions=EFFICIENCY_FRACTIONS,
                vha_per_seed: bool = True) -> list[Cell]:
    """The cells of ``table`` (``"1"``, ``"2"`` or ``"efficiency"``) for ``preset``; every spec
    has ``vha_per_seed`` (see :class:`~vhakit.experiments.pipeline.ExperimentSpec`).

    Table 1: five BCP variants trained and tested on ``h36m_like``. Table 2: baseline and VHA+BCP
    (prior with and without ``prior_pool``) in-domain, on small data (``lightstage_like``) and
    across data sets (trained on ``h36m_like``, tested on ``lightstage_like`` and ``real_mocap``;
    one run per row serves the in-domain and both cross columns). Efficiency: BCP vs the baseline
    on ``h36m_like`` for each fraction of the training set.
    """
    table = str(table)
    if table == "1":
        return [Cell(table1_label(*sw), H36M, ExperimentSpec(
            method="vha_bcp", preset=preset, train_split=H36M, test_splits=(H36M,),
            use_vertex_loss=sw[0], use_code_loss=sw[1], init_from_vha=sw[2],
            vha_per_seed=vha_per_seed), H36M)
            for sw in TABLE1_SWITCHES]
    if table == "2":
        tests = {train: tuple(dict.fromkeys(t for tr, t in TABLE2_COLUMNS.values() if tr == train))
                 for train, _ in TABLE2_COLUMNS.values()}
        return [Cell(row, column, ExperimentSpec(preset=preset, train_split=train,
                                                 test_splits=tests[train],
                                                 vha_per_seed=vha_per_seed, **fields_),
                     test)
                for row, fields_ in TABLE2_ROWS.items()
                for column, (train, test) in TABLE2_COLUMNS.items()]
    if table == "efficiency":
        if not fractions:
            raise ValueError("fractions must list at least one training-set fraction")
        return [Cell(row, f"{fraction:g}", ExperimentSpec(
            method=method, preset=preset, train_split=H36M, train_fraction=float(fraction),
            test_splits=(H36M,), vha_per_seed=vha_per_seed), H36M)
            for row, method in EFFICIENCY_ROWS.items() for fraction in fractions]
    raise ValueError(f"table must be one of {TABLES}, got {table!r}")


def resolve_seeds(seeds) -> tuple[int, ...]:
    """``3`` -> ``(0, 1, 2)``; a sequence of ints is kept (duplicates dropped)."""
    if isinstance(seeds, bool):
        raise TypeError(f"seeds must be an int or a sequence of ints, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (number of seeds), got {seeds}")
        return tuple(range(seeds))
    out = tuple(dict.fromkeys(int(s) for s in seeds))
    if not out:
        raise ValueError("seeds must name at least one seed")
    return out


def sweep_specs(cells: list[Cell], seeds) -> list[ExperimentSpec]:
    """The distinct runs of ``cells``: every distinct spec once per seed, seed-major (a sweep
    stopped early has complete tables for its first seeds)."""
    templates = list(dict.fromkeys(cell.spec for cell in cells))
    return [replace(spec, seed=seed) for seed in resolve_seeds(seeds) for spec in templates]


def _check_metrics(spec: ExperimentSpec, metrics) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(f"the runner must return a dict per test split, got {type(metrics)}")
    out = {}
    for split in spec.test_splits:
        if split not in metrics:
            raise ValueError(f"the runner's result for {spec} has no test split {split!r} "
                             f"(got {sorted(metrics)})")
        missing = [m for m in (*METRIC_NAMES, "num_frames") if m not in metrics[split]]
        if missing:
            raise ValueError(f"the runner's metrics for split {split!r} miss {missing}")
        out[split] = {name: float(value) for name, value in metrics[split].items()}
    return out


def _fast() -> bool:
    # The pipeline's own switch: it tags fast-mode runs "fast-" (seconds-long budgets).
    return bool(pipeline.fast_mode())


def result_path(spec: ExperimentSpec, cache_dir) -> Path:
    """Where ``spec``'s record is cached: ``cache_dir/<pipeline.run_tag(spec)>/result.json``
    (``fast-`` prefixed under ``VHAKIT_FAST=1``; the tag ends with the preset's recipe hash, so a
    changed preset never reuses stale runs; the same folder as ``run_experiment``'s own result,
    whose extra fields are kept)."""
    return Path(cache_dir) / pipeline.run_tag(spec) / RESULT_FILE


def spec_dict(spec: ExperimentSpec) -> dict:
    """``spec`` as its JSON form (``test_splits`` a list), as stored in records."""
    return json.loads(json.dumps(asdict(spec)))


def _read_record(path: Path, spec: ExperimentSpec) -> dict | None:
    """The cached record at ``path`` if it is a complete record of ``spec``, else None."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or record.get("version") != RECORD_VERSION
            or record.get("spec") != spec_dict(spec)):
        return None
    try:
        record["metrics"] = _check_metrics(spec, record.get("metrics"))
    except (TypeError, ValueError):
        return None
    return record


def default_results_dir(preset: str) -> Path:
    """Where a sweep's files go by default (relative to the repository root): ``results`` for the
    teaching preset (committed), ``runs/results/<preset>`` for others and
    ``runs/results/fast-<preset>`` under ``VHAKIT_FAST=1``, so smoke tests never overwrite the
    committed tables."""
    if _fast():
        return Path("runs/results") / f"fast-{preset}"
    return Path("results") if preset == "teaching" else Path("runs/results") / preset


#: Committed sweeps, most representative first: the teaching preset's in ``results/``, the tiny
#: preset's in ``results/tiny``.
COMMITTED_SWEEPS = (("teaching", Path("results")), ("tiny", Path("results/tiny")))


def committed_sweep(table: str, root=".") -> tuple[str, Path]:
    """``(preset, results_dir)`` of the committed sweep of ``table`` a notebook should show:
    the first of :data:`COMMITTED_SWEEPS` whose JSON exists under ``root`` (the repository root),
    else the teaching preset's folder (where a new sweep would go)."""
    from vhakit.experiments.report import result_stem

    for preset, folder in COMMITTED_SWEEPS:
        if (Path(root) / folder / f"{result_stem(table)}.json").exists():
            return preset, Path(root) / folder
    return COMMITTED_SWEEPS[0][0], Path(root) / COMMITTED_SWEEPS[0][1]


def run_cached(spec: ExperimentSpec, cache_dir, runner=None, progress: bool = True) -> dict:
    """Run ``spec`` through ``runner`` unless ``cache_dir/<spec.key()>/result.json`` holds it.

    ``runner`` None: :func:`vhakit.experiments.pipeline.run_experiment`. Returns the record ``{"key", "seed",
    "spec", "vha_key", "metrics", "seconds", "cached", "finished_utc", "version"}``
    plus what the runner stored beside its metrics (``run_experiment``: ``model`` and
    ``training``, the steps, epochs and samples each stage trained); ``metrics`` is
    ``{test_split: {metric: float}}``; ``vha_key`` names the prior (None for the baseline).
    """
    cache_dir = Path(cache_dir)
    path = result_path(spec, cache_dir)
    record = _read_record(path, spec)
    if record is not None:  # its folder's tag carries the evaluation's hash
        return {**record, "eval": pipeline.eval_hash(), "cached": True}
    runner = runner or pipeline.run_experiment
    start = time.perf_counter()
    metrics = _check_metrics(spec, runner(spec, cache_dir, progress=progress))
    record = {"version": RECORD_VERSION, "key": spec.key(), "seed": spec.seed,
              "spec": spec_dict(spec), "vha_key": pipeline.vha_key(spec), "metrics": metrics,
              "eval": pipeline.eval_hash(),
              "seconds": round(time.perf_counter() - start, 3), "fast": _fast(),
              "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:  # keep what the runner stored beside its metrics (e.g. its model folder)
        extra = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        extra = {}
    extra = extra if isinstance(extra, dict) else {}
    record = {**extra, **record}
    write_json_atomic(path, record)
    return {**record, "cached": False}


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(cells: list[Cell], runs: list[dict]) -> list[dict]:
    """Mean ± std over seeds: one entry per (cell, metric) with ``row``, ``column``,
    ``test_split``, ``metric``, ``mean``, ``std``, ``n``, ``values`` and ``seeds``."""
    out = []
    for cell, matching in zip(cells, cell_runs(cells, runs), strict=True):
        for metric in (*METRIC_NAMES, "num_frames"):
            values = [r["metrics"][cell.test_split][metric] for r in matching]
            mean, std = _mean_std(values)
            out.append({"row": cell.row, "column": cell.column, "test_split": cell.test_split,
                        "metric": metric, "mean": mean, "std": std, "n": len(values),
                        "values": values, "seeds": [r["seed"] for r in matching]})
    return out


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the cells, every run (with seed, spec, metrics), the summary,
    whether fast-mode budgets were used, the rendered markdown and the files written.

    ``protocol``: :data:`PROTOCOL`, or the stamp of a saved sweep made under an older one
    (:func:`sweep_from_saved`); ``budget``: the pipeline's :class:`~vhakit.experiments.pipeline.Budget` of
    the preset as a dict (None where not recorded); ``vha_per_seed``: the tables' prior option.
    """

    table: str
    preset: str
    seeds: tuple[int, ...]
    cells: list[Cell]
    runs: list[dict]
    summary: list[dict]
    fast: bool = False
    markdown: str = ""
    paths: dict[str, Path] = field(default_factory=dict)
    protocol: str = PROTOCOL
    budget: dict | None = None
    vha_per_seed: bool | None = True

    def value(self, row: str, column: str, metric: str = "mpve_mm") -> tuple[float, float, int]:
        """``(mean, std, n)`` of ``metric`` at (``row``, ``column``)."""
        for entry in self.summary:
            if (entry["row"], entry["column"], entry["metric"]) == (row, column, metric):
                return entry["mean"], entry["std"], entry["n"]
        raise KeyError(f"no cell ({row!r}, {column!r}, {metric!r}) in table {self.table}")


def run_sweep(table: str, preset: str = "teaching", seeds=3, cache_dir="runs/cache",
              results_dir="results", runner=None, progress: bool = True, *,
              fractions=EFFICIENCY_FRACTIONS, vha_per_seed: bool = True) -> SweepResult:
    """Run (or load from the cache) every run of ``table`` and write the result files.

    Args:
        table: ``"1"``, ``"2"`` or ``"efficiency"``.
        preset: ``"tiny"`` (CI, minutes), ``"teaching"`` (2-core CPU) or ``"paper"``.
        seeds: number of seeds (``3`` -> 0, 1, 2) or a sequence of seeds.
        cache_dir: the run cache, shared with the runner (keep one per machine).
        results_dir: where ``table1.*`` / ``table2.*`` / ``data_efficiency.*`` go (None: no files).
        runner: ``runner(spec, cache_dir, progress=...) -> {split: {metric: value}}``;
            None: :func:`vhakit.experiments.pipeline.run_experiment` (looked up at call time).
        fractions: training-set fractions of the efficiency curve.
        vha_per_seed: one VHA per seed (default; False: every seed shares the seed-0 prior).
    A runner's exception propagates; the runs finished before it stay cached.
    """
    from vhakit.experiments.report import render_markdown, write_results

    runner = runner or pipeline.run_experiment
    cells = table_cells(table, preset, fractions, vha_per_seed)
    specs = sweep_specs(cells, seeds)
    runs = []
    for i, spec in enumerate(specs, 1):
        if progress:
            print(f"[{i}/{len(specs)}] table {table}, {spec.method}, seed {spec.seed}, "
                  f"run {spec.key()} ...", flush=True)
        record = run_cached(spec, cache_dir, runner, progress)
        if progress:
            how = "cached" if record["cached"] else f"{record['seconds']:.1f} s"
            print(f"[{i}/{len(specs)}] done ({how})", flush=True)
        runs.append(record)
    result = SweepResult(str(table), preset, resolve_seeds(seeds), cells, runs,
                         summarize(cells, runs), fast=any(r.get("fast") for r in runs),
                         budget=asdict(pipeline.get_budget(preset)), vha_per_seed=vha_per_seed)
    result.markdown = render_markdown(result)
    if results_dir is not None:
        result.paths = write_results(result, Path(results_dir))
    return result


def cached_runs(cache_dir, **match) -> list[dict]:
    """Every cached run record under ``cache_dir`` whose spec fields equal ``match`` (of the
    current mode: fast-mode runs only under ``VHAKIT_FAST=1``)."""
    out = []
    for path in sorted(Path(cache_dir).glob(f"*/{RESULT_FILE}")):  # fast- runs included
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        spec = record.get("spec") if isinstance(record, dict) else None
        if (isinstance(spec, dict) and record.get("version") == RECORD_VERSION
                and bool(record.get("fast")) == _fast()
                and all(spec.get(k) == (list(v) if isinstance(v, tuple) else v)
                        for k, v in match.items())):
            out.append(record)
    return out


def load_results(table: str, results_dir) -> dict | None:
    """The JSON written by :func:`run_sweep` for ``table`` (None when absent)."""
    from vhakit.experiments.report import result_stem

    path = Path(results_dir) / f"{result_stem(table)}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def sweep_from_saved(saved: dict) -> SweepResult:
    """A :class:`SweepResult` of the sweep a results JSON holds, as it was saved: its cells,
    runs and protocol stamp, summary and claims recomputed from its runs; nothing is trained or
    written (``paths`` empty)."""
    from vhakit.experiments.report import render_markdown

    cells = [Cell(c["row"], c["column"], ExperimentSpec(**c["spec"]), c["test_split"])
             for c in saved["cells"]]
    runs = [{**r, "cached": True} for r in saved["runs"]]
    result = SweepResult(saved["table"], saved["preset"], tuple(saved["seeds"]), cells, runs,
                         summarize(cells, runs), fast=bool(saved.get("fast")),
                         protocol=saved.get("protocol") or PROTOCOL_V1,
                         budget=saved.get("budget"), vha_per_seed=saved.get("vha_per_seed"))
    result.markdown = render_markdown(result)
    return result


def _saved_covers(saved: dict, table: str, preset: str, seeds, fractions) -> bool:
    """True when ``saved`` holds the sweep of ``table`` / ``preset`` / ``seeds`` (and, for the
    curve, ``fractions``)."""
    if (saved.get("table") != str(table) or saved.get("preset") != preset
            or sorted(saved.get("seeds", [])) != sorted(resolve_seeds(seeds))):
        return False
    if str(table) == "efficiency":
        saved_fractions = {float(c["column"]) for c in saved.get("cells", [])}
        return saved_fractions == {float(f) for f in fractions}
    return True


def load_or_run(table: str, preset: str, seeds, cache_dir, results_dir, runner=None,
                progress: bool = True, *, fractions=EFFICIENCY_FRACTIONS,
                vha_per_seed: bool = True) -> SweepResult:
    """For notebooks: seed the run cache from ``results_dir``'s JSON (e.g. the committed teaching
    sweep) so its runs are not retrained, then :func:`run_sweep` (``runner`` default:
    :func:`vhakit.experiments.pipeline.run_experiment`).

    A JSON made under another protocol than :data:`PROTOCOL` (e.g. the committed v1 sweeps)
    is shown as it was saved (:func:`sweep_from_saved`, claims tested as today) when it holds
    the requested sweep, with a warning; its runs never seed the cache, so a sweep it does not
    hold is run afresh under the current protocol."""
    saved = load_results(table, results_dir) or {}
    if saved and saved.get("protocol") != PROTOCOL:
        if (bool(saved.get("fast")) == _fast()
                and _saved_covers(saved, table, preset, seeds, fractions)):
            warnings.warn(f"{results_dir}: table {table} was made under protocol "
                          f"{saved.get('protocol') or PROTOCOL_V1!r}, not the current one; "
                          "showing its saved numbers (re-run the sweep for current ones)",
                          stacklevel=2)
            return sweep_from_saved(saved)
        saved = {}
    for record in saved.get("runs", []):
        if record.get("version") != RECORD_VERSION:
            continue
        if bool(record.get("fast")) != _fast() or record.get("eval") != pipeline.eval_hash():
            continue  # measured with other fitting settings: re-evaluated, not reused
        path = result_path(ExperimentSpec(**record["spec"]), cache_dir)
        if not path.exists():
            write_json_atomic(path, {k: v for k, v in record.items() if k != "cached"})
    return run_sweep(table, preset, seeds, cache_dir, results_dir, runner, progress,
                     fractions=fractions, vha_per_seed=vha_per_seed)
