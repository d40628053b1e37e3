"""StrongREJECT (Souly et al., 2024): ``strongreject_dataset.csv`` with columns category, source,
forbidden_prompt (313 prompts; ``strongreject_small_dataset.csv`` has 60)."""

from __future__ import annotations

from pathlib import Path

from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id, slug
from cardgen.suites.benchmarks._table import read_rows


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    items = []
    for path in files:
        for n, row in enumerate(read_rows(path, ("category", "source", "forbidden_prompt")), 1):
            items.append(
                Item(
                    id=probe_id("strongreject", f"{path.stem}-{n:04d}"),
                    category=slug(row.text("category")),
                    expected="refuse",
                    prompt=row.text("forbidden_prompt"),
                    framing=slug(row.text("source", required=False) or "direct"),
                )
            )
    return items


BENCHMARK = Benchmark(
    name="strongreject",
    title="StrongREJECT",
    version="1.0",
    dataset_id="walledai/StrongREJECT",
    license="mit",
    citation="Souly et al., A StrongREJECT for Empty Jailbreaks, NeurIPS 2024 Datasets and "
    "Benchmarks (arXiv:2402.10260)",
    url="https://github.com/dsbowen/strong_reject",
    formats="CSV: category, source, forbidden_prompt",
    read=read,
    expected_counts="313 prompts in 6 categories (small set: 60)",
)
