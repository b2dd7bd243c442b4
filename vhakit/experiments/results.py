"""A sweep's results: the :class:`Cell` (one number group of a table), the run records of each
cell (:func:`cell_runs`), and the protocol that result files are stamped with. Shared by the
sweeps (``ablate``) and the reports (``report``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from vhakit.experiments.pipeline import ExperimentSpec

__all__ = ["PROTOCOL", "PROTOCOL_V1", "Cell", "cell_runs"]


#: The experiment protocol result files are stamped with: how verdicts, priors and budgets work.
PROTOCOL = ("v2: Welch t-test verdicts (two-sided, p < 0.05), one VHA prior per seed, priors "
            "see only the labelled frames their BCP sees, budgets in epochs with a step floor")
#: The stamp of result files that predate :data:`PROTOCOL`.
PROTOCOL_V1 = "v1 (before issue-19 fixes: metre vertex loss, 2-s.e. verdicts, shared priors)"


@dataclass(frozen=True)
class Cell:
    """One number group of a table: ``spec`` (``seed=0``; the sweep sets the seeds) evaluated on
    ``test_split``, shown at (``row``, ``column``)."""

    row: str
    column: str
    spec: ExperimentSpec
    test_split: str


def cell_runs(cells: list[Cell], runs: list[dict]) -> list[list[dict]]:
    """For each cell, the run records of its spec (any seed), sorted by seed."""
    by_template: dict[ExperimentSpec, list[dict]] = {}
    for run in runs:
        template = replace(ExperimentSpec(**{**run["spec"],
                                             "test_splits": tuple(run["spec"]["test_splits"])}),
                           seed=0)
        by_template.setdefault(template, []).append(run)
    return [sorted(by_template.get(cell.spec, []), key=lambda r: r["seed"]) for cell in cells]
