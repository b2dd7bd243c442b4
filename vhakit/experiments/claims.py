"""The paper's claims as checkable statements about a sweep: did each ordering reproduce?

A claim is a linear contrast of table cells that the paper says is negative, e.g. "MPVE of the
full model minus MPVE of vertex-loss-only < 0": ``L = sum_i c_i mean_i`` over conditions i
(cells), each with its own runs (seeds). It is tested with Welch's t-test, which does not assume
equal variances:

* ``v_i = c_i^2 s_i^2 / n_i`` (``s_i``: sample std over the ``n_i`` seeds of condition i),
  ``se = sqrt(sum v_i)``, ``t = L / se``;
* Welch–Satterthwaite degrees of freedom ``dof = (sum v_i)^2 / sum(v_i^2 / (n_i - 1))``;
* ``p = 2 P(T_dof > |t|)``, two-sided.

For a difference of two means (``c = (1, -1)``) this is Welch's two-sample test, exactly
``scipy.stats.ttest_ind(a, b, equal_var=False)``; for more terms (a difference of gains) the same
formulas give the contrast's test. Verdicts:

* ``yes``: p < 0.05 and ``L < 0`` (the paper's ordering);
* ``no``: p < 0.05 and ``L > 0`` (the opposite ordering);
* ``not shown``: p >= 0.05, or a condition with fewer than 2 seeds or zero spread (no test);
* ``n/a``: no numbers (missing runs).

With 3 seeds per condition a two-mean claim needs ``|t| > 2.78`` (dof 4) and with 5 seeds
``|t| > 2.31`` (dof 8): "more than 2 standard errors" is not enough. Runs of one seed in two
conditions may share a prior (``vha_key``); Welch treats conditions as independent, which for
positively correlated runs overstates the variance of a difference (a conservative test).

The paper's value of the same combination is shown beside it (from its Tables 1 and 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vhakit._util import markdown_table
from vhakit.experiments.paper import paper_numbers

__all__ = ["Claim", "CLAIMS", "ALPHA", "VERDICTS", "welch_contrast", "check_claims",
           "claims_markdown", "fmt_p", "fmt_num"]

#: Significance level of the verdicts (two-sided).
ALPHA = 0.05
#: The verdict words, in the order the markdown note explains them.
VERDICTS = ("yes", "no", "not shown", "n/a")

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


def welch_contrast(coefs, means, stds, ns) -> dict:
    """Welch's t-test of ``H0: sum c_i mu_i = 0`` from independent conditions' summaries.

    Args:
        coefs: the contrast's coefficients ``c_i`` (one per condition).
        means, stds, ns: each condition's mean, sample std (n - 1) and number of runs.
    Returns:
        ``{"estimate": L, "se", "t", "dof", "p"}`` (module docstring); ``se``, ``t``, ``dof`` and
        ``p`` are NaN when a condition has fewer than 2 runs or every condition has zero spread.

    >>> r = welch_contrast((1, -1), (2.0, 4.0), (1.0, 1.0), (3, 3))
    >>> round(r["t"], 3), round(r["dof"], 3)
    (-2.449, 4.0)
    """
    from scipy import stats

    terms = list(zip(coefs, means, stds, ns, strict=True))
    estimate = sum(c * m for c, m, _, _ in terms)
    nan = {"estimate": estimate, "se": math.nan, "t": math.nan, "dof": math.nan, "p": math.nan}
    if any(n < 2 or math.isnan(sd) for _, _, sd, n in terms):
        return nan
    v = [c ** 2 * sd ** 2 / n for c, _, sd, n in terms]  # each term's share of the variance
    var = sum(v)
    if math.isnan(estimate) or var == 0.0:
        return nan
    dof = var ** 2 / sum(vi ** 2 / (n - 1) for vi, (_, _, _, n) in zip(v, terms, strict=True)
                         if vi > 0)
    t = estimate / math.sqrt(var)
    return {"estimate": estimate, "se": math.sqrt(var), "t": t, "dof": dof,
            "p": float(2 * stats.t.sf(abs(t), dof))}


def _verdict(test: dict) -> str:
    if math.isnan(test["estimate"]):
        return "n/a"
    if math.isnan(test["p"]) or test["p"] >= ALPHA:
        return "not shown"
    return "yes" if test["estimate"] < 0 else "no"


def _merged_terms(result, claim: Claim) -> list[tuple[float, str, str]]:
    """The claim's terms with columns resolved and repeated cells summed (a one-fraction curve
    makes "smallest" and "largest" the same cell), zero coefficients dropped."""
    coefs: dict[tuple[str, str], float] = {}
    for coef, row, column in claim.terms:
        key = (row, _column(result, column))
        coefs[key] = coefs.get(key, 0.0) + coef
    return [(c, row, column) for (row, column), c in coefs.items() if c != 0]


def check_claims(result) -> list[dict]:
    """Each claim of ``result.table`` tested with :func:`welch_contrast`: ``text``, ``metric``,
    ``kit`` (the contrast's mean, mm or deg; negative = the paper's ordering), ``se``, ``t``,
    ``dof``, ``p``, ``n`` (seeds per condition, in ``conditions`` order), ``conditions``
    (``"row | column"``), ``paper`` (None where the paper has no number) and ``verdict``
    (:data:`VERDICTS`)."""
    out = []
    for claim in CLAIMS[result.table]:
        terms = _merged_terms(result, claim)
        stats_ = [result.value(row, column, claim.metric) for _, row, column in terms]
        test = welch_contrast([c for c, _, _ in terms], [m for m, _, _ in stats_],
                              [sd for _, sd, _ in stats_], [n for _, _, n in stats_])
        paper = 0.0
        for coef, row, column in terms:
            numbers = paper_numbers(result.table, row, column)
            paper = paper + coef * numbers[claim.metric] if (numbers and paper is not None) \
                else None
        out.append({"text": claim.text, "metric": claim.metric,
                    "kit": test["estimate"] if terms else math.nan,
                    "se": test["se"], "t": test["t"], "dof": test["dof"], "p": test["p"],
                    "n": [int(n) for _, _, n in stats_],
                    "conditions": [f"{row} | {column}" for _, row, column in terms],
                    "paper": paper if terms else None,
                    "verdict": _verdict(test) if terms else "n/a"})
    return out


def fmt_num(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or a dash for None or NaN."""
    return "—" if value is None or math.isnan(value) else format(value, spec)


def fmt_p(p: float) -> str:
    """``"0.012"``, ``"<0.001"`` or ``"—"`` (no test)."""
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def claims_markdown(result) -> str:
    """The claims as a markdown table (negative = the ordering the paper reports) with each
    Welch test's t, degrees of freedom, p and seeds per condition."""
    header = ["paper's claim", "kit: difference (± s.e.)", "paper: difference", "t", "dof", "p",
              "n per condition", "reproduced?"]
    rows = []
    for c in check_claims(result):
        unit = "deg" if c["metric"] == "angle_deg" else "mm"
        paper = "—" if c["paper"] is None else f"{c['paper']:+.1f} {unit}"
        if math.isnan(c["kit"]):
            kit = "n/a"
        elif math.isnan(c["se"]):
            kit = f"{c['kit']:+.1f} {unit}"
        else:
            kit = f"{c['kit']:+.1f} ± {c['se']:.1f} {unit}"
        n = "/".join(map(str, c["n"])) or "—"
        rows.append([c["text"], kit, paper, fmt_num(c["t"], "+.2f"), fmt_num(c["dof"], ".1f"),
                     fmt_p(c["p"]), n, c["verdict"]])
    metric = CLAIMS[result.table][0].metric
    return markdown_table(header, rows) + (
        f"\n\nDifferences of {metric}; negative means the paper's ordering. Welch's t-test over "
        "seeds, two-sided (Welch–Satterthwaite degrees of freedom): yes: p < 0.05 in the "
        "paper's direction; no: p < 0.05 against it; not shown: p ≥ 0.05 (or fewer than 2 "
        "seeds per condition).\n")
