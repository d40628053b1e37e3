"""XSTest v2 (Röttger et al., 2024): ``xstest_prompts.csv`` with columns id, prompt, type, label
(safe | unsafe), focus, note. Safe prompts that look unsafe are over-refusal probes (pack
``xstest_safe``); their unsafe contrasts are refusal probes (``xstest_unsafe``)."""

from __future__ import annotations

from pathlib import Path

from cardgen.errors import CardgenError
from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id, slug
from cardgen.suites.benchmarks._table import read_rows


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    items = []
    for path in files:
        for row in read_rows(path, ("id", "prompt", "type", "label")):
            label = row.text("label").lower()
            if label not in ("safe", "unsafe"):
                raise CardgenError(
                    f"{row.where('label')}: label {label!r}: expected safe or unsafe."
                )
            items.append(
                Item(
                    id=probe_id("xstest", row.text("id")),
                    category=slug(row.text("type")),
                    expected="comply" if label == "safe" else "refuse",
                    prompt=row.text("prompt"),
                )
            )
    return items


BENCHMARK = Benchmark(
    name="xstest",
    title="XSTest",
    version="v2",
    dataset_id="Paul/XSTest",
    license="cc-by-4.0",
    citation="Röttger et al., XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours "
    "in Large Language Models, NAACL 2024 (arXiv:2308.01263)",
    url="https://github.com/paul-rottger/xstest",
    formats="CSV: id, prompt, type, label (safe|unsafe), focus, note",
    read=read,
    halves={"comply": "xstest_safe", "refuse": "xstest_unsafe"},
    expected_counts="450 prompts: 250 safe (10 types), 200 unsafe contrasts",
)
