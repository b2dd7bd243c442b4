"""Figures of the ablation sweeps (matplotlib ``Figure`` objects, no pyplot state): the
data-efficiency curve and the kit's numbers beside the paper's."""
from __future__ import annotations

import math

from vhakit.experiments.paper import HEADERS, paper_numbers

__all__ = ["efficiency_figure", "comparison_figure"]


def efficiency_figure(result, metric: str = "mpve_mm"):
    """A matplotlib ``Figure``: ``metric`` (mean ± std over seeds) vs training-set fraction."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=100)
    ax = fig.add_subplot()
    for row in dict.fromkeys(c.row for c in result.cells):
        entries = sorted((e for e in result.summary if e["row"] == row and e["metric"] == metric),
                         key=lambda e: float(e["column"]))
        x = [float(e["column"]) * 100 for e in entries]
        y = [e["mean"] for e in entries]
        err = [0.0 if math.isnan(e["std"]) else e["std"] for e in entries]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=row)
    ax.set_xscale("log")
    ticks = sorted({float(c.column) * 100 for c in result.cells})
    ax.set_xticks(ticks, [f"{t:g} %" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training set used (%)")
    ax.set_ylabel(HEADERS.get(metric, metric))
    label = " (VHAKIT_FAST: smoke test)" if result.fast else ""
    ax.set_title(f"Data efficiency, preset {result.preset}, {len(result.seeds)} seed(s){label}",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig



def comparison_figure(result, metric: str = "mpve_mm"):
    """Two bar charts side by side: the kit's ``metric`` (mean ± std over seeds) and the paper's,
    grouped by table column, one bar per row. Compare the orderings, not the values."""
    from matplotlib.figure import Figure

    rows = list(dict.fromkeys(c.row for c in result.cells))
    columns = list(dict.fromkeys(c.column for c in result.cells))
    look = {(e["row"], e["column"]): e for e in result.summary if e["metric"] == metric}
    fig = Figure(figsize=(11, 3.8), dpi=100)
    width = 0.8 / len(rows)
    for k, source in enumerate(("kit", "paper")):
        ax = fig.add_subplot(1, 2, k + 1)
        for i, row in enumerate(rows):
            x = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(columns))]
            if source == "kit":
                y = [look[(row, col)]["mean"] for col in columns]
                err = [0.0 if math.isnan(look[(row, col)]["std"]) else look[(row, col)]["std"]
                       for col in columns]
            else:
                numbers = [paper_numbers(result.table, row, col) for col in columns]
                y = [n[metric] if n and metric in n else math.nan for n in numbers]
                err = None
            ax.bar(x, y, width, yerr=err, capsize=2, label=row)
        ax.set_xticks(range(len(columns)), [c.replace(" -> ", "\n→ ") for c in columns],
                      fontsize=8)
        ax.set_ylabel(HEADERS.get(metric, metric))
        title = (f"kit ({result.preset}, {len(result.seeds)} seed(s))" if source == "kit"
                 else "paper (real data, GPU)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
