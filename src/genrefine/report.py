"""Typed results of a comparison: every method's scores with their floors, the ranking on
held-out data, and the method to use.

    >>> report = genrefine.compare(gen, data, methods=["rejection", "laser"])
    >>> report.recommended, report.scores["laser"]["energy"].value
    >>> print(report.summary()); json.dump(report.to_dict(), fh)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from genrefine.checkpoint import jsonable


@dataclass(frozen=True)
class Score:
    """One score of one method: its ``value``, the same score between two independent truth
    samples of the same size (``floor``: what a perfect generator would get), and that size."""

    value: float
    floor: float | None
    n: int

    @classmethod
    def from_dict(cls, d: dict) -> "Score":
        floor = d.get("floor")
        return cls(float(d["value"]), None if floor is None else float(floor), int(d.get("n", 0)))


@dataclass
class Report:
    """What :func:`genrefine.compare` found.

    Attributes:
        methods: the methods compared, ``"base"`` first.
        scores: ``{method: {score name: Score}}`` on the held-out truth.
        key: the score the ranking uses (lower is better; an AUC ranks by its distance from 0.5).
        ranking: the methods, best first, by ``key``.
        recommended: the method to use: the best-ranked one that hands back a generator (``"base"`` when
            nothing beat it; weighted-only methods such as ``dctr`` are ranked, never recommended).
        ranking_detail: :func:`~genrefine.metrics.rank_methods`' record (values, floors, share
            of the base's gap to the floor each method closes).
        generators: ``{method: Generator}`` for every method that delivers one: refined
            generators, a :class:`~genrefine.refine.SampledGenerator` for each sampler method,
            the base as ``"base"``.
        samples: ``{method: (n, D) array}`` the scores were computed on.
        diagnostics, timings: what the run recorded (weights' ESS, acceptance, seconds).
    """

    methods: list[str]
    scores: dict[str, dict[str, Score]]
    key: str
    ranking: list[str]
    recommended: str
    ranking_detail: dict = field(default_factory=dict)
    generators: dict[str, object] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def gap_closed(self, method: str) -> float | None:
        """The share of the base's distance to its floor that ``method`` closes on ``key``
        (1: at the floor; negative: worse than the base), from :func:`~genrefine.metrics.rank_methods`."""
        for row in self.ranking_detail.get("ranking", []):
            if row["method"] == method:
                return row.get("gap_closed")
        return None

    def to_dict(self) -> dict:
        """JSON-ready: scores, ranking, recommendation, diagnostics and timings (no arrays)."""
        return {"methods": self.methods, "key": self.key, "ranking": self.ranking, "recommended": self.recommended,
                "scores": {m: {k: {"value": s.value, "floor": s.floor, "n": s.n} for k, s in sc.items()}
                           for m, sc in self.scores.items()},
                "gap_closed": {m: self.gap_closed(m) for m in self.methods},
                "diagnostics": jsonable(self.diagnostics), "timings": jsonable(self.timings)}

    def summary(self) -> str:
        """A table a person reads: each score per method, the floor row, the ranking."""
        names = sorted({k for sc in self.scores.values() for k in sc})
        rows = [("method", *names)]
        for m in self.ranking:
            rows.append((m, *(_fmt(self.scores[m].get(k)) for k in names)))
        first = self.scores[self.methods[0]]
        rows.append(("truth floor", *(_fmt(first.get(k), floor=True) for k in names)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"ranked by {self.key} on held-out truth; use: {self.recommended}")
        tied = self.ranking_detail.get("at_floor") or []
        if len(tied) >= 2:
            lines.append(f"at the truth floor, so in an order that is noise: {', '.join(tied)}")
        return "\n".join(lines)


def _fmt(s: Score | None, floor: bool = False) -> str:
    if s is None:
        return "-"
    v = s.floor if floor else s.value
    return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"
