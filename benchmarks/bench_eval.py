"""`cardgen eval` overhead over bare lm-eval, and endpoint concurrency speed-up.

Measured in one run on the same tiny model, packs and settings:

1. cardgen eval's wall time over the bare `lm_eval` CLI (goal <= 1.10x). Both run as fresh
   processes (imports included) on the `hf` backend with the same materialised task folder, chat
   template, generation length and the same generation + margin tasks; lm_eval with
   `--log_samples`, as cardgen runs it (mean metrics need no bootstrap either way). cardgen
   additionally fingerprints the
   model, caches every response and judges the samples: that is the overhead measured.
2. Endpoint throughput at concurrency 8 over concurrency 1 (goal >= 5x), through cardgen's
   `local-completions` path against `cardgen.demo.server` serving the same model with 50 ms added
   per request.

    python benchmarks/bench_eval.py [--limit 40] [--packs harmful,overrefusal]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"command failed: {' '.join(cmd[:4])}...")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--limit", type=int, default=40, help="probes per pack")
    ap.add_argument("--packs", default="harmful,overrefusal")
    ap.add_argument("--max-gen-toks", type=int, default=32)
    ap.add_argument("--endpoint-probes", type=int, default=48)
    args = ap.parse_args()

    from cardgen.demo.tiny import build_tiny_checkpoint
    from cardgen.suites import load_suite, materialize

    tmp = Path(tempfile.mkdtemp(prefix="cardgen-bench-eval-"))
    model = build_tiny_checkpoint(tmp / "model", seed=0)
    packs = args.packs.split(",")
    suite = load_suite(packs)
    tasks_dir = materialize(suite, tmp / "tasks")
    tasks = [p.task for p in suite.packs] + [t for p in suite.packs if (t := p.margin_task)]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }

    lm_eval_cmd = [
        str(BIN / "lm_eval"), "run", "--model", "hf",
        "--model_args", f"pretrained={model},dtype=float32", "--device", "cpu",
        "--tasks", ",".join(tasks), "--include_path", str(tasks_dir),
        "--apply_chat_template", "--batch_size", "8", "--limit", str(args.limit),
        "--gen_kwargs", f"max_gen_toks={args.max_gen_toks}",
        "--log_samples", "--output_path", str(tmp / "lm_eval_out"), "--seed", "1234",
    ]  # fmt: skip
    cardgen_cmd = [
        str(BIN / "cardgen"), "eval", str(model), "--suite", args.packs,
        "--limit", str(args.limit), "--max-gen-toks", str(args.max_gen_toks),
        "--batch-size", "8", "--out", str(tmp / "run.json"),
    ]  # fmt: skip
    # Warm the OS caches (Python bytecode, the model file) once for both, then alternate.
    _timed(lm_eval_cmd, env)
    bare, ours = [], []
    for i in range(2):
        bare.append(_timed(lm_eval_cmd, env))
        cardgen_cmd[-1] = str(tmp / f"run{i}.json")  # fresh cache: every model call is made
        ours.append(_timed(cardgen_cmd, env))
    print(f"packs {args.packs}, {args.limit} probes each, {args.max_gen_toks} new tokens, hf")
    print(f"bare lm_eval CLI: {min(bare):.2f} s (runs: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"cardgen eval:     {min(ours):.2f} s (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    ratio = min(ours) / min(bare)
    print(f"RATIO cardgen eval / bare lm_eval wall time: {ratio:.2f}x (goal <= 1.10)")

    from cardgen.evalrun import Decoding
    from cardgen.evaluate import ModelTarget, evaluate
    from cardgen.judges import CanaryJudge, KeywordJudge

    class PhaseClock:
        """Time spent with model requests in flight (first request sent to last answer)."""

        def __init__(self) -> None:
            self.total, self.started, self.left = 0.0, 0.0, 0

        def stage(self, text: str) -> None:
            return None

        def requests_started(self, method: str, total: int) -> None:
            self.started, self.left = time.perf_counter(), total

        def requests_done(self, n: int) -> None:
            self.left -= n
            if self.left == 0:
                self.total += time.perf_counter() - self.started

    endpoint_suite = load_suite(["harmful"])
    times, walls = {}, {}
    # The endpoint is its own process, as a real deployment is: no GIL shared with the client.
    server = subprocess.Popen(
        [sys.executable, "-m", "cardgen.demo.server", str(model), "--port", "0",
         "--latency-ms", "50", "--name", "tiny"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]  # "serving 'tiny' at http://127.0.0.1:N/v1"
        for conc in (1, 8):
            target = ModelTarget(
                endpoint=url, api="completions", endpoint_model="tiny",
                tokenizer=str(model), num_concurrent=conc, max_retries=2,
            )  # fmt: skip
            clock = PhaseClock()
            t0 = time.perf_counter()
            evaluate(
                target, endpoint_suite, [KeywordJudge(), CanaryJudge()],
                Decoding(max_gen_toks=args.max_gen_toks, limit=args.endpoint_probes),
                workdir=tmp / f"endpoint-c{conc}", progress=clock,
            )  # fmt: skip
            walls[conc] = time.perf_counter() - t0
            times[conc] = clock.total
    finally:
        server.terminate()
        server.wait(timeout=30)
    n = args.endpoint_probes
    print(f"endpoint (50 ms added per request), {n} generations + {2 * n} margin scorings:")
    print(f"requests in flight: concurrency 1: {times[1]:.2f} s; concurrency 8: {times[8]:.2f} s")
    print(f"whole evaluate() incl. fixed setup: {walls[1]:.2f} s vs {walls[8]:.2f} s")
    print(f"RATIO throughput concurrency 8 / concurrency 1: {times[1] / times[8]:.2f}x (goal >= 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
