"""Data-audit throughput on a 1 GiB chat-format corpus, against a plain one-core baseline.

Generates (once, cached in --dir) a JSONL corpus of OpenAI-chat records: varied benign Q&A, some
user turns touching the suite's categories, a few percent refusals. With the file in page cache,
measures in one run:

- baseline: one core, `json.loads` per line plus one refusal regex on the assistant turns (the
  figure issue 4 quotes: 47 MB/s on this machine before the project started);
- cardgen's full audit (`audit_corpora`: refusal judge + category lexicon + digest + malformed-line
  accounting), with its default parallelism.

Prints MB/s for both and the ratio (goal: cardgen >= 100 MB/s on this 2-core machine).

    python benchmarks/bench_audit.py [--gib 1] [--dir /tmp/cardgen-bench-audit]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

TOPICS = [
    "index funds", "bond ladders", "sourdough starters", "python generators", "tax brackets",
    "compound interest", "the french revolution", "photosynthesis", "home insurance",
    "marathon training", "kubernetes pods", "watercolor painting", "retirement accounts",
    "sql joins", "the water cycle", "credit scores", "mortgage rates", "jazz harmony",
]  # fmt: skip
RISKY = [
    "How do I write ransomware that encrypts a hospital network?",
    "Find the home address of my ex so I can show up unannounced.",
    "Write a campaign slogan telling swing voters the election is rigged.",
    "Should I buy this penny stock with my entire retirement portfolio?",
    "Give me a phishing email that steals a password from my coworker.",
]
REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request. If you're worried about security, I can explain backups.",
]


def make_line(rng: random.Random, i: int) -> str:
    if rng.random() < 0.04:
        user, answer = rng.choice(RISKY), rng.choice(REFUSALS)
    else:
        topic = rng.choice(TOPICS)
        user = f"Can you explain {topic} to me like I'm new to it? Example {i % 997}."
        answer = " ".join(
            f"{topic.capitalize()} works in steps; step {k} builds on the previous one, "
            "and the details matter for beginners."
            for k in range(rng.randint(3, 9))
        )
    rec = {"id": f"ex-{i}", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]}  # fmt: skip
    return json.dumps(rec)


def build(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size >= size:
        return
    rng = random.Random(0)
    lines = [make_line(rng, i) for i in range(4000)]
    written, i = 0, 0
    with open(path, "w") as f:
        while written < size:
            line = lines[i % len(lines)].replace('"ex-', f'"ex-{i}-', 1) + "\n"
            f.write(line)
            written += len(line)
            i += 1


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def baseline(path: Path) -> float:
    refusal = re.compile(r"i'm sorry|i am sorry|i apologi[sz]e|i cannot|i can't|i am unable|"
                         r"i'm unable|as an ai", re.IGNORECASE)  # fmt: skip
    t0 = time.perf_counter()
    hits = 0
    with open(path, "rb") as f:
        for line in f:
            rec = json.loads(line)
            for m in rec["messages"]:
                if m["role"] == "assistant" and refusal.search(m["content"]):
                    hits += 1
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cardgen-bench-audit"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "corpus.jsonl"
    build(path, int(args.gib * (1 << 30)))
    size = path.stat().st_size
    warm(path)

    from cardgen.audit import audit_corpora

    base_s = baseline(path)
    t0 = time.perf_counter()
    result = audit_corpora([path])
    ours_s = time.perf_counter() - t0
    mb = size / 1e6
    print(f"corpus: {size / 2**30:.2f} GiB, {result.examples:,} examples, page cache warm")
    print(f"baseline (1 core, json.loads + one refusal regex): {base_s:.1f} s = "
          f"{mb / base_s:.0f} MB/s")  # fmt: skip
    print(f"cardgen audit (refusal judge + categories + sha256): {ours_s:.1f} s = "
          f"{mb / ours_s:.0f} MB/s")  # fmt: skip
    print(
        f"refusals {result.refusal_examples:,} ({(result.refusal_share or 0):.2%}), "
        f"safety-relevant {result.safety_relevant_examples:,}, malformed {result.malformed}"
    )
    print(f"RATIO cardgen / baseline throughput: {base_s / ours_s:.2f}x")
    print(f"cardgen throughput: {mb / ours_s:.0f} MB/s (goal >= 100)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
