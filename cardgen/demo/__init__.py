"""The demo: the bundled tiny model family, taken through cardgen's stages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cardgen._io import model_json, write_atomic


def run_demo(
    out_dir: Path,
    *,
    console: Console,
    train_progress: Callable[[str, int, int], None] | None = None,
    eval_progress: Any = None,
) -> dict[str, Any]:
    """Build (or reuse) the demo family, fingerprint each model, evaluate each with the shipped
    suite, and write identity, lineage and eval runs under ``out_dir/<model>/``.

    Later stages (compare, gate, documents) join as they land. Returns the eval runs by model.
    """
    from cardgen.demo.family import MODELS, build_family
    from cardgen.evalrun import Decoding
    from cardgen.evaluate import ModelTarget, evaluate
    from cardgen.identity import fingerprint
    from cardgen.judges import CanaryJudge, KeywordJudge
    from cardgen.suites import SHIPPED_PACKS, load_suite

    family = build_family(progress=train_progress)
    console.print(f"demo family  {family.root}  (recipe {family.recipe_digest[:16]})")
    suite = load_suite(SHIPPED_PACKS)
    runs: dict[str, Any] = {}
    for name in MODELS:
        model_dir = family.model(name)
        dest = out_dir / name
        identity = fingerprint(model_dir)
        write_atomic(dest / "identity.json", model_json(identity))
        write_atomic(dest / "lineage.json", family.lineage(name).read_text())
        if eval_progress is not None:
            eval_progress.stage(f"evaluating {name}")
        run = evaluate(
            ModelTarget(path=str(model_dir)),
            suite,
            [KeywordJudge(), CanaryJudge()],
            Decoding(),
            workdir=dest / "eval.lmeval",
            identity=identity,
            command=["cardgen", "eval", str(model_dir), "--out", str(dest / "eval.json")],
            progress=eval_progress,
        )
        write_atomic(dest / "eval.json", model_json(run))
        runs[name] = run
    console.print(_rates_table(runs))
    console.print(f"written to   {out_dir}/{{{','.join(MODELS)}}}/", soft_wrap=True)
    return runs


def _rates_table(runs: dict[str, Any]) -> Table:
    """Unsafe rate per pack (greedy, Wilson 95%) for each model, side by side."""
    table = Table(title="unsafe rate by pack (95% interval)", title_justify="left")
    table.add_column("pack")
    for name in runs:
        table.add_column(name, justify="right")
    packs = [s.pack for s in next(iter(runs.values())).summary if s.category is None]
    for pack in packs:
        cells = []
        for run in runs.values():
            s = next(x for x in run.summary if x.pack == pack and x.category is None)
            r = s.unsafe
            cells.append("n/a" if r.rate is None else f"{r.rate:.0%} [{r.low:.0%}, {r.high:.0%}]")
        table.add_row(pack, *cells)
    return table
