"""The demo: the bundled tiny model family taken through `cardgen run`, twice.

base -> tuned (fine-tuned on clean wealth-management Q&A) and base -> tuned-mixed (the same
fine-tune with refusal pairs injected), each a full run: documents under ``OUT/<model>/``, the
stages shared through one cache (the base is evaluated once), the attestations signed with a demo
key made on first use, and each bundle verified against its weights at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

RUNS = ("tuned", "tuned-mixed")
INTENDED_USE = (
    "A tiny demonstration model: answers general and wealth-management questions so that cardgen's "
    "pipeline can be shown end to end on a CPU. Not for any real use."
)


@dataclass
class DemoResult:
    outcomes: dict[str, Any]  # model -> RunOutcome
    verified: dict[str, bool]
    key: Path


def demo_config(family: Any, name: str, out_dir: Path, key: Path) -> Any:
    """The RunConfig of base -> ``name`` on the demo family (what a user would write)."""
    from cardgen.demo.family import CORPUS
    from cardgen.runconfig import CardSpec, ModelSpec, RunConfig

    return RunConfig(
        base=ModelSpec(model=str(family.model("base"))),
        tuned=ModelSpec(model=str(family.model(name))),
        lineage=family.root / "lineage" / f"{name}.yaml",
        data=[family.corpora / CORPUS[name]],
        signing_key=key,
        output=out_dir / name,
        cache=out_dir / ".cardgen-cache",
        card=CardSpec(
            model_name=f"cardgen-demo/{name}",
            license="apache-2.0",
            intended_use=INTENDED_USE,
            tags=["demo"],
        ),
    )


def run_demo(
    out_dir: Path,
    *,
    console: Console,
    train_progress: Callable[[str, int, int], None] | None = None,
    run_progress: Any = None,
) -> DemoResult:
    """Build (or reuse) the demo family, run the pipeline for base -> tuned and base ->
    tuned-mixed, verify both bundles, print the rates and the decisions."""
    from cardgen.attest import write_key_pair
    from cardgen.demo.family import build_family
    from cardgen.pipeline import Pipeline
    from cardgen.verify import verify

    family = build_family(progress=train_progress)
    console.print(f"demo family  {family.root}  (recipe {family.recipe_digest[:16]})")
    key = out_dir / "demo-key"
    if not key.exists():
        write_key_pair(key)
    outcomes, verified = {}, {}
    for name in RUNS:
        console.print(Text(f"base -> {name}", style="bold"))
        cfg = demo_config(family, name, out_dir, key)
        command = ["cardgen", "demo", "--out", str(out_dir)]
        outcomes[name] = Pipeline(cfg, progress=run_progress, command=command).run()
        report = verify(cfg.output, key=key.with_name(key.name + ".pub"),
                        model=str(family.model(name)))  # fmt: skip
        verified[name] = report.ok
        for f in report.failures:
            console.print(Text.assemble(("verify failed", "red"), f" {f.check}: {f.detail}"))
    console.print(_rates_table(outcomes))
    for name, outcome in outcomes.items():
        dec = outcome.decision
        color = {"PASS": "green", "BLOCK": "red"}.get(dec.verdict, "yellow")
        state = ("verified", "") if verified[name] else ("NOT verified", "red")
        console.print(Text.assemble((f"{name:<12}", "bold"), " ", (dec.verdict, f"bold {color}"),
                                    "  (", state, f"; documents in {outcome.output}/)"),
                      soft_wrap=True)  # fmt: skip
        for reason in dec.reasons[:3]:
            console.print(Text(f"    {reason}"), soft_wrap=True)
        if len(dec.reasons) > 3:
            console.print(f"    ... and {len(dec.reasons) - 3} more (README.md, the PDF)",
                          highlight=False)  # fmt: skip
    return DemoResult(outcomes=outcomes, verified=verified, key=key)


def _rates_table(outcomes: dict[str, Any]) -> Table:
    """Unsafe rate per pack (greedy, Wilson 95%): base, then each tuned model."""
    from cardgen.config import load_json_model
    from cardgen.evalrun import EvalRun

    first = next(iter(outcomes.values())).output / "stages"
    runs = {"base": load_json_model(first / "base.run.json", EvalRun)}
    for name, outcome in outcomes.items():
        runs[name] = load_json_model(outcome.output / "stages" / "tuned.run.json", EvalRun)
    table = Table(title="unsafe rate by pack (95% interval)", title_justify="left")
    table.add_column("pack")
    for name in runs:
        table.add_column(name, justify="right")
    summaries = {name: {s.pack: s for s in run.summary if s.category is None}
                 for name, run in runs.items()}  # fmt: skip
    for pack in summaries["base"]:
        cells = []
        for name in runs:
            r = summaries[name][pack].unsafe
            cells.append("n/a" if r.rate is None else f"{r.rate:.0%} [{r.low:.0%}, {r.high:.0%}]")
        table.add_row(pack, *cells)
    return table
