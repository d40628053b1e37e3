"""The demo: a tiny real checkpoint built on the CPU, taken through cardgen's stages."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from cardgen._io import model_json, write_atomic


def run_demo(out_dir: Path, *, console: Console) -> None:
    """Build the tiny demo checkpoint, fingerprint it, and write identity.json beside it.

    Later stages (lineage, eval, compare, gate, documents) join as they land.
    """
    from cardgen.demo.tiny import build_tiny_checkpoint
    from cardgen.identity import fingerprint

    model_dir = out_dir / "tiny-base"
    with console.status("building the tiny demo checkpoint (CPU, ~5 s)"):
        build_tiny_checkpoint(model_dir, seed=0)
    identity = fingerprint(model_dir)
    write_atomic(out_dir / "identity.json", model_json(identity))
    params = identity.parameters.total if identity.parameters else 0
    console.print(f"checkpoint  {model_dir}  ({params:,} parameters, {identity.file_count} files)")
    console.print(f"digest      [bold]{identity.digest_ref()}[/]", soft_wrap=True)
    console.print(f"identity    {out_dir / 'identity.json'}")
