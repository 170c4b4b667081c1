"""The numbers the paper (and later work) reports, and tables that put ours beside them.

The constants are those of docs/method.md §12; they are never computed, only displayed
next to what this project measures. Keys follow ``mom.metrics``:
``recall@1`` ... ``recall@8`` and ``nmi``, in percent.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["TABLE1", "LATER_LABEL_FREE_R1", "ABLATION_CLAIM", "TABLE1_COLUMNS",
           "table1_rows", "format_table"]

TABLE1_COLUMNS = ("recall@1", "recall@2", "recall@4", "recall@8", "nmi")

# Table 1 of the paper, CUB-200-2011, GoogLeNet, 64-d (as quoted by later papers)
TABLE1: dict[str, dict[str, float]] = {
    "MoM (paper)": {"recall@1": 45.3, "recall@2": 57.8, "recall@4": 68.6,
                    "recall@8": 78.4, "nmi": 55.0},
    # cyclic match, also label-free; the paper quotes no NMI for it
    "Cyclic match (paper)": {"recall@1": 40.8, "recall@2": 52.8, "recall@4": 65.1,
                             "recall@8": 76.0},
}

# Later label-free methods, CUB Recall@1 (GoogLeNet unless noted)
LATER_LABEL_FREE_R1: dict[str, float] = {
    "ISIF": 46.0, "PSLR": 48.0, "UDML-SS": 54.7, "STML (512-d)": 60.6,
}

ABLATION_CLAIM = ("Stationary-distribution anchors clearly beat random anchors, "
                  "and P+/P- clearly beat Euclidean pools (paper, anchor ablation).")


def table1_rows(ours: Mapping[str, Mapping[str, Any]], *, paper: bool = True,
                columns: Sequence[str] = TABLE1_COLUMNS) -> list[dict[str, Any]]:
    """Rows ``{"method", "source", <columns>...}`` for our methods then the paper's.

    ``ours`` maps a method name (e.g. ``"initial"``, ``"euclidean"``, ``"mom"``)
    to a metrics dict as returned by ``mom.metrics.evaluate_embeddings``;
    missing metrics become NaN (shown as a blank), never 0.
    """
    rows = []
    for name, metrics in ours.items():
        rows.append({"method": name, "source": "ours",
                     **{c: _as_float(metrics.get(c)) for c in columns}})
    if paper:
        for name, metrics in TABLE1.items():
            rows.append({"method": name, "source": "paper",
                         **{c: _as_float(metrics.get(c)) for c in columns}})
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = TABLE1_COLUMNS,
                 label: str = "method", digits: int = 1) -> str:
    """A Markdown table of ``rows``; NaN or missing cells are left blank."""
    head = [label, *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row.get(label, ""))]
        for c in columns:
            v = row.get(c)
            if isinstance(v, (int, np.integer)):
                cells.append(str(v))
            elif isinstance(v, (float, np.floating)) and not math.isnan(v):
                cells.append(f"{v:.{digits}f}")
            else:
                cells.append("" if v is None or isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _as_float(v: Any) -> float:
    return float("nan") if v is None else float(v)
