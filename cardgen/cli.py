"""The `cardgen` command: each subcommand reads its inputs, calls one stage, writes its JSON.

Exit codes: 0 success / PASS, 1 gate BLOCK, 2 bad input or usage, 3 INSUFFICIENT_EVIDENCE.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cardgen import __version__
from cardgen._io import model_json, write_atomic
from cardgen.errors import CardgenError
from cardgen.redact import redact

app = typer.Typer(
    name="cardgen",
    help="Safety evidence for the fine-tuned checkpoint you actually serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)
_state: dict[str, bool] = {"debug": False}


def _version(value: bool) -> None:
    if value:
        out.print(f"cardgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """cardgen: identity, lineage, safety evaluation and release evidence for tuned checkpoints."""
    _state["debug"] = debug


class _BarProgress:
    """A rich progress bar fed by `fingerprint` (bytes hashed)."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._p = progress
        self._task = progress.add_task(label, total=None)

    def start(self, total_bytes: int) -> None:
        self._p.update(self._task, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        self._p.advance(self._task, nbytes)


@contextmanager
def _hash_bar(label: str) -> Iterator[_BarProgress]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as p:
        yield _BarProgress(p, label)


def _emit(text: str, dest: Path | None) -> None:
    if dest is None:
        sys.stdout.write(text)
    else:
        write_atomic(dest, text)
        err.print(f"wrote {dest}")


@app.command()
def fingerprint(
    model: Annotated[
        str,
        typer.Argument(
            help="Checkpoint directory, weights file, HF cache snapshot, or hf://org/name@rev."
        ),
    ],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write identity.json here (else stdout).")
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            help="Leave a path out of the digest, as model_signing's "
            "--ignore-paths does (repeatable).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Hashing threads (default: one per core).", min=1)
    ] = None,
) -> None:
    """Hash a checkpoint (OpenSSF model_signing digest) and read what it is, loading no tensor."""
    from cardgen.identity import fingerprint as run

    with _hash_bar("hashing") as bar:
        identity = run(model, ignore=ignore or (), workers=workers, progress=bar)
    _emit(model_json(identity), out_path)
    _summary(identity)


def _summary(identity: Any) -> None:
    rows = [
        ("digest", f"[bold]{identity.digest_ref()}[/]"),
        ("files", f"{identity.file_count} ({identity.total_size:,} bytes)"),
    ]
    if identity.parameters:
        dtypes = ", ".join(f"{k} {v:,}" for k, v in identity.parameters.by_dtype.items())
        rows.append(("parameters", f"{identity.parameters.total:,} ({dtypes})"))
    if identity.adapter:
        a = identity.adapter
        rows.append(("adapter", f"{a.peft_type} r={a.rank} base={a.base_model}"))
    if identity.contains_pickle:
        rows.append(("[yellow]pickle[/]", ", ".join(identity.pickle_files)))
    rows += [("note", n) for n in identity.notes]
    for key, value in rows:
        err.print(f"{key:>10}  {value}", soft_wrap=True, highlight=False)


@app.command()
def lineage(
    model: Annotated[
        str, typer.Option("--model", "-m", help="The tuned checkpoint (directory or hf://).")
    ],
    base: Annotated[
        str | None, typer.Option(help="Base model: Hub id, hf://org/name@rev, or a local path.")
    ] = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Training corpus file (repeatable).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="lineage.yaml with declared fields.")
    ] = None,
    identity_path: Annotated[
        Path | None,
        typer.Option("--identity", help="Reuse an identity.json from `cardgen fingerprint`."),
    ] = None,
    resolve_base: Annotated[
        bool,
        typer.Option(help="Fingerprint the base too (local path, or hf:// via the Hub API)."),
    ] = True,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write lineage.json here (else stdout).")
    ] = None,
) -> None:
    """Record where a checkpoint came from: base, relation, adapter, corpora, recipe."""
    from cardgen import lineage as lin
    from cardgen.identity import fingerprint as fp
    from cardgen.identity import load_identity

    decl, source, base_dir = None, "lineage.yaml", Path.cwd()
    if config is not None:
        decl = lin.load_declaration(config)
        source, base_dir = str(config), config.parent
    if identity_path is not None:
        identity = load_identity(identity_path)
        if identity.source.reference != model:
            err.print(
                f"[yellow]note[/]: {identity_path} was made from "
                f"{identity.source.reference!r}, not {model!r}; using it as given."
            )
    else:
        with _hash_bar("hashing model") as bar:
            identity = fp(model, progress=bar)
    corpora = lin.declared_corpora(decl, base_dir, source) if decl else []
    corpora += [lin.corpus_record(p, source="--data", shown=str(p)) for p in data or []]

    def resolve(ref: str) -> Any:
        with _hash_bar("hashing base") as bar:
            return fp(ref, progress=bar)

    result = lin.build_lineage(
        identity, decl, declaration_source=source, base_flag=base, corpora=corpora,
        resolve_base=resolve if resolve_base else None,
    )  # fmt: skip
    _emit(model_json(result), out_path)
    if result.base_model is not None:
        state = "resolved" if result.base_model.identity else "unresolved"
        err.print(
            f"base: {result.base_model.reference} ({result.base_model.provenance.origin}, {state})"
        )
    for note in result.notes:
        err.print(f"note: {note}")


demo_app = typer.Typer(help="The bundled tiny model family: build it, run the job on it.")
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path(
        "demo-out"
    ),
) -> None:
    """Run the main job on the demo model (what `make demo` runs)."""
    if ctx.invoked_subcommand is not None:
        return
    from cardgen.demo import run_demo

    run_demo(out_dir, console=err)


def main() -> None:
    """Console entry point: run the app, turn CardgenError into exit code 2 with a message."""
    try:
        rc = app(standalone_mode=False)
    except CardgenError as e:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {redact(e.message)}", highlight=False, soft_wrap=True)
        if e.hint:
            err.print(redact(e.hint), highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was half-written")
        sys.exit(130)
    except typer.exceptions.TyperException as e:  # usage errors: unknown option, bad value
        show = getattr(e, "show", None)
        if callable(show):
            show()
        sys.exit(2)
    except Exception as e:
        if _state["debug"]:
            raise
        err.print(
            f"[bold red]internal error:[/] {redact(f'{type(e).__name__}: {e}')}", soft_wrap=True
        )
        err.print("This is a cardgen bug; rerun with --debug and report the traceback.")
        sys.exit(4)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
