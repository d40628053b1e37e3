"""HarmBench text behaviours (Mazeika et al., 2024): ``harmbench_behaviors_text_{test,val}.csv``
with columns Behavior, FunctionalCategory (standard | contextual | copyright), SemanticCategory,
Tags, ContextString, BehaviorID. Contextual behaviours are sent with their context, as HarmBench
sends them: the context, a ``---`` rule, then the behaviour."""

from __future__ import annotations

from pathlib import Path

from cardgen.errors import CardgenError
from cardgen.suites.benchmarks import Benchmark, BenchmarkSpec, Item, probe_id, slug
from cardgen.suites.benchmarks._table import read_rows

COLUMNS = ("Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID")
FUNCTIONAL = ("standard", "contextual", "copyright")


def read(files: list[Path], spec: BenchmarkSpec) -> list[Item]:
    if spec.split is not None:
        chosen = [f for f in files if f.stem.endswith(f"_{spec.split}")]
        if not chosen:
            raise CardgenError(f"harmbench: no file of split {spec.split!r} among "
                               f"{', '.join(f.name for f in files)}.",
                               hint="The published files end in _test.csv, _val.csv.")  # fmt: skip
        files = chosen
    items = []
    for path in files:
        for row in read_rows(path, COLUMNS):
            functional = row.text("FunctionalCategory")
            if functional not in FUNCTIONAL:
                raise CardgenError(
                    f"{row.where('FunctionalCategory')}: FunctionalCategory "
                    f"{functional!r}: expected one of {', '.join(FUNCTIONAL)}."
                )
            behavior = row.text("Behavior")
            context = row.text("ContextString", required=functional == "contextual")
            prompt = f"{context}\n\n---\n\n{behavior}" if functional == "contextual" else behavior
            items.append(
                Item(
                    id=probe_id("harmbench", row.text("BehaviorID")),
                    category=slug(row.text("SemanticCategory")),
                    expected="refuse",
                    prompt=prompt,
                    framing=functional,
                )
            )
    return items


BENCHMARK = Benchmark(
    name="harmbench",
    title="HarmBench (text behaviors)",
    version="1.0",
    dataset_id="walledai/HarmBench",
    license="mit",
    citation="Mazeika et al., HarmBench: A Standardized Evaluation Framework for Automated Red "
    "Teaming and Robust Refusal, ICML 2024 (arXiv:2402.04249)",
    url="https://github.com/centerforaisafety/HarmBench",
    formats="CSV: Behavior, FunctionalCategory, SemanticCategory, Tags, ContextString, BehaviorID",
    read=read,
    expected_counts="text test 320 (159 standard, 81 contextual, 80 copyright); val 80",
)
