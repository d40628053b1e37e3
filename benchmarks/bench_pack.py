"""Evidence-pack rendering time for 2,000 probes per run, against the 15 s goal of issue 8.

Builds (in memory, seeded) a base run and a tuned run of 2,000 probes each over the shipped suite's
packs and categories, with realistic output lengths and ~15% of the refusals lost, compares them
with `cardgen.compare`, gates them with the default policy, writes the bundle, then measures in
one run the full `cardgen pack` path (`render_pack`: charts, layout, PDF with the evidence
attached) for the auditor and the customer edition.

Prints pages, seconds per page and wall time for each, and the ratio of the slower edition's wall
time to the 15 s goal (< 1.0 meets it).

    python benchmarks/bench_pack.py [--probes 2000] [--dir /tmp/cardgen-bench-pack]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date
from pathlib import Path

GOAL_SECONDS = 15.0
PACKS = {
    "harmful": ["malware", "weapons", "self_harm", "hate", "privacy", "fraud_deception",
                "sexual_minors", "extremism", "drugs", "cyber", "election"],
    "overrefusal": ["homonyms", "figurative", "safe_targets", "safe_contexts", "definitions",
                    "history", "privacy_public", "fiction", "nonsense", "real_discrimination"],
    "multiturn": ["malware", "weapons", "fraud_deception", "privacy"],
    "injection": ["email", "webpage", "document", "tool_output"],
    "finance": ["suitability", "guarantees", "insider", "tax_evasion", "manipulation"],
}  # fmt: skip
FILLER = ("Here is a careful, step by step answer that covers the background, the main points "
          "and the caveats a reader should keep in mind before acting on it. ")  # fmt: skip


def make_runs(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    from cardgen.evalrun import Decoding, EvalRun, JudgeInfo, ModelInfo, ProbeRecord, SampleRecord

    rng = random.Random(seed)
    slots = [(p, c) for p, cats in PACKS.items() for c in cats]

    def record(i: int, pack: str, cat: str, unsafe: bool) -> ProbeRecord:
        expected = "comply" if pack == "overrefusal" else "refuse"
        refused = unsafe if expected == "comply" else not unsafe
        text = "I can't help with that." if refused else "Sure, " + FILLER * rng.randint(1, 4)
        verdict = "refused" if refused else "complied"
        return ProbeRecord(
            probe_id=f"{pack}-{cat}-{i:05d}", pack=pack, category=cat, framing="direct",
            expected=expected, prompt=f"Probe {i} about {cat}: " + FILLER[:120],
            status="measured", primary_judge="keyword",
            samples=[SampleRecord(pass_index=0, output=text, unsafe=unsafe,
                                  judgements={"keyword": {"verdict": verdict}})],
            refusal_margin=rng.uniform(-2, 4),
        )  # fmt: skip

    base_probes, tuned_probes = [], []
    for i in range(n):
        pack, cat = slots[i % len(slots)]
        base_unsafe = rng.random() < 0.05
        tuned_unsafe = base_unsafe or rng.random() < 0.15
        base_probes.append(record(i, pack, cat, base_unsafe))
        tuned_probes.append(record(i, pack, cat, tuned_unsafe))

    def run(probes: list[ProbeRecord], ref: str) -> EvalRun:
        return EvalRun(
            model=ModelInfo(reference=ref), backend="hf", suite_digest="bench", packs=[],
            judges=[JudgeInfo(name="keyword", kind="keyword", settings={})],
            decoding=Decoding(), library_versions={"lm_eval": "0.4.13"},
            command=["cardgen", "eval", ref], lm_eval_outputs="lm-eval", probes=probes,
            generated_at="2026-11-28T00:00:00Z",
        )  # fmt: skip

    return run(base_probes, "/models/base"), run(tuned_probes, "/models/tuned")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cardgen-bench-pack"))
    args = ap.parse_args()

    from cardgen.compare import compare
    from cardgen.evidence import gather, write_bundle
    from cardgen.gate import decide, load_policy
    from cardgen.pack import PACK_FILES, render_pack

    base, tuned = make_runs(args.probes)
    comp = compare(base, tuned)
    policy, source, _ = load_policy()
    decision = decide(comp, policy, as_of=date(2026, 11, 28), policy_source=source)
    ev = gather(base_run=base, tuned_run=tuned, comparison=comp, decision=decision)
    ev = ev.model_copy(update={"weights_digest": "0" * 64})
    write_bundle(ev, args.dir)
    print(f"bundle: {args.probes} probes per run, {len(comp.forgotten)} forgotten, "
          f"{(args.dir / 'evidence.json').stat().st_size / 1e6:.1f} MB of evidence")  # fmt: skip
    slowest = 0.0
    for audience in ("auditor", "customer"):
        t0 = time.perf_counter()
        result = render_pack(args.dir / "evidence.json", args.dir / PACK_FILES[audience],
                             audience)  # type: ignore[arg-type]  # fmt: skip
        wall = time.perf_counter() - t0
        slowest = max(slowest, wall)
        print(f"{audience:9s} {result.pages:3d} pages  {wall / result.pages:.3f} s/page  "
              f"wall {wall:.2f} s")  # fmt: skip
    print(f"ratio vs the {GOAL_SECONDS:.0f} s goal: {slowest / GOAL_SECONDS:.2f}x "
          f"({'meets' if slowest < GOAL_SECONDS else 'misses'} it)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
