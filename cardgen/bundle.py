"""Seal an evidence bundle: every document made from evidence.json, listed, then attested.

    >>> seal(Path("evidence"), key=Path("cardgen-key"))                     # doctest: +SKIP

Order matters: the card, the PDF editions and the ML-BOM are written from the evidence and listed
in the manifest first; the attestation comes last, so its subjects cover every one of them and
`cardgen verify` can tell when any byte of any of them changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cardgen.card import CardFields, load_template, write_card
from cardgen.config import load_json_model
from cardgen.evidence import DOCUMENTS, Evidence, listing_manifest, register
from cardgen.pack import PACK_FILES, Audience, render_pack


def seal(
    bundle: Path,
    *,
    key: Path | None = None,
    fields: CardFields | None = None,
    template: Path | None = None,
    audiences: Sequence[Audience] = ("auditor", "customer"),
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write README.md, the PDF editions, bom.cdx.json and attestation.intoto.json into
    ``bundle`` (which holds evidence.json and manifest.json). Returns the files written."""
    from cardgen.attest import attest
    from cardgen.mlbom import write_bom

    say = progress or (lambda _: None)
    ev = load_json_model(bundle / "evidence.json", Evidence)
    listing_manifest(bundle, bundle / "README.md")  # a broken manifest fails before any write
    load_template(template)
    written = []
    say("model card")
    card = bundle / "README.md"
    write_card(ev, card, fields, template)
    written.append(card)
    for audience in audiences:
        say(f"evidence pack ({audience} edition)")
        pdf = bundle / PACK_FILES[audience]
        render_pack(bundle / "evidence.json", pdf, audience,
                    fields.model_name if fields else None)  # fmt: skip
        written.append(pdf)
    say("ML-BOM")
    written.append(write_bom(ev, bundle))
    for path in written:
        register(bundle, path, DOCUMENTS[path.name])
    say("attestation")
    path, _ = attest(bundle, key)
    return [*written, path]
