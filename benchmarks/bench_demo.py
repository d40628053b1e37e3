"""`cardgen demo` from nothing and again, against the 10-minute budget of issue 9.

Runs, in one go, with an empty family cache (CARDGEN_CACHE in a temp dir) and an empty output:

1. `cardgen demo --out DIR`: trains the demo family, then runs the whole job for base -> tuned and
   base -> tuned-mixed (evaluations, comparison, gate, evidence, card, both PDF editions, ML-BOM,
   signed attestation) and verifies both bundles;
2. the same command again: everything reused.

Prints both wall times and the first's ratio to the 600 s budget (< 1.0 meets it). The package
install (`make setup`) is not included: time it on a fresh clone with `.ci/run`.

    python benchmarks/bench_demo.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 600.0


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return wall, res.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="Work here instead of a throwaway directory.")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="cardgen-bench-demo-"))
    env = {**os.environ, "CARDGEN_CACHE": str(root / "cache")}
    cmd = [sys.executable, "-m", "cardgen", "demo", "--out", str(root / "demo-out")]
    first, log = timed(cmd, env)
    stages = [line.strip() for line in log.splitlines() if "✓" in line]
    second, log2 = timed(cmd, env)
    reused = sum(line.strip().endswith("reused") for line in log2.splitlines() if "✓" in line)
    print(f"first run (train + 2 pipelines + verify): {first:.1f} s  ({len(stages)} stages)")
    print(f"rerun: {second:.1f} s  ({reused} stages reused)")
    print(f"ratio vs the {BUDGET_SECONDS:.0f} s budget: {first / BUDGET_SECONDS:.2f}x "
          f"({'meets' if first < BUDGET_SECONDS else 'misses'} it)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
