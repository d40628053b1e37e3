"""The evidence pack's charts, drawn with matplotlib and returned as SVG text.

    >>> svg = rates_chart([RateRow("harmful", base, tuned)])                # doctest: +SKIP

Pure: data in, SVG out; no pyplot state, no files. Labels can come from user suites, so every
label goes through `_label`, which stops matplotlib reading ``$...$`` as mathtext. Text stays text
in the SVG (``svg.fonttype: none``, XML-escaped by matplotlib), and the output is deterministic
(fixed hash salt, no date), so the same evidence draws the same bytes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

from cardgen.stats import Interval

P = ParamSpec("P")

BASE_COLOR = "#8c8c8c"
TUNED_COLOR = "#c0392b"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "cardgen",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class RateRow:
    label: str
    base: Interval | None
    tuned: Interval | None


@dataclass(frozen=True)
class DiffRow:
    label: str
    difference: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairRow:
    label: str
    base: float | None
    tuned: float | None


def _label(text: str, limit: int = 40) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()


def _styled(draw: Callable[P, str]) -> Callable[P, str]:
    """Draw under cardgen's style without touching the caller's matplotlib settings."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        import matplotlib

        with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
            return draw(*args, **kwargs)

    return wrapper


def _figure(rows: int, width: float = 6.3) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(1.2, 0.32 * rows + 0.8)))
    return fig, fig.add_subplot()


def _points(iv: Interval | None) -> tuple[float, float, float]:
    if iv is None or iv.rate is None:
        return float("nan"), 0.0, 0.0
    low, high = iv.low or 0.0, iv.high or 0.0
    return iv.rate * 100, (iv.rate - low) * 100, (high - iv.rate) * 100


def _paired_bars(
    ax: Any,
    labels: Sequence[str],
    values: dict[str, list[float]],
    errors: dict[str, list[list[float]]] | None = None,
) -> None:
    """For each label, top to bottom: the base's bar above the tuned model's; ticks, legend."""
    h, n = 0.38, len(labels)
    for offset, color, name in ((h / 2, BASE_COLOR, "base"), (-h / 2, TUNED_COLOR, "tuned")):
        kw: dict[str, Any] = {}
        if errors is not None:
            kw = {"xerr": errors[name], "error_kw": {"elinewidth": 0.8, "capsize": 2}}
        ax.barh([n - 1 - i + offset for i in range(n)], values[name], height=h, color=color,
                label=name, **kw)  # fmt: skip
    ax.set_yticks(range(n), [_label(label) for label in reversed(labels)])
    ax.legend(loc="lower left", bbox_to_anchor=(1.0, 0.0), frameon=False)


@_styled
def rates_chart(rows: Sequence[RateRow], title: str = "Unsafe rate, base vs tuned") -> str:
    """Horizontal bars of both models' unsafe rates with their Wilson 95% intervals."""
    fig, ax = _figure(len(rows))
    pts = {name: [_points(getattr(r, name)) for r in rows] for name in ("base", "tuned")}
    _paired_bars(
        ax, [r.label for r in rows],
        {name: [p[0] for p in ps] for name, ps in pts.items()},
        {name: [[p[1] for p in ps], [p[2] for p in ps]] for name, ps in pts.items()},
    )  # fmt: skip
    ax.set_xlim(0, 100)
    ax.set_xlabel("unsafe rate, % (lower is better; bars are 95% Wilson intervals)")
    ax.set_title(_label(title, 80), loc="left")
    return _svg(fig)


@_styled
def difference_chart(rows: Sequence[DiffRow], title: str) -> str:
    """A forest plot: change of the unsafe rate in points with its paired bootstrap interval."""
    fig, ax = _figure(len(rows))
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        if r.difference is None:
            continue
        d = r.difference * 100
        lo = (r.low if r.low is not None else r.difference) * 100
        hi = (r.high if r.high is not None else r.difference) * 100
        color = TUNED_COLOR if d > 0 else ("#27ae60" if d < 0 else BASE_COLOR)
        ax.plot([lo, hi], [y, y], color=color, linewidth=1.2)
        ax.plot([d], [y], "o", color=color, markersize=4)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(range(len(rows)), [_label(r.label) for r in reversed(rows)])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("change of the unsafe rate, points (tuned - base; > 0 is a regression)")
    ax.set_title(_label(title, 80), loc="left")
    return _svg(fig)


@_styled
def pair_chart(rows: Sequence[PairRow], title: str, xlabel: str) -> str:
    """Base and tuned values side by side (refusal margins, run-to-run consistency)."""
    fig, ax = _figure(len(rows))
    nan = float("nan")
    _paired_bars(ax, [r.label for r in rows], {
        name: [nan if (v := getattr(r, name)) is None else v for r in rows]
        for name in ("base", "tuned")
    })  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(_label(title, 80), loc="left")
    return _svg(fig)


@_styled
def lineage_diagram(base: str | None, corpora: Sequence[str], tuned: str, relation: str) -> str:
    """Boxes and arrows: base model and training corpora -> (relation) -> the tuned checkpoint."""
    fig, ax = _figure(0, width=6.3)
    fig.set_size_inches(6.3, 1.2 + 0.35 * max(1, len(corpora)))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    box = {"boxstyle": "round,pad=0.4", "facecolor": "#f4f4f4", "edgecolor": "#555555"}
    ax.text(0.82, 0.5, _label(tuned, 60), ha="center", va="center", wrap=True,
            bbox={**box, "facecolor": "#fdecea"})  # fmt: skip
    sources = [("base model", base)] if base else []
    sources += [("training data", c) for c in corpora]
    for i, (kind, text) in enumerate(sources or [("source", "not recorded")]):
        y = 1 - (i + 0.5) / max(1, len(sources))
        ax.annotate(
            f"{kind}\n{_label(text, 50)}", xy=(0.62, 0.5), xytext=(0.2, y), ha="center",
            va="center", bbox=box, arrowprops={"arrowstyle": "->", "color": "#555555"},
        )  # fmt: skip
    ax.text(0.5, 0.02, _label(relation, 40), ha="center", va="bottom", style="italic")
    return _svg(fig)
