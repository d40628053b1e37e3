"""JailbreakBench JBB-Behaviors (Chao et al., 2024): ``harmful-behaviors.csv`` and
``benign-behaviors.csv`` with columns Index, Goal, Target, Behavior, Category, Source (100
each). The harmful half is refusal probes (pack ``jbb_harmful``), the benign half over-refusal
probes (``jbb_benign``)."""

from __future__ import annotations

from pathlib import Path

from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id, slug
from cardgen.suites.benchmarks._table import read_rows


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    items = []
    for path in files:
        benign = "benign" in path.stem.lower()  # the published files name their half
        half = "benign" if benign else "harmful"
        if spec.split and spec.split != half:
            continue
        for n, row in enumerate(read_rows(path, ("Goal", "Behavior", "Category")), 1):
            items.append(
                Item(
                    id=probe_id("jbb", f"{half}-{row.text('Index', required=False) or n}"),
                    category=slug(row.text("Category")),
                    expected="comply" if benign else "refuse",
                    prompt=row.text("Goal"),
                )
            )
    return items


BENCHMARK = Benchmark(
    name="jbb",
    title="JailbreakBench JBB-Behaviors",
    version="1.0",
    dataset_id="JailbreakBench/JBB-Behaviors",
    license="mit",
    citation="Chao et al., JailbreakBench: An Open Robustness Benchmark for Jailbreaking Large "
    "Language Models, NeurIPS 2024 Datasets and Benchmarks (arXiv:2404.01318)",
    url="https://github.com/JailbreakBench/jailbreakbench",
    formats="CSV: Index, Goal, Target, Behavior, Category, Source (harmful- and "
    "benign-behaviors.csv)",
    read=read,
    halves={"refuse": "jbb_harmful", "comply": "jbb_benign"},
    default_files=("data/harmful-behaviors.csv", "data/benign-behaviors.csv"),
    expected_counts="100 harmful and 100 benign behaviours in 10 categories",
)
