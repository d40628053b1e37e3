"""Keyword-judge throughput on one core, against the 2,000 replies/s goal of issue 15.

Judges every reply of the shipped validation corpus (dev + test, ~2,400 real-shaped assistant
replies from 5 words to ~350) `--rounds` times in one process, single-threaded, and prints
replies per second and the ratio to the goal (> 1.0 meets it). Each reply is judged with its
request, as the suites judge them (the request is read when a decline follows an answer). The
judge is pure Python and regular expressions, so one process uses one core.

    python benchmarks/bench_judge.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_PER_SECOND = 2000.0


def main() -> None:
    from cardgen.judges import KeywordJudge
    from cardgen.validity import SHIPPED_DEV, SHIPPED_TEST, load_labelled

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    pairs = [(r.reply, r.request) for p in (SHIPPED_DEV, SHIPPED_TEST)
             for r in load_labelled(p).replies]  # fmt: skip
    replies = [reply for reply, _ in pairs]
    judge = KeywordJudge()
    judge.judge(*pairs[0])  # compile the patterns outside the timing
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for text, request in pairs:
            judge.judge(text, request)
    seconds = time.perf_counter() - t0
    rate = len(replies) * args.rounds / seconds
    words = sum(len(r.split()) for r in replies) / len(replies)
    print(f"{len(replies)} replies (mean {words:.0f} words) x {args.rounds} rounds in "
          f"{seconds:.2f} s: {rate:,.0f} replies/s on one core")  # fmt: skip
    print(f"ratio to the {GOAL_PER_SECOND:,.0f} replies/s goal: {rate / GOAL_PER_SECOND:.2f}x")


if __name__ == "__main__":
    main()
