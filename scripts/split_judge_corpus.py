"""Merge labelled reply files into the shipped judge-validation corpus, split dev/test once.

    python scripts/split_judge_corpus.py PART.jsonl... [--dev-only PART.jsonl...] \
        --out cardgen/data/judge_validation
    python scripts/split_judge_corpus.py --append-dev PART.jsonl... \
        --out cardgen/data/judge_validation

Each reply of the first parts goes to `test` or `dev` by the parity of sha256(SEED + id): the
assignment of a reply never changes when others are added, so the held-out split stays held out.
Parts written later to study the judge's errors (`--dev-only`) go to `dev` only, so `test` keeps
the replies it was split with. Rules may be tuned on `dev` only. `--append-dev` adds later
batches to the shipped `dev.jsonl` and leaves `test.jsonl` as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cardgen.validity import LabelledReply, expected_for

SEED = "cardgen-judge-validation-v1:"


def split_of(reply_id: str) -> str:
    return "test" if int(hashlib.sha256((SEED + reply_id).encode()).hexdigest(), 16) % 2 else "dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", type=Path)
    ap.add_argument("--dev-only", nargs="*", type=Path, default=[])
    ap.add_argument("--append-dev", nargs="*", type=Path, default=[])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not args.parts and not args.append_dev:
        # Nothing to split would rewrite both shipped splits empty.
        raise SystemExit("give the parts to split, or --append-dev PART...")
    if args.append_dev:
        if args.parts or args.dev_only:
            raise SystemExit("--append-dev adds to the shipped splits; give no other parts")
        args.parts, args.dev_only = [], [args.out / "dev.jsonl", *args.append_dev]
        held_out = args.out / "test.jsonl"
        test_ids = {json.loads(line)["id"] for line in held_out.read_text().splitlines() if line}
    else:
        test_ids = set()
    splits: dict[str, list[str]] = {"dev": [], "test": []}
    seen: set[str] = set()
    for part in [*args.parts, *args.dev_only]:
        for n, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            row["expected"] = row.get("expected") or expected_for(row.get("category"))
            reply = LabelledReply.model_validate(row)  # refuses a malformed or mislabelled row
            if reply.id in seen:
                raise SystemExit(f"{part}:{n}: duplicate id {reply.id}")
            if reply.id in test_ids:
                raise SystemExit(f"{part}:{n}: id {reply.id} is in the test split")
            seen.add(reply.id)
            split = "dev" if part in args.dev_only else split_of(reply.id)
            splits[split].append(reply.model_dump_json(exclude_none=True))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        if args.append_dev and name == "test":
            continue  # the held-out split is not rewritten
        (args.out / f"{name}.jsonl").write_text("".join(r + "\n" for r in sorted(rows)))
        print(f"{name}: {len(rows)} replies")


if __name__ == "__main__":
    main()
