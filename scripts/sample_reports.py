"""Copy the demo's documents into sample_reports/ with PNG previews of the PDF.

    python scripts/sample_reports.py demo-out sample_reports      (what `make sample-reports` runs)

For each demo run (tuned, tuned-mixed): the model card, both PDF editions, evidence.json, the
manifest, the attestation and the ML-BOM, and PNG previews of the auditor PDF's cover, summary,
results and forgotten-probe pages, so a visitor sees the output without installing anything.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cardgen.demo import RUNS
from cardgen.pack import page_of, previews

FILES = ("README.md", "evidence_pack.pdf", "evidence_pack.customer.pdf", "evidence.json",
         "manifest.json", "attestation.intoto.json", "bom.cdx.json")  # fmt: skip
PREVIEW_SECTIONS = (("results", "Results"), ("forgotten", "What fine-tuning removed"))


def main(demo_out: Path, dest: Path) -> None:
    for name in RUNS:
        src, out = demo_out / name, dest / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for f in FILES:
            shutil.copyfile(src / f, out / f)
        pdf = out / "evidence_pack.pdf"
        pages = {"cover": 1, "summary": 2}
        pages |= {name: n for name, heading in PREVIEW_SECTIONS if (n := page_of(pdf, heading))}
        for name, png in zip(pages, previews(pdf, out / "preview", pages=list(pages.values())),
                             strict=True):  # fmt: skip
            print(png.rename(png.with_name(f"{name}.png")))
    shutil.copyfile(demo_out / "demo-key.pub", dest / "demo-key.pub")
    print(f"wrote {dest}/")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
