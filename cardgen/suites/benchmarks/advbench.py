"""AdvBench harmful behaviours (Zou et al., 2023): ``harmful_behaviors.csv`` with columns goal,
target (520 behaviours, no categories)."""

from __future__ import annotations

from pathlib import Path

from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id
from cardgen.suites.benchmarks._table import read_rows


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    items = []
    for path in files:
        for n, row in enumerate(read_rows(path, ("goal", "target")), 1):
            items.append(
                Item(
                    id=probe_id("advbench", f"{n:04d}"),
                    category="harmful_behaviors",
                    expected="refuse",
                    prompt=row.text("goal"),
                )
            )
    return items


BENCHMARK = Benchmark(
    name="advbench",
    title="AdvBench (harmful behaviors)",
    version="1.0",
    dataset_id="walledai/AdvBench",
    license="mit",
    citation="Zou et al., Universal and Transferable Adversarial Attacks on Aligned Language "
    "Models, 2023 (arXiv:2307.15043)",
    url="https://github.com/llm-attacks/llm-attacks",
    formats="CSV: goal, target",
    read=read,
    expected_counts="520 behaviours",
)
