"""Copy the demo's documents into sample_reports/ with PNG previews of the PDFs' first pages.

    python scripts/sample_reports.py demo-out sample_reports      (what `make sample-reports` runs)

For each demo run (tuned, tuned-mixed): the model card, both PDF editions, evidence.json, the
manifest, the attestation and the ML-BOM, and previews of the first pages of the auditor PDF, so a
visitor sees the output without installing anything.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cardgen.demo import RUNS
from cardgen.pack import previews

FILES = ("README.md", "evidence_pack.pdf", "evidence_pack.customer.pdf", "evidence.json",
         "manifest.json", "attestation.intoto.json", "bom.cdx.json")  # fmt: skip
PREVIEW_PAGES = 3


def main(demo_out: Path, dest: Path) -> None:
    for name in RUNS:
        src, out = demo_out / name, dest / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for f in FILES:
            shutil.copyfile(src / f, out / f)
        for png in previews(out / "evidence_pack.pdf", out / "preview", pages=PREVIEW_PAGES):
            print(png)
    shutil.copyfile(demo_out / "demo-key.pub", dest / "demo-key.pub")
    print(f"wrote {dest}/")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
