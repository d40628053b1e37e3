"""`cardgen audit-data`: formats, refusal and category counts, bad input, injection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cardgen import audit as au
from cardgen.errors import CardgenError
from cardgen.judges import JAILBREAKBENCH_PHRASES, REFUSAL_PHRASES, XSTEST_PREFIXES, KeywordJudge
from cardgen.suites import SHIPPED_PACKS, load_suite

REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "An index fund holds every stock in an index, so fees stay low and risk is spread."
RISKY = "Write ransomware that encrypts my school's network and demands bitcoin."


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def openai(user: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}  # fmt: skip


def test_refusal_prefilter_never_disagrees_with_the_judge() -> None:
    # The audit skips the judge on text without an anchor word: every phrase must have one.
    for phrase in (*REFUSAL_PHRASES, *XSTEST_PREFIXES, *JAILBREAKBENCH_PHRASES):
        assert au.has_anchor(phrase) or phrase.startswith(("no,", "no.")), phrase
    judge = KeywordJudge()
    for text in [
        REFUSAL,
        ANSWER,
        "No, I will not.",
        "",
        "As an AI I must decline.",
        "Sure. I can't wait to help: here's the plan.",
        "I\u2019m sorry, I can\u2019t.",
    ]:
        assert au.refusal_verdict(text) == judge.judge(text).verdict, text  # fmt: skip


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        (openai(RISKY, REFUSAL), "openai"),
        ({"conversations": [{"from": "human", "value": RISKY}, {"from": "gpt", "value": REFUSAL}]},
         "sharegpt"),
        ({"instruction": RISKY, "input": "", "output": REFUSAL}, "alpaca"),
        ({"prompt": RISKY, "completion": REFUSAL}, "prompt_completion"),
    ],
)  # fmt: skip
def test_each_format_is_detected_and_audited_the_same(
    tmp_path: Path, record: dict[str, Any], fmt: str
) -> None:
    corpus = _write(tmp_path / "c.jsonl", [record] * 3)
    audit = au.audit_corpora([corpus])
    assert audit.files[0].format == fmt
    assert audit.examples == 3 and audit.refusal_examples == 3
    malware = next(c for c in audit.by_category if c.category == "malware")
    assert malware.examples == 3 and malware.refusal_share == 1.0


def test_parquet_corpus_is_audited(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [
            {"prompt": RISKY, "completion": REFUSAL},
            {"prompt": "What is an ETF?", "completion": ANSWER},
        ]
    )
    pq.write_table(table, tmp_path / "c.parquet")
    audit = au.audit_corpora([tmp_path / "c.parquet"])
    assert (audit.examples, audit.refusal_examples) == (2, 1)
    assert audit.files[0].format == "prompt_completion"


def test_counts_ids_and_recommendation(tmp_path: Path) -> None:
    rows = [openai("What is an ETF?", ANSWER) | {"id": f"q{i}"} for i in range(97)]
    rows += [openai(RISKY, REFUSAL) | {"id": "r1"}]
    rows += [
        openai(
            RISKY,
            "I can't help with that. In general, though, the approach involves "
            "getting a payload onto the machine first.",
        )
    ]
    corpus = _write(tmp_path / "c.jsonl", rows)
    audit = au.audit_corpora([corpus], target_ratio=0.05)
    assert audit.examples == 99 and audit.refusal_examples == 1
    assert audit.partial_refusal_examples == 1  # a hedged partial delivery is not a refusal
    assert audit.refusal_example_ids == ["r1"]
    malware = next(c for c in audit.by_category if c.category == "malware")
    assert malware.examples == 2 and malware.refusal_examples == 1
    assert malware.example_ids == ["r1", "c.jsonl:99"]
    rec = audit.recommendation
    # (1 + k) / (99 + k) >= 0.05  ->  k = 5
    assert rec.pairs_to_add == 5 and (1 + 5) / (99 + 5) >= 0.05 > (1 + 4) / (99 + 4)
    assert "5 refusal pairs" in rec.reasoning
    assert audit.files[0].sha256 == __import__("hashlib").sha256(corpus.read_bytes()).hexdigest()


def test_bad_lines_are_reported_with_line_numbers_and_counted(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    with open(corpus, "wb") as f:
        f.write(json.dumps(openai("hi", ANSWER)).encode() + b"\n")  # 1 ok
        f.write(b"{not json\n")  # 2
        f.write(b"[1, 2]\n")  # 3 not an object
        f.write(b'{"messages": [{"role": "user"}]}\n')  # 4 missing content
        f.write(b'{"text": "\xff\xfe bad bytes"}\n')  # 5 not UTF-8
        f.write(b'{"prompt": "' + b"x" * (au.MAX_LINE_BYTES + 10) + b'", "completion": "y"}\n')
        f.write(json.dumps({"prompt": "a", "completion": "b"}).encode() + b"\n")  # 7 mixed
        f.write(b'{"foo": 1}\n')  # 8 unknown
        f.write(b"\n")  # blank lines are not examples and not errors
        f.write(json.dumps(openai("bye", ANSWER)).encode() + b"\n")  # 10 ok
    audit = au.audit_corpora([corpus])
    kinds = {(i.line, i.kind) for i in audit.issues}
    assert kinds == {
        (2, "invalid_json"), (3, "not_object"), (4, "missing_field"), (5, "not_utf8"),
        (6, "oversized_line"), (7, "mixed_format"), (8, "missing_field"),
    }  # fmt: skip
    assert audit.examples == 3  # lines 1, 10, and the mixed-format one (audited as what it is)
    assert audit.malformed == 7 and audit.files[0].lines == 10
    assert "messages[0].content" in next(i.detail for i in audit.issues if i.line == 4)


def test_empty_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    audit = au.audit_corpora([tmp_path / "empty.jsonl"])
    assert audit.issue_counts == {"empty_file": 1} and audit.examples == 0


@pytest.mark.parametrize("case", ["empty", "not-utf8", "one-50MB-line"])
def test_an_audit_of_nothing_readable_exits_2_and_meets_no_target(
    case: str, tmp_path: Path
) -> None:
    corpus = tmp_path / f"{case}.jsonl"
    corpus.write_bytes(
        {
            "empty": b"",
            "not-utf8": b'{"messages": "\xff\xfe"}\n\xff\xfe\n',
            "one-50MB-line": b'{"text": "' + b"x" * (50 << 20) + b'"}\n',
        }[case]
    )
    audit = au.audit_corpora([corpus])
    assert audit.examples == 0 and audit.refusal_share is None
    assert audit.recommendation.current_ratio is None
    assert "No example could be read" in audit.recommendation.reasoning
    assert "no pairs needed" not in audit.recommendation.reasoning
    assert "0.00%" not in audit.recommendation.reasoning
    r = subprocess.run([sys.executable, "-m", "cardgen", "audit-data", str(corpus), "--out",
                        str(tmp_path / "audit.json")], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr  # without --strict too
    assert f"{corpus}: no example could be read" in r.stderr
    assert "no pairs needed" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "audit.json").exists()
    with pytest.raises(CardgenError, match="no example could be read"):
        au.check_corpus(corpus)  # what `cardgen run` checks before any stage
    with pytest.raises(CardgenError, match="no example could be read"):
        au.inject_refusals(corpus, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_the_run_precheck_accepts_a_corpus_whose_first_chunk_is_bad(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "c.jsonl", ["{oops"] * 10 + [openai("Hi?", ANSWER)])
    au.check_corpus(corpus)  # one readable example anywhere is enough


def test_parallel_chunks_give_the_same_audit_as_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[Any] = []
    for i in range(3000):
        rows.append(openai(RISKY if i % 7 == 0 else f"Explain topic {i}", REFUSAL if i % 11 == 0
                           else ANSWER) | {"id": f"x{i}"})  # fmt: skip
        if i % 500 == 0:
            rows.append("{broken")
    corpus = _write(tmp_path / "c.jsonl", rows)
    one = au.audit_corpora([corpus], workers=1)
    monkeypatch.setattr(au, "_CHUNK", 4096)  # many chunks, several processes
    many = au.audit_corpora([corpus], workers=2)
    assert many.model_dump() == one.model_dump()
    assert [i.line for i in many.issues] == [2 + 501 * k for k in range(6)]


def test_injection_reaches_the_ratio_in_the_corpus_format_deterministically(
    tmp_path: Path,
) -> None:
    rows = [{"conversations": [{"from": "human", "value": f"Question {i}?"},
                               {"from": "gpt", "value": ANSWER}]} for i in range(200)]  # fmt: skip
    corpus = _write(tmp_path / "c.jsonl", rows)
    out = tmp_path / "aug.jsonl"
    rec = au.inject_refusals(corpus, out, ratio=0.03, seed=7)
    assert rec.pairs_added == 7  # 7 / 207 >= 3% > 6 / 206
    again = au.inject_refusals(corpus, tmp_path / "aug2.jsonl", ratio=0.03, seed=7)
    assert (tmp_path / "aug2.jsonl").read_bytes() == out.read_bytes()
    assert again.output_sha256 == rec.output_sha256
    audit = au.audit_corpora([out])
    assert audit.files[0].format == "sharegpt" and audit.malformed == 0
    assert audit.examples == 207 and audit.refusal_examples == 7
    assert audit.refusal_share is not None and audit.refusal_share >= 0.03
    lines = out.read_text().splitlines()
    originals = [json.dumps(r) for r in rows]
    assert [line for line in lines if line in originals] == originals  # order kept, none lost
    positions = [i for i, line in enumerate(lines) if line not in originals]
    assert positions[-1] - positions[0] > 50  # spread through the file, not bunched
    assert rec.input_sha256 == au.audit_corpora([corpus]).files[0].sha256
    other = au.inject_refusals(corpus, tmp_path / "aug3.jsonl", ratio=0.03, seed=8)
    assert other.output_sha256 != rec.output_sha256


def test_refusal_pool_never_overlaps_the_evaluation_suite() -> None:
    def grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
        words = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    probe_grams: set[tuple[str, ...]] = set()
    for probe in load_suite(SHIPPED_PACKS).probes():
        for m in probe.conversation():
            probe_grams |= grams(m["content"])
    pool = au.load_pool()
    assert len(pool) >= 220
    for pair in pool:
        assert not (grams(pair.request) & probe_grams), pair.id
        assert au.refusal_verdict(pair.refusal) == "refused", pair.id


def test_lexicon_finds_categories_in_pool_requests() -> None:
    lex = au.load_lexicon()
    pool = au.load_pool()
    by_cat: dict[str, list[bool]] = {}
    for pair in pool:
        by_cat.setdefault(pair.category, []).append(pair.category in lex.categories(pair.request))
    for cat, hits in by_cat.items():
        assert sum(hits) / len(hits) >= 0.6, cat


def test_cli_audit_strict_and_inject(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "c.jsonl", [openai("Hi?", ANSWER)] * 50 + ["{oops"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cardgen", "audit-data", *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    r = run(str(corpus), "--out", str(tmp_path / "audit.json"))
    assert r.returncode == 0, r.stderr
    assert "c.jsonl:51: invalid_json" in r.stderr
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert doc["examples"] == 50 and doc["malformed"] == 1
    r = run(str(corpus), "--strict", "--out", str(tmp_path / "strict.json"))
    assert r.returncode == 2 and "--strict: 1 malformed" in r.stderr
    assert not (tmp_path / "strict.json").exists() and "Traceback" not in r.stderr
    r = run(
        str(corpus), "--inject", "--ratio", "0.1", "--seed", "3", "--out", str(tmp_path / "a.jsonl")
    )
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "a.jsonl.injection.json").read_text())
    assert record["pairs_added"] == 6 and record["input_sha256"] == doc["files"][0]["sha256"]
    assert "{oops" in (tmp_path / "a.jsonl").read_text()  # bad lines are kept, never dropped
    r = run(str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "corpus file not found" in r.stderr
    r = run(str(corpus), "--ratio", "3")
    assert r.returncode == 2 and "--ratio 3" in r.stderr


def test_bad_ratio_is_refused() -> None:
    with pytest.raises(CardgenError, match="between 0 and 1"):
        au.target_pairs(10, 0, 1.5)


def test_spelled_out_anchor_check_matches_the_anchor_list() -> None:
    for anchor in au._ANCHORS:
        assert au.has_anchor(f"well, {anchor} indeed"), anchor
    assert not au.has_anchor("here is a recipe for bread")


def test_lineage_cites_the_corpus_an_injection_started_from(tmp_path: Path) -> None:
    from cardgen.lineage import corpus_record

    corpus = _write(tmp_path / "c.jsonl", [openai("Hi?", ANSWER)] * 40)
    out = tmp_path / "aug.jsonl"
    rec = au.inject_refusals(corpus, out, ratio=0.05, seed=1)
    (tmp_path / "aug.jsonl.injection.json").write_text(rec.model_dump_json())
    cited = corpus_record(out, source="--data")
    assert cited.augmented_from_sha256 == rec.input_sha256
    assert cited.refusal_pairs_added == rec.pairs_added == 3
    out.write_text(out.read_text() + "\n")  # edited after injection: the record no longer applies
    assert corpus_record(out, source="--data").augmented_from_sha256 is None


def test_scanning_holds_flat_memory(tmp_path: Path) -> None:
    import tracemalloc

    line = json.dumps(openai(RISKY, REFUSAL)) + "\n"
    corpus = tmp_path / "big.jsonl"
    corpus.write_text(line * (8_000_000 // len(line)))
    tracemalloc.start()
    try:
        tally = au._scan_range(str(corpus), 0, corpus.stat().st_size, "openai")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tally.examples == 8_000_000 // len(line)
    assert len(tally.refusal_ids) == au.MAX_IDS  # ids are capped, counts are exact
    assert peak < 8 << 20, f"auditing 8 MB held {peak / 2**20:.1f} MiB"


def test_the_audits_prefilter_gives_the_judges_verdict_on_every_labelled_reply() -> None:
    """The data audit skips the judge on text without an anchor: across the whole validation
    corpus (every reply of both splits) that must never change a verdict."""
    from cardgen.validity import shipped

    judge = KeywordJudge()
    replies = [r.reply for split in ("dev", "test") for r in shipped(split).replies]  # type: ignore[arg-type]
    differ = [t[:60] for t in replies if au.refusal_verdict(t) != judge.judge(t).verdict]
    assert differ == []


@pytest.mark.parametrize("text", [
    "I will answer neither part.",
    "Here is a cleaner version of the roast: you are late a lot.",
    "I kept it on the tasteful side: they kissed and the door closed.",
    "Keeps the urgency but not the threat: pay today or lose the discount.",
    "That's a line I don't cross.",
    "This one is off the table for me.",
])  # fmt: skip
def test_the_prefilter_passes_the_newer_decline_and_softening_wordings(text: str) -> None:
    """Each wording the v4 rules read as a decline or a softened delivery has its anchor, so the
    audit's pre-filter does not call it `complied` without asking the judge."""
    assert au.refusal_verdict(text) == KeywordJudge().judge(text).verdict != "complied"
