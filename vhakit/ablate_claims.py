"""The paper's claims as checkable statements about a sweep: did each ordering reproduce?

A claim is a signed combination of table cells that the paper says is negative, e.g. "MPVE of
the full model minus MPVE of vertex-loss-only < 0". For the kit's sweep it reports the
combination's mean, its standard error over seeds (``sqrt(sum c² std² / n)``) and a verdict:

* ``yes``: negative by more than two standard errors;
* ``weak``: negative, but within two standard errors (or one seed: no error estimate);
* ``no``: zero or positive (the ordering did not appear);
* ``n/a``: no numbers (stand-in or missing runs).

The paper's value of the same combination is shown beside it (from its Tables 1 and 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vhakit.ablate_report import paper_numbers

__all__ = ["Claim", "CLAIMS", "check_claims", "claims_markdown"]

BASE, ONLY, POOL = ("baseline (LMT-style)", "VHA+BCP, prior: train split only",
                    "VHA+BCP, prior: + prior_pool")
IN, SMALL, CROSS_LS, CROSS_REAL = ("in-domain", "small data", "cross -> lightstage_like",
                                   "cross -> real_mocap")


@dataclass(frozen=True)
class Claim:
    """``sum(coef * metric(row, column)) < 0`` according to the paper; ``terms`` hold
    ``(coef, row, column)``; ``column`` ``None`` in the efficiency table means the smallest and
    ``"max"`` the largest training fraction."""

    text: str
    terms: tuple[tuple[float, str, str | None], ...]
    metric: str = "mpve_mm"


T1 = "h36m_like"
CLAIMS: dict[str, tuple[Claim, ...]] = {
    "1": (
        Claim("code loss helps (vertex + code < vertex)",
              ((1, "vertex + code", T1), (-1, "vertex", T1))),
        Claim("pretrained weights help (vertex + pretrain < vertex)",
              ((1, "vertex + pretrain", T1), (-1, "vertex", T1))),
        Claim("vertex loss helps (vertex + code + pretrain < code + pretrain)",
              ((1, "vertex + code + pretrain", T1), (-1, "code + pretrain", T1))),
        Claim("the full model beats the runner-up (vertex + code + pretrain < vertex + pretrain)",
              ((1, "vertex + code + pretrain", T1), (-1, "vertex + pretrain", T1))),
    ),
    "2": (
        Claim("in-domain: VHA+BCP < baseline", ((1, POOL, IN), (-1, BASE, IN))),
        Claim("small data: VHA+BCP < baseline", ((1, POOL, SMALL), (-1, BASE, SMALL))),
        Claim("the gain is larger on small data than in-domain",
              ((1, POOL, SMALL), (-1, BASE, SMALL), (-1, POOL, IN), (1, BASE, IN))),
        Claim("cross-dataset (lightstage_like): VHA+BCP < baseline",
              ((1, POOL, CROSS_LS), (-1, BASE, CROSS_LS))),
        Claim("cross-dataset (lightstage_like): prior_pool helps (pool < train split only)",
              ((1, POOL, CROSS_LS), (-1, ONLY, CROSS_LS))),
        Claim("cross-dataset (real_mocap): VHA+BCP < baseline (no paper number)",
              ((1, POOL, CROSS_REAL), (-1, BASE, CROSS_REAL))),
    ),
    "efficiency": (
        Claim("smallest training set: VHA+BCP < baseline",
              ((1, "VHA+BCP", None), (-1, "baseline (LMT-style)", None))),
        Claim("the gain grows as the training set shrinks (gap at smallest < gap at 100 %)",
              ((1, "VHA+BCP", None), (-1, "baseline (LMT-style)", None),
               (-1, "VHA+BCP", "max"), (1, "baseline (LMT-style)", "max"))),
    ),
}


def _column(result, column):
    if column not in (None, "max"):
        return column
    fractions = sorted({c.column for c in result.cells}, key=float)
    return fractions[0] if column is None else fractions[-1]


def check_claims(result) -> list[dict]:
    """Each claim of ``result.table``: ``text``, ``kit`` (mean of the combination, mm or deg),
    ``se``, ``n`` (fewest seeds of a term), ``paper`` (None where the paper has no number) and
    ``verdict`` (``yes`` / ``weak`` / ``no`` / ``n/a``)."""
    out = []
    for claim in CLAIMS[result.table]:
        kit, var, n, paper = 0.0, 0.0, math.inf, 0.0
        for coef, row, column in claim.terms:
            column = _column(result, column)
            mean, std, count = result.value(row, column, claim.metric)
            kit += coef * mean
            var += coef ** 2 * (std ** 2 / count if count > 1 else math.nan)
            n = min(n, count)
            numbers = paper_numbers(result.table, row, column)
            paper = paper + coef * numbers[claim.metric] if (numbers and paper is not None) \
                else None
        se = math.sqrt(var) if not math.isnan(var) else math.nan
        if math.isnan(kit):
            verdict = "n/a"
        elif kit >= 0:
            verdict = "no"
        elif not math.isnan(se) and -kit > 2 * se:
            verdict = "yes"
        else:
            verdict = "weak"
        out.append({"text": claim.text, "metric": claim.metric, "kit": kit, "se": se,
                    "n": int(n), "paper": paper, "verdict": verdict})
    return out


def claims_markdown(result) -> str:
    """The claims as a markdown table (negative = the ordering the paper reports)."""
    lines = ["| paper's claim | kit: difference (± s.e.) | paper: difference | reproduced? |",
             "|---|---|---|---|"]
    for c in check_claims(result):
        unit = "deg" if c["metric"] == "angle_deg" else "mm"
        paper = "—" if c["paper"] is None else f"{c['paper']:+.1f} {unit}"
        if math.isnan(c["kit"]):
            kit = "n/a"
        elif math.isnan(c["se"]):
            kit = f"{c['kit']:+.1f} {unit}"
        else:
            kit = f"{c['kit']:+.1f} ± {c['se']:.1f} {unit}"
        lines.append(f"| {c['text']} | {kit} | {paper} | {c['verdict']} |")
    metric = CLAIMS[result.table][0].metric
    return "\n".join(lines) + (f"\n\nDifferences of {metric}; negative means the paper's ordering. "
                               "yes: by more than 2 standard errors over seeds; weak: within "
                               "them (or one seed); no: the ordering did not appear.\n")
