"""Statistics for small samples, where honesty about uncertainty matters most.

Wilson intervals come from scipy. Cohen's and Fleiss' kappa are written out here (a few lines
each, checked against published worked examples in the tests) rather than pulling statsmodels in
for two formulas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from cardgen._model import Contract


class Interval(Contract):
    """A proportion with its 95% interval."""

    successes: int
    n: int
    rate: float | None
    low: float | None
    high: float | None
    method: str = "wilson"


def pct(x: float | None) -> str:
    """A proportion as a percentage with one decimal, or 'n/a' when it is undefined."""
    return "n/a" if x is None else f"{x * 100:.1f}%"


def interval_text(iv: Interval | None) -> str:
    """A rate with its interval, in percent: '57.0% [50.7, 63.1]', or 'n/a'."""
    if iv is None or iv.rate is None:
        return "n/a"
    return f"{iv.rate * 100:.1f}% [{(iv.low or 0) * 100:.1f}, {(iv.high or 0) * 100:.1f}]"


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for `successes` out of `n`; rate and bounds are None when n == 0."""
    if n == 0:
        return Interval(successes=0, n=0, rate=None, low=None, high=None)
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside 0..{n}")
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(
        successes=successes,
        n=n,
        rate=successes / n,
        low=max(0.0, float(ci.low)),
        high=min(1.0, float(ci.high)),
    )


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa between two raters' labels for the same items.

    None when there are no items, or when chance agreement is 1 (both raters always gave the same
    single label: agreement is perfect but kappa is undefined).
    """
    if len(a) != len(b):
        raise ValueError("raters labelled different numbers of items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa for items each rated by the same number m >= 2 of raters (e.g. repeats).

    None when there are no items, fewer than two ratings per item, or every rating is the same
    label (chance agreement 1).
    """
    items = [list(r) for r in ratings if len(r) > 0]
    if not items:
        return None
    m = len(items[0])
    if m < 2 or any(len(r) != m for r in items):
        return None
    n = len(items)
    totals: Counter[Hashable] = Counter()
    p_i_sum = 0.0
    for r in items:
        counts = Counter(r)
        totals.update(counts)
        p_i_sum += (sum(c * c for c in counts.values()) - m) / (m * (m - 1))
    p_bar = p_i_sum / n
    p_e = sum((t / (n * m)) ** 2 for t in totals.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    if not a:
        return None
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
