"""The `cardgen` command: each subcommand reads its inputs, calls one stage, writes its JSON.

Exit codes: 0 success / PASS, 1 gate BLOCK, 2 bad input or usage, 3 INSUFFICIENT_EVIDENCE.
"""

from __future__ import annotations

import hashlib
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
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from cardgen import __version__
from cardgen._io import model_json, write_atomic
from cardgen.errors import CardgenError
from cardgen.redact import redact
from cardgen.runconfig import DEFAULT_API

app = typer.Typer(
    name="cardgen",
    help="Safety evidence for the fine-tuned checkpoint you actually serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Markup, emoji codes and highlighting off: paths, probes and model outputs print as they are
# (a "[link=...]" or ":warning:" inside data stays text). Styled words are built as `Text`.
_PLAIN: dict[str, Any] = {"markup": False, "emoji": False, "highlight": False}
out = Console(**_PLAIN)
# Bound to the real stderr, so that hiding libraries' output (redirecting sys.stderr) keeps ours.
err = Console(file=sys.__stderr__ or sys.stderr, **_PLAIN)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line with styled words: ``styled(("error:", "bold red"), " ", message)``; strings are
    literal text, never markup."""
    return Text.assemble(*parts)


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


def _count_progress() -> Progress:
    """A transient progress display on stderr with counted bars (requests, steps)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}", markup=False),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@contextmanager
def _hash_bar(label: str) -> Iterator[_BarProgress]:
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
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
    rows: list[tuple[str | tuple[str, str], str | tuple[str, str]]] = [
        ("digest", (identity.digest_ref(), "bold")),
        ("files", f"{identity.file_count} ({identity.total_size:,} bytes)"),
    ]
    arch = identity.architecture
    if arch and arch.model_type:
        rows.append(("arch", f"{arch.model_type}"
                     + (f", {arch.num_hidden_layers} layers" if arch.num_hidden_layers else "")
                     + (f", context {arch.max_position_embeddings:,}"
                        if arch.max_position_embeddings else "")))  # fmt: skip
    if identity.parameters:
        dtypes = ", ".join(f"{k} {v:,}" for k, v in identity.parameters.by_dtype.items())
        rows.append(("parameters", f"{identity.parameters.total:,} ({dtypes})"))
    if identity.gguf:
        g = identity.gguf
        types = ", ".join(f"{k} {v}" for k, v in g.tensor_types.items())
        rows.append(("gguf", f"{g.file_type or 'file type not stated'} ({types} tensors)"
                     + (f", {g.name}" if g.name else "")))  # fmt: skip
    tok = identity.tokenizer
    if tok and tok.chat_template_sha256:
        rows.append(("template", f"sha256:{tok.chat_template_sha256} ({tok.chat_template_source})"))
    if identity.adapter:
        a = identity.adapter
        rows.append(("adapter", f"{a.peft_type} r={a.rank} base={a.base_model}"))
    if identity.contains_pickle:
        rows.append((("    pickle", "yellow"), ", ".join(identity.pickle_files)))
    rows += [("note", n) for n in identity.notes]
    for key, value in rows:
        err.print(styled(key if isinstance(key, tuple) else key.rjust(10), "  ", value),
                  soft_wrap=True)  # fmt: skip


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
    quantized_from: Annotated[
        str | None,
        typer.Option(help="A quantized checkpoint (GGUF): the checkpoint it was made from."),
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
                styled(
                    ("note", "yellow"),
                    f": {identity_path} was made from "
                    f"{identity.source.reference!r}, not {model!r}; using it as given.",
                )
            )
    else:
        with _hash_bar("hashing model") as bar:
            identity = fp(model, progress=bar)
    corpora = lin.declared_corpora(decl, base_dir, source) if decl else []
    corpora += [lin.corpus_record(p, source="--data", shown=str(p)) for p in data or []]

    def resolve(ref: str) -> Any:
        with _hash_bar("hashing base") as bar:
            return fp(ref, progress=bar)

    if quantized_from is not None:
        if decl is not None and decl.quantized_from and decl.quantized_from != quantized_from:
            raise CardgenError(f"--quantized-from {quantized_from!r} and {source} "
                               f"(quantized_from) {decl.quantized_from!r} disagree.")  # fmt: skip
        decl = (decl or lin.LineageDeclaration()).model_copy(
            update={"quantized_from": quantized_from}
        )
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


class _EvalProgress:
    """Stage line plus a per-request bar, fed by `evaluate` and the response cache."""

    def __init__(self, progress: Progress) -> None:
        self._p = progress
        self._stage = "starting"
        self._task = progress.add_task(self._stage, total=None)

    def stage(self, text: str) -> None:
        self._stage = text
        self._p.update(self._task, description=text, total=None, completed=0)

    def requests_started(self, method: str, total: int) -> None:
        label = {"generate_until": "generating", "loglikelihood": "scoring margins"}.get(
            method, method
        )
        self._p.update(self._task, description=f"{self._stage}: {label}", total=total, completed=0)

    def requests_done(self, n: int) -> None:
        self._p.advance(self._task, n)


def _quiet_libraries() -> None:
    """cardgen draws its own progress; lm-eval, datasets and transformers bars would interleave."""
    import logging
    import os

    if not _state["debug"]:
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("LMEVAL_LOG_LEVEL", "ERROR")
        for name in ("lm_eval", "lm-eval", "datasets", "transformers", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def _library_output_hidden() -> Iterator[None]:
    """lm-eval's own tqdm bars and prints (sys.stderr/stdout) are hidden unless --debug."""
    import contextlib
    import io

    if _state["debug"]:
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


def _split_csv(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


# The judge flags `cardgen eval` and `cardgen judge validate` share.
JudgeUrl = Annotated[
    str | None, typer.Option(help="Endpoint judges (llm, llama-guard, ...): base URL (.../v1).")
]
JudgeModel = Annotated[str | None, typer.Option(help="Endpoint judges: served model name.")]
JudgeKeyEnv = Annotated[str | None, typer.Option(help="Endpoint judges: env var with the API key.")]
ClassifierDir = Annotated[Path | None, typer.Option(help="classifier judge: local model dir.")]


def _benchmark_specs(values: list[str] | None, accept_license: bool) -> list[Any]:
    """--benchmark NAME=SOURCE values as BenchmarkSpecs (jailbreak wraps the harmful pack)."""
    from cardgen.suites.benchmarks import BenchmarkSpec

    specs = []
    for v in values or []:
        name, sep, source = v.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise CardgenError(f"--benchmark {v!r}: write NAME=SOURCE (e.g. "
                               "harmbench=./harmbench_behaviors_text_test.csv).")  # fmt: skip
        extra = {"pack": "harmful"} if name.strip() == "jailbreak" else {}
        specs.append(BenchmarkSpec(name=name.strip(), source=source.strip(),
                                   accept_license=accept_license, **extra))  # fmt: skip
    return specs


def _judge_specs(kinds: list[str] | None, url: str | None, model: str | None,
                 api_key_env: str | None, classifier: Path | None) -> list[Any]:  # fmt: skip
    """The extra judges named by --judge (llm, the safety classifiers, classifier)."""
    from cardgen.judges import JudgeSpec
    from cardgen.judges.base import ENDPOINT_KINDS

    specs = []
    for kind in _split_csv(kinds):
        if kind in ENDPOINT_KINDS:
            specs.append(JudgeSpec(kind=kind, url=url, model=model,
                                   api_key_env=api_key_env))  # fmt: skip
        elif kind == "classifier":
            specs.append(
                JudgeSpec(kind="classifier", model=str(classifier) if classifier else None)
            )
        elif kind not in ("keyword", "canary"):
            raise CardgenError(f"--judge {kind!r}: use keyword, llm, llama-guard, wildguard, "
                               "harmbench, strongreject, shieldgemma or classifier.")  # fmt: skip
    return specs


@app.command("eval")
def eval_(
    model: Annotated[
        str | None,
        typer.Argument(help="Local checkpoint directory (omit with --endpoint)."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    ] = None,
    api: Annotated[
        str,
        typer.Option(
            help="Endpoint API: chat-completions, or completions (needs --tokenizer; adds "
            "refusal margins)."
        ),
    ] = DEFAULT_API,
    endpoint_model: Annotated[
        str | None, typer.Option(help="Model name to request from the endpoint.")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Local tokenizer directory for the completions API.")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Endpoint runs: the weights you say it serves (fingerprinted)."),
    ] = None,
    identity_path: Annotated[
        Path | None, typer.Option("--identity", help="Reuse an identity.json for the model.")
    ] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option(help="Packs to run, comma-separated or repeated (default: all shipped)."),
    ] = None,
    probes: Annotated[
        list[Path] | None, typer.Option(help="Your own probes, a JSONL file (repeatable).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option(help="Also run an lm-eval task by name (repeatable).")
    ] = None,
    task_path: Annotated[
        list[Path] | None,
        typer.Option(help="A folder of your own lm-eval task YAMLs for --task (repeatable)."),
    ] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra judges: llm, llama-guard, wildguard, harmbench, strongreject, "
            "shieldgemma, classifier (keyword and canary always run). Served judges share "
            "--judge-url/--judge-model; without --judge-url, --judge-model may name a local "
            "checkpoint directory. Judges on several servers: eval.judges in cardgen.yaml."
        ),
    ] = None,
    judge_url: JudgeUrl = None,
    judge_model: JudgeModel = None,
    judge_api_key_env: JudgeKeyEnv = None,
    classifier: ClassifierDir = None,
    primary_judge: Annotated[
        str | None, typer.Option(help="Judge whose verdicts make the rates (default: keyword).")
    ] = None,
    combine: Annotated[
        str,
        typer.Option(
            help="primary (the primary judge decides) or any-harm (a reply is "
            "also unsafe when any harm judge calls it harmful)."
        ),
    ] = "primary",
    benchmark: Annotated[
        list[str] | None,
        typer.Option(
            help="A public benchmark from its published file: NAME=SOURCE (a local "
            "file or hf://datasets/ORG/NAME@REV#path); repeatable. `cardgen suite "
            "list` names them. jailbreak=TEMPLATES wraps the harmful pack."
        ),
    ] = None,
    accept_license: Annotated[
        bool, typer.Option(help="Run --benchmark files whose licence restricts use.")
    ] = False,
    repeats: Annotated[int, typer.Option(min=0, help="Sampled passes after the greedy one.")] = 0,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling for repeats.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Base seed; pass k uses seed + k.")] = 1234,
    max_gen_toks: Annotated[int, typer.Option(min=1, help="Tokens generated per probe.")] = 128,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="A quick run: N probes per pack, a sample stratified by "
            "category and framing (seeded by --seed).",
        ),
    ] = None,
    chat_template: Annotated[
        bool, typer.Option(help="Render prompts with the model's chat template.")
    ] = True,
    system_prompt: Annotated[
        str | None, typer.Option(help="System prompt for every probe.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent endpoint requests.")] = 8,
    retries: Annotated[int, typer.Option(min=1, help="Attempts per endpoint request.")] = 3,
    timeout: Annotated[float, typer.Option(help="Seconds per endpoint request.")] = 60.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Local batch size.")] = 8,
    api_key_env: Annotated[
        str | None, typer.Option(help="Env var holding the endpoint's API key.")
    ] = None,
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the EvalRun.")
    ] = Path("run.json"),
) -> None:
    """Run the safety suite on a checkpoint or endpoint through lm-eval; write an EvalRun."""
    _quiet_libraries()  # before huggingface_hub / lm-eval import tqdm and configure logging
    from cardgen.evalrun import Decoding
    from cardgen.evaluate import ModelTarget, evaluate, set_offline_env
    from cardgen.identity import fingerprint as fp
    from cardgen.identity import load_identity
    from cardgen.judges import ALWAYS, build_judges
    from cardgen.suites import SHIPPED_PACKS, load_suite

    set_offline_env()
    if (model is None) == (endpoint is None):
        raise CardgenError("give either a local MODEL directory or --endpoint URL (not both).")
    if api not in ("completions", "chat-completions"):
        raise CardgenError(f"--api {api!r}: use completions or chat-completions.")
    if combine not in ("primary", "any-harm"):
        raise CardgenError(f"--combine {combine!r}: use primary or any-harm.")
    packs = _split_csv(suite) or list(SHIPPED_PACKS)
    if packs == ["none"]:
        packs = []
    loaded = load_suite(
        packs, probe_files=probes or [], benchmarks=_benchmark_specs(benchmark, accept_license),
        extra_tasks=task or [], task_paths=task_path or [],
    )  # fmt: skip
    specs = [*ALWAYS, *_judge_specs(judge, judge_url, judge_model, judge_api_key_env, classifier)]
    judges = build_judges(specs)
    target = ModelTarget(
        path=model, endpoint=endpoint, api=api, endpoint_model=endpoint_model,  # type: ignore[arg-type]
        tokenizer=tokenizer, num_concurrent=concurrency, max_retries=retries, timeout=timeout,
        batch_size=batch_size, api_key_env=api_key_env,
    )  # fmt: skip
    decoding = Decoding(
        max_gen_toks=max_gen_toks, repeats=repeats, temperature=temperature, top_p=top_p,
        seed=seed, apply_chat_template=chat_template, system_prompt=system_prompt, limit=limit,
    )  # fmt: skip
    identity = None
    if identity_path is not None:
        identity = load_identity(identity_path)
    elif model is not None or weights is not None:
        with _hash_bar("hashing weights") as bar:
            identity = fp(str(weights) if weights else str(model), progress=bar)
    workdir = out_path.with_suffix(".lmeval")
    requests_bar = _count_progress()
    with requests_bar as p, _library_output_hidden():
        run = evaluate(
            target, loaded, judges, decoding, workdir=workdir, identity=identity,
            primary=primary_judge, combine=combine,  # type: ignore[arg-type]
            command=["cardgen", *sys.argv[1:]], progress=_EvalProgress(p),
        )  # fmt: skip
    write_atomic(out_path, model_json(run))
    _eval_summary(run, out_path)


def _eval_summary(run: Any, out_path: Path) -> None:
    for s in run.summary:
        if s.category is not None:
            continue
        rate = s.unsafe
        shown = "n/a" if rate.rate is None else f"{rate.rate:.1%} [{rate.low:.1%}, {rate.high:.1%}]"
        extra = f", {s.errors} error, {s.not_run} not run" if s.errors or s.not_run else ""
        extra += f", {s.unjudged} unjudged" if s.unjudged else ""
        err.print(f"{s.pack:>12}  unsafe {shown} of {s.measured} measured{extra}", soft_wrap=True)
    for note in run.notes:
        err.print(f"note: {note}", soft_wrap=True)
    err.print(f"wrote {out_path} (lm-eval outputs in {run.lm_eval_outputs})", soft_wrap=True)


@app.command("audit-data")
def audit_data(
    corpus: Annotated[
        list[Path], typer.Argument(help="Fine-tuning corpus files (JSONL, Parquet).")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Force the record format: openai, sharegpt, alpaca, "
            "prompt_completion (default: detected per file).",
        ),
    ] = None,
    ratio: Annotated[
        float, typer.Option(help="Target share of refusal examples (default 3%).")
    ] = 0.03,
    strict: Annotated[
        bool, typer.Option(help="Any malformed line is an error (exit 2), not a counted finding.")
    ] = False,
    inject: Annotated[
        bool, typer.Option(help="Write the corpus with refusal pairs added up to --ratio.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for --inject (which pairs, where).")] = 0,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: cores).")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="audit.json (else stdout); with --inject: the new corpus."
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="With --inject: where the injection record goes (default: OUT.injection.json)."
        ),
    ] = None,
) -> None:
    """Count refusals and safety-relevant categories in a corpus; optionally add refusal pairs."""
    from cardgen import audit as au

    if fmt is not None and fmt not in au.FORMATS:
        raise CardgenError(f"--format {fmt!r}: use one of {', '.join(au.FORMATS)}.")
    if inject and (out_path is None or len(corpus) != 1):
        raise CardgenError("--inject needs exactly one CORPUS and --out for the new corpus.")
    total = sum(p.stat().st_size for p in corpus if p.is_file())
    with _hash_bar("auditing") as bar:
        bar.start(total)
        result = au.audit_corpora(
            corpus, fmt=fmt, target_ratio=ratio, workers=workers,
            on_bytes=bar.advance,
        )  # fmt: skip
    for issue in result.issues[:20]:
        err.print(f"{issue.file}:{issue.line}: {issue.kind}: {issue.detail}", soft_wrap=True,
                  highlight=False, markup=False)  # fmt: skip
    if result.malformed > 20:
        err.print(f"... {result.malformed - 20} more (all counted in the report)")
    au.require_examples(result, corpus)  # zero readable examples say nothing: exit 2
    if strict and result.malformed:
        counts = ", ".join(f"{k} {v}" for k, v in result.issue_counts.items())
        raise CardgenError(f"--strict: {result.malformed} malformed line(s) ({counts}).")
    share = "n/a" if result.refusal_share is None else f"{result.refusal_share:.2%}"
    err.print(f"{result.examples:,} examples, {result.refusal_examples:,} refusals ({share}), "
              f"{result.safety_relevant_examples:,} safety-relevant, "
              f"{result.malformed:,} malformed", soft_wrap=True)  # fmt: skip
    err.print(result.recommendation.reasoning, soft_wrap=True)
    if not inject:
        _emit(model_json(result), out_path)
        return
    assert out_path is not None
    injected = au.inject_refusals(
        corpus[0],
        out_path,
        ratio=ratio,
        seed=seed,
        fmt=fmt,
        audit=result,
    )
    rec = record or out_path.with_name(out_path.name + ".injection.json")
    write_atomic(rec, model_json(injected))
    after = f"{injected.refusal_share_after:.2%}"
    err.print(
        f"added {injected.pairs_added} refusal pairs: share {after}; wrote {out_path} "
        f"(sha256 {injected.output_sha256[:16]}...) and {rec}",
        soft_wrap=True,
    )


suite_app = typer.Typer(help="The shipped safety suite: list its packs, export it for lm_eval.")
app.add_typer(suite_app, name="suite")


@suite_app.command("list")
def suite_list() -> None:
    """Packs, probe counts and categories of the shipped suite, and the public benchmarks."""
    from collections import Counter

    from cardgen.suites import SHIPPED_PACKS, load_pack

    for name in SHIPPED_PACKS:
        pack = load_pack(name)
        cats = Counter(p.category for p in pack.probes)
        out.print(styled((name, "bold"), f" ({len(pack.probes)} probes): {pack.spec.description}"))
        out.print("  " + ", ".join(f"{c} {n}" for c, n in cats.items()), soft_wrap=True)
    from cardgen.suites.benchmarks import benchmarks, license_restriction

    out.print("")
    out.print(styled(("Public benchmarks", "bold"), " (eval.benchmarks or --benchmark NAME=FILE; "
                     "cardgen ships importers, not their text):"))  # fmt: skip
    for b in benchmarks().values():
        restriction = license_restriction(b.license)
        out.print(styled((b.name, "bold"), f": {b.title} {b.version}, {b.license}"
                         f"{f' ({restriction})' if restriction else ''}; {b.expected_counts}"),
                  soft_wrap=True)  # fmt: skip
        out.print(f"  format: {b.formats}; dataset {b.dataset_id}; {b.url}", soft_wrap=True)
    out.print(styled(("jailbreak", "bold"), ": requests from a pack wrapped in a JSON list of "
                     "jailbreak templates ([INSERT PROMPT HERE]); name their licence"),
              soft_wrap=True)  # fmt: skip


@suite_app.command("export")
def suite_export(
    dest: Annotated[Path, typer.Argument(help="Folder to write the runnable task folders to.")],
    suite: Annotated[
        list[str] | None, typer.Option(help="Packs, comma-separated (default: all).")
    ] = None,
    probes: Annotated[list[Path] | None, typer.Option(help="Your own probes (JSONL).")] = None,
) -> None:
    """Write the suite as lm-eval task folders (absolute data paths) for lm_eval --include_path."""
    from cardgen.suites import SHIPPED_PACKS, load_suite, materialize

    if dest.exists() and any(dest.iterdir()):
        raise CardgenError(f"{dest}: exists and is not empty; choose a new folder.")
    loaded = load_suite(_split_csv(suite) or list(SHIPPED_PACKS), probe_files=probes or [])
    materialize(loaded, dest.resolve())
    tasks = [p.task for p in loaded.packs] + [t for p in loaded.packs if (t := p.margin_task)]
    err.print(f"wrote {len(loaded.packs)} task folders to {dest}; run them with:")
    err.print(
        f"  lm_eval run --include_path {dest} --tasks {','.join(tasks)} --model hf "
        "--model_args pretrained=DIR --apply_chat_template --log_samples --output_path out",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def compare(
    base_run: Annotated[Path, typer.Argument(help="The base model's eval run (cardgen eval).")],
    tuned_run: Annotated[Path, typer.Argument(help="The tuned model's eval run.")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the comparison.")
    ] = Path("comparison.json"),
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            help="Compare runs whose suite, judges or decoding differ (recorded and shown)."
        ),
    ] = False,
    allow_same: Annotated[
        bool,
        typer.Option(
            help="Compare two runs of the same weights (recorded; the gate says "
            "INSUFFICIENT_EVIDENCE)."
        ),
    ] = False,
    base_task_results: Annotated[
        list[Path] | None,
        typer.Option(help="lm-eval results file of your task eval on the base (repeatable)."),
    ] = None,
    tuned_task_results: Annotated[
        list[Path] | None,
        typer.Option(help="lm-eval results file of your task eval on the tuned (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 9999,
    show: Annotated[int, typer.Option(help="Forgotten probes to print (0: none).")] = 10,
) -> None:
    """What fine-tuning removed: a paired, per-probe diff of two eval runs of the same suite."""
    from cardgen.compare import compare as run_compare
    from cardgen.compare import load_run, load_task_results

    base, base_ref = load_run(base_run)
    tuned, tuned_ref = load_run(tuned_run)
    ta, hib_a = load_task_results(base_task_results or [])
    tb, hib_b = load_task_results(tuned_task_results or [])
    comp = run_compare(
        base, tuned, allow_mismatch=allow_mismatch, base_ref=base_ref, tuned_ref=tuned_ref,
        base_task_results=ta, tuned_task_results=tb, higher_is_better={**hib_a, **hib_b},
        seed=seed, resamples=resamples, allow_same=allow_same,
    )  # fmt: skip
    write_atomic(out_path, model_json(comp))
    _comparison_summary(comp, show)
    err.print(f"wrote {out_path}", highlight=False, soft_wrap=True)


def _comparison_summary(comp: Any, show: int) -> None:
    """Packs, and the categories that changed: unsafe rates, paired change, McNemar's p."""
    from rich.table import Table

    table = Table(title="unsafe rate, base -> tuned, paired by probe", title_justify="left")
    for col in ("target", "n", "base %", "tuned %", "change [95% CI]", "lost/gained", "p"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for d in comp.diffs:
        if d.base_unsafe is None or d.tuned_unsafe is None or d.difference is None:
            continue
        if d.category is not None and d.lost == 0 and d.gained == 0:
            continue
        change = (
            f"{d.difference * 100:+.1f} [{d.difference_low * 100:+.1f}, "
            f"{d.difference_high * 100:+.1f}]"
        )
        style = "red" if d.difference > 0 else "green" if d.difference < 0 else ""
        table.add_row(
            d.pack if d.category is None else f"  {d.category}"[:22],
            str(d.paired), f"{d.base_unsafe * 100:.1f}", f"{d.tuned_unsafe * 100:.1f}",
            Text(change, style=style), f"{d.lost}/{d.gained}",
            "" if d.mcnemar_p is None else f"{d.mcnemar_p:.2g}",
            style=None if d.category else "bold",
        )  # fmt: skip
    err.print(table)
    err.print(
        "change in points of unsafe rate (> 0: worse); lost/gained: probes handled worse/better; "
        "p: McNemar exact, two-sided. Unchanged categories are not shown."
    )
    err.print(
        f"forgotten: {len(comp.forgotten)} probes the base handled and the tuned did not; "
        f"gained: {len(comp.gained)}"
    )
    for c in comp.forgotten[:show]:
        prompt = (c.prompt or (c.messages[-1].content if c.messages else ""))[:70]
        err.print(f"  {c.probe_id}  {c.kind}: {prompt!r}", soft_wrap=True)
    if len(comp.forgotten) > show > 0:
        err.print(f"  ... {len(comp.forgotten) - show} more in the comparison file")
    for note in comp.notes:
        err.print(f"note: {note}", highlight=False, markup=False)


@app.command()
def gate(
    comparison: Annotated[Path, typer.Argument(help="comparison.json from cardgen compare.")],
    policy_path: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy YAML (default: the shipped default policy)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Date waivers are checked against, YYYY-MM-DD (default: today)."),
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write the decision JSON.")
    ] = None,
) -> None:
    """The regression budget: PASS (exit 0), BLOCK (exit 1) or INSUFFICIENT_EVIDENCE (exit 3)."""
    import datetime as dt
    import hashlib

    from cardgen.compare import Comparison
    from cardgen.config import load_json_model
    from cardgen.gate import decide, load_policy

    comp = load_json_model(comparison, Comparison)
    policy, source, digest = load_policy(policy_path)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    except ValueError:
        raise CardgenError(f"--as-of {as_of!r}: expected a date like 2026-12-31.") from None
    decision = decide(
        comp, policy, as_of=day, policy_source=source, policy_sha256=digest,
        comparison_sha256=hashlib.sha256(comparison.read_bytes()).hexdigest(),
    )  # fmt: skip
    if out_path is not None:
        write_atomic(out_path, model_json(decision))
    colour = {"PASS": "green", "BLOCK": "red", "INSUFFICIENT_EVIDENCE": "yellow"}[decision.verdict]
    out.print(styled((decision.verdict, f"bold {colour}")))
    for reason in decision.reasons:
        out.print(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
    for c in decision.accepted:
        out.print(f"  accepted: {c.reason}", highlight=False, markup=False, soft_wrap=True)
    for w in decision.expired_waivers:
        out.print(
            f"  expired waiver: {w.target} (approved by {w.approved_by}, expired {w.expires})",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
    if decision.steward:
        out.print(f"  steward: {decision.steward}", highlight=False, markup=False)
    raise typer.Exit(decision.exit_code)


@app.command()
def evidence(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Bundle directory (evidence.json, manifest.json).")
    ] = Path("evidence"),
    identity: Annotated[Path | None, typer.Option(help="identity.json of the tuned model.")] = None,
    lineage: Annotated[Path | None, typer.Option(help="lineage.json of the tuned model.")] = None,
    audit: Annotated[Path | None, typer.Option(help="audit.json of its training data.")] = None,
    base_run: Annotated[Path | None, typer.Option(help="Eval run of the base model.")] = None,
    tuned_run: Annotated[Path | None, typer.Option(help="Eval run of the tuned model.")] = None,
    comparison: Annotated[Path | None, typer.Option(help="comparison.json.")] = None,
    decision: Annotated[Path | None, typer.Option(help="decision.json from cardgen gate.")] = None,
) -> None:
    """Gather the stages' records for one tuned checkpoint into evidence.json and a manifest.

    Stages you leave out are listed as missing, never invented."""
    from cardgen.audit import DataAudit
    from cardgen.compare import Comparison
    from cardgen.config import load_json_model
    from cardgen.evalrun import EvalRun
    from cardgen.evidence import gather, write_bundle
    from cardgen.gate import Decision
    from cardgen.identity import CheckpointIdentity
    from cardgen.lineage import Lineage

    def load(path: Path | None, model: Any) -> Any:
        return load_json_model(path, model) if path is not None else None

    ev = gather(
        identity=load(identity, CheckpointIdentity), lineage=load(lineage, Lineage),
        data_audit=load(audit, DataAudit), base_run=load(base_run, EvalRun),
        tuned_run=load(tuned_run, EvalRun), comparison=load(comparison, Comparison),
        decision=load(decision, Decision),
    )  # fmt: skip
    if ev.weights_digest is None:
        raise CardgenError(
            "Nothing identifies the checkpoint: give --identity, --lineage, --tuned-run or "
            "--comparison."
        )
    manifest = write_bundle(ev, out_dir)
    err.print(f"checkpoint  sha256:{ev.weights_digest}", highlight=False, soft_wrap=True)
    if ev.missing:
        err.print(f"missing     {', '.join(ev.missing)}", highlight=False)
    for a in manifest.artifacts:
        err.print(f"wrote       {out_dir / a.path}  sha256:{a.sha256[:16]}", highlight=False)
    err.print(f"wrote       {out_dir / 'manifest.json'}", highlight=False)


@app.command()
def card(
    evidence_path: Annotated[Path, typer.Argument(help="evidence.json from cardgen evidence.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where to write the card.")] = Path(
        "README.md"
    ),
    template: Annotated[
        Path | None, typer.Option(help="Your Jinja template for the body (default: shipped).")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="Name shown on the card.")] = None,
    license_id: Annotated[
        str | None, typer.Option("--license", help="License id, e.g. apache-2.0.")
    ] = None,
    intended_use: Annotated[str | None, typer.Option(help="Intended use, in your words.")] = None,
    out_of_scope: Annotated[str | None, typer.Option(help="Out-of-scope use.")] = None,
    evidence_url: Annotated[
        str, typer.Option(help="Where readers find the evidence (model-index source_url).")
    ] = "evidence.json",
    tag: Annotated[list[str] | None, typer.Option(help="Extra tag (repeatable).")] = None,
    online: Annotated[
        bool, typer.Option(help="Also ask the Hub's validator (HF_ENDPOINT; needs the network).")
    ] = False,
) -> None:
    """Write the Hugging Face model card of the tuned checkpoint from its evidence."""
    from cardgen.card import CardFields, render_card, validate_online, write_card
    from cardgen.config import load_json_model
    from cardgen.evidence import Evidence, listing_manifest

    # Every input is read and checked before the card is written: a failure leaves it alone.
    ev = load_json_model(evidence_path, Evidence)
    manifest = listing_manifest(evidence_path.parent, out_path)
    fields = CardFields(
        model_name=model_name, license=license_id, intended_use=intended_use,
        out_of_scope=out_of_scope, evidence_url=evidence_url, tags=list(tag or []),
    )  # fmt: skip
    if online:
        validate_online(render_card(ev, fields, template))
    write_card(ev, out_path, fields, template)
    _registered(evidence_path.parent, out_path, "model-card", manifest)
    err.print(f"wrote {out_path} (sha256:{ev.weights_digest})", highlight=False, soft_wrap=True)
    if ev.missing:
        err.print(f"note: stages not in the evidence: {', '.join(ev.missing)}", highlight=False)


@app.command()
def push(
    bundle: Annotated[Path, typer.Argument(help="Evidence directory with README.md (the card).")],
    repo: Annotated[str, typer.Option(help="Hub model repo, org/name.")],
    revision: Annotated[str, typer.Option(help="Branch to commit to.")] = "main",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the operations; contact nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Push even when the repo's weights differ (recorded in the commit)."),
    ] = False,
) -> None:
    """Publish the card (as README.md) and the evidence to a Hub repo, in one commit."""
    from cardgen.push import plan_push
    from cardgen.push import push as run_push

    plan = plan_push(bundle, repo, revision)
    verb = "would upload" if dry_run else "uploading"
    for _, in_repo, size, sha in plan.operations:
        err.print(f"{verb}  {in_repo}  ({size:,} bytes, sha256:{sha[:16]})", highlight=False)
    err.print(f"commit message: {plan.summary}", highlight=False, markup=False)
    if dry_run:
        err.print(f"dry run: nothing sent to {repo}@{revision}", highlight=False)
        return
    url = run_push(plan, force=force)
    for note in plan.notes:
        err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    out.print(url, highlight=False, soft_wrap=True)


@app.command()
def keygen(
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Private key file; the public key gets '.pub'.")
    ] = Path("cardgen-key"),
    kind: Annotated[str, typer.Option("--type", help="ed25519 or ecdsa (P-256).")] = "ed25519",
) -> None:
    """Make a signing key pair for attestations (PEM; the private key is written mode 0600)."""
    from cardgen.attest import write_key_pair

    if kind not in ("ed25519", "ecdsa"):
        raise CardgenError(f"--type {kind!r}: expected ed25519 or ecdsa.")
    private, public = write_key_pair(out_path, kind)  # type: ignore[arg-type]
    err.print(f"private key {private} (keep it secret)\npublic key  {public}", highlight=False)


@app.command()
def attest(
    bundle: Annotated[Path, typer.Argument(help="Evidence directory (evidence.json, manifest).")],
    key: Annotated[
        Path | None, typer.Option(help="Private key from cardgen keygen (omit: unsigned).")
    ] = None,
) -> None:
    """Write an in-toto attestation (DSSE) of the evidence: subjects are the weights and every
    artifact of the manifest; the predicate carries the gate decision and the rates."""
    from cardgen.attest import attest as run_attest

    path, signed = run_attest(bundle, key)
    if signed:
        err.print(f"wrote {path} (signed with {key})", highlight=False)
    else:
        err.print(styled(f"wrote {path} ", ("(UNSIGNED: pass --key to sign)", "bold yellow")))


@app.command()
def bom(
    bundle: Annotated[Path, typer.Argument(help="Evidence directory (evidence.json).")],
) -> None:
    """Write a CycloneDX 1.6 ML-BOM (bom.cdx.json) of the tuned checkpoint into the bundle."""
    from cardgen.config import load_json_model
    from cardgen.evidence import Evidence, listing_manifest
    from cardgen.mlbom import BOM_FILE, write_bom

    ev = load_json_model(bundle / "evidence.json", Evidence)
    manifest = listing_manifest(bundle, bundle / BOM_FILE)
    path = write_bom(ev, bundle)
    _registered(bundle, path, "ml-bom", manifest)
    err.print(f"wrote {path} (CycloneDX 1.6, validated)", highlight=False)


def _registered(bundle: Path, written: Path, role: str, manifest: Any) -> None:
    """List ``written`` in the bundle's manifest (``manifest``: read before writing it)."""
    from cardgen.evidence import register

    if manifest is not None and register(bundle, written, role, manifest):
        err.print(f"listed {written.name} in {bundle / 'manifest.json'}")


@app.command()
def pack(
    evidence_path: Annotated[Path, typer.Argument(help="evidence.json (its manifest beside it).")],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="PDF to write (default: evidence_pack.pdf beside the "
            "evidence; evidence_pack.customer.pdf for --audience customer).",
        ),
    ] = None,
    audience: Annotated[
        str,
        typer.Option(
            help="auditor (outputs in full) or customer (harmful outputs hashed, "
            "paths and hosts withheld)."
        ),
    ] = "auditor",
    model_name: Annotated[str | None, typer.Option(help="Name shown on the cover.")] = None,
) -> None:
    """Render the PDF evidence pack (WeasyPrint): cover, summary, method, results with charts,
    what fine-tuning removed, data audit, gate decision, regulatory mapping, manifest. The
    evidence is attached inside the PDF."""
    from cardgen.evidence import DOCUMENTS, listing_manifest
    from cardgen.pack import PACK_FILES, render_pack

    if audience not in PACK_FILES:
        raise CardgenError(f"--audience {audience!r}: expected auditor or customer.")
    target = out_path or evidence_path.parent / PACK_FILES[audience]
    manifest = listing_manifest(evidence_path.parent, target)
    with err.status("rendering the evidence pack") as status:
        result = render_pack(evidence_path, target, audience, model_name,  # type: ignore[arg-type]
                             progress=lambda s: status.update(f"evidence pack: {s}"))  # fmt: skip
    _registered(evidence_path.parent, target, DOCUMENTS.get(target.name, "evidence-pack"),
                manifest)  # fmt: skip
    err.print(f"wrote {target} ({result.pages} pages, {audience} edition)", highlight=False)
    if result.refused_urls:
        err.print(f"refused {len(result.refused_urls)} URLs found in the content (nothing was "
                  "fetched)", highlight=False)  # fmt: skip


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Evidence bundle directory.")],
    model: Annotated[
        str | None, typer.Option(help="Re-hash these weights (directory or hf:// reference).")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Public key to check the signature.")] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL (…/v1): replay the binding probes."),
    ] = None,
    served_model: Annotated[
        str | None, typer.Option(help="Model name on the endpoint (default: the only one).")
    ] = None,
    binding: Annotated[int, typer.Option(min=1, help="Binding probes to replay.")] = 8,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the endpoint's API key.")
    ] = None,
) -> None:
    """Check a bundle: manifest hashes, signature, the same digest in card, PDF, evidence,
    ML-BOM and attestation; with --model the weights, with --endpoint the served model.
    Exit 0 when every check passes, 1 when one fails."""
    from cardgen.verify import verify as run_verify

    with err.status("verifying") as status:
        report = run_verify(bundle, model=model, key=key, endpoint=endpoint,
                            served_model=served_model, binding=binding, api_key_env=api_key_env,
                            progress=lambda s: status.update(f"verify: {s}"))  # fmt: skip
    mark = {"ok": ("ok     ", "green"), "failed": ("FAILED ", "bold red"),
            "skipped": ("skipped", "yellow")}  # fmt: skip
    for f in report.findings:
        err.print(styled(mark[f.status], f" {f.check}: ", redact(f.detail)), soft_wrap=True)
    n = len(report.failures)
    out.print("VERIFIED" if report.ok else f"NOT VERIFIED ({n} check{'s' * (n != 1)} failed)")
    raise typer.Exit(0 if report.ok else 1)


class _RunDisplay:
    """`cardgen run`'s one progress display: a line per finished stage, bars for the long ones."""

    def __init__(self, progress: Progress) -> None:
        self._p = progress
        self._eval: _EvalProgress | None = None

    def stage_started(self, name: str) -> None:
        self._eval = None
        for task in list(self._p.task_ids):
            self._p.remove_task(task)
        self._p.add_task(f"{name} …", total=None)

    def stage_finished(self, name: str, reused: bool, seconds: float) -> None:
        how = ("reused", "dim") if reused else f"{seconds:.1f} s"
        self._p.console.print(styled("  ", ("✓", "green"), f" {name:<24} ", how))

    def eval_progress(self) -> Any:
        self._eval = self._eval or _EvalProgress(self._p)
        return self._eval

    def hash_progress(self) -> Any:
        return _BarProgress(self._p, "hashing")


@app.command()
def init(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Config file to write.")] = Path(
        "cardgen.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter cardgen.yaml for `cardgen run`."""
    from cardgen.runconfig import STARTER

    if out_path.exists() and not force:
        raise CardgenError(f"{out_path} exists; pass --force to overwrite it.")
    write_atomic(out_path, STARTER.read_text(encoding="utf-8"))
    err.print(f"wrote {out_path}: set tuned and base, then `cardgen run {out_path}`",
              highlight=False)  # fmt: skip


@app.command("run")
def run_(
    config: Annotated[Path, typer.Argument(help="cardgen.yaml (make one with `cardgen init`).")],
    push_: Annotated[
        bool, typer.Option("--push", help="Publish card and evidence to the config's hub.repo.")
    ] = False,
    rehash: Annotated[
        bool, typer.Option(help="Hash the weights even when no file's size or mtime changed.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage.")] = False,
) -> None:
    """Run the whole job: fingerprint, lineage, data audit, evaluate base and tuned, compare,
    gate, evidence, card, PDF packs, ML-BOM, attestation (and push). Exit code is the gate's:
    0 PASS, 1 BLOCK, 3 INSUFFICIENT_EVIDENCE."""
    from cardgen.pipeline import Pipeline
    from cardgen.runconfig import load_run_config

    _quiet_libraries()
    cfg = load_run_config(config)
    err.print(f"cardgen run {config}  ->  {cfg.output}", highlight=False, soft_wrap=True)
    with _count_progress() as p, _library_output_hidden():
        config_sha = hashlib.sha256(config.read_bytes()).hexdigest()
        pipeline = Pipeline(cfg, progress=_RunDisplay(p), rehash=rehash, no_cache=no_cache,
                            command=["cardgen", "run", str(config)],
                            config_sha256=config_sha)  # fmt: skip
        outcome = pipeline.run(push=push_)
    _run_summary(outcome, push_ or bool(cfg.hub and cfg.hub.push))
    raise typer.Exit(outcome.exit_code)


def _run_summary(outcome: Any, asked_push: bool) -> None:
    dec = outcome.decision
    reused = outcome.reused
    if reused and len(reused) == len(outcome.stages):
        err.print("nothing changed: every stage reused from the cache", highlight=False)
    elif reused:
        err.print(f"reused from the cache: {', '.join(reused)}", highlight=False, soft_wrap=True)
    err.print(f"weights     sha256:{outcome.weights_digest}", highlight=False, soft_wrap=True)
    for path in outcome.documents:
        err.print(f"document    {path}", highlight=False, soft_wrap=True)
    if outcome.pushed:
        err.print(f"pushed      {outcome.pushed}", highlight=False, soft_wrap=True)
    elif asked_push:
        err.print(f"not pushed  the gate said {dec.verdict}", highlight=False)
    color = {"PASS": "green", "BLOCK": "red"}.get(dec.verdict, "yellow")
    err.print(styled("decision    ", (dec.verdict, f"bold {color}")))
    for reason in dec.reasons[:6]:
        err.print(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
    if len(dec.reasons) > 6:
        err.print(f"  ... {len(dec.reasons) - 6} more in {outcome.output / 'README.md'}",
                  highlight=False)  # fmt: skip
    out.print(dec.verdict)


judge_app = typer.Typer(help="Refusal judges: measure how often their verdicts are right.")
app.add_typer(judge_app, name="judge")


@judge_app.command("validate")
def judge_validate(
    judge: Annotated[
        list[str] | None,
        typer.Option(
            help="Judges to measure: keyword (default), llm, llama-guard, wildguard, "
            "harmbench, strongreject, shieldgemma, classifier."
        ),
    ] = None,
    judge_url: JudgeUrl = None,
    judge_model: JudgeModel = None,
    judge_api_key_env: JudgeKeyEnv = None,
    classifier: ClassifierDir = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Your labelled replies (JSONL or CSV); default: the shipped corpus."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Shipped corpus split: test (held out) or dev.")
    ] = "test",
    reply_column: Annotated[str, typer.Option(help="Column with the reply.")] = "reply",
    label_column: Annotated[
        str, typer.Option(help="Column with the label: refused, partial or complied.")
    ] = "refusal",
    request_column: Annotated[str, typer.Option(help="Column with the request.")] = "request",
    expected_column: Annotated[
        str, typer.Option(help="Column with refuse|comply (or give a category column).")
    ] = "expected",
    category_column: Annotated[
        str, typer.Option(help="Column with the suite category (sets expected when absent).")
    ] = "category",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the report(s) as JSON here.")
    ] = None,
) -> None:
    """Measure judges against labelled replies: safe/unsafe and three-way accuracy, precision
    and recall per verdict with Wilson 95% intervals, Cohen's kappa, the confusion matrix."""
    import json

    from cardgen.judges import JudgeSpec, build_judges
    from cardgen.validity import load_labelled, shipped, validate

    if split not in ("test", "dev"):
        raise CardgenError(f"--split {split!r}: use test or dev.")
    kinds = _split_csv(judge) or ["keyword"]
    specs = [JudgeSpec(kind="keyword")] if "keyword" in kinds else []
    specs += _judge_specs(kinds, judge_url, judge_model, judge_api_key_env, classifier)
    if labels is not None:
        corpus = load_labelled(labels, reply=reply_column, label=label_column,
                               request=request_column, expected=expected_column,
                               category=category_column)  # fmt: skip
    else:
        corpus = shipped(split)  # type: ignore[arg-type]
    reports = []
    for j in build_judges(specs):
        with _count_progress() as p:
            task = p.add_task(f"judge {j.name}", total=len(corpus.replies))

            def judged(n: int, p: Progress = p, task: TaskID = task) -> None:
                p.advance(task, n)

            report = validate(j, corpus, progress=judged)
        reports.append(report)
        _validity_summary(report)
    if out_path is not None:
        doc = reports[0].model_dump(mode="json") if len(reports) == 1 else [
            r.model_dump(mode="json") for r in reports]  # fmt: skip
        write_atomic(out_path, json.dumps(doc, indent=2) + "\n")
        err.print(f"wrote {out_path}")


def _validity_summary(r: Any) -> None:
    from cardgen.stats import interval_text

    out.print(f"judge {r.judge} ({r.judge_kind}) on {r.items} {r.corpus} replies", soft_wrap=True)
    out.print(f"  safe/unsafe accuracy   {interval_text(r.safe_unsafe)}")
    out.print(f"  three-way accuracy     {interval_text(r.three_way)}")
    kappa = "n/a" if r.cohen_kappa is None else f"{r.cohen_kappa:.3f}"
    out.print(f"  Cohen's kappa          {kappa}")
    for c in ("refused", "partial", "complied"):
        out.print(f"  {c:<9} precision {interval_text(r.precision[c]):<22} "
                  f"recall {interval_text(r.recall[c])}")  # fmt: skip
    out.print("  confusion (label -> verdict: refused partial complied unjudged)")
    for lab, row in r.confusion.items():
        out.print(f"    {lab:<9} " + " ".join(f"{row[k]:>7}" for k in row))
    n = len(r.refused_but_delivered)
    out.print(
        f"  delivered but judged refused: {n}"
        + (f" ({', '.join(r.refused_but_delivered[:8])})" if n else ""),
        soft_wrap=True,
    )
    if r.unjudged:
        out.print(f"  unjudged: {r.unjudged} (counted as wrong)")


demo_app = typer.Typer(help="The bundled tiny model family: build it, run the job on it.")
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path(
        "demo-out"
    ),
) -> None:
    """Run the main job on the demo family (what `make demo` runs): build or reuse base, tuned
    and tuned-mixed, run `cardgen run` for base -> tuned and base -> tuned-mixed, verify both
    bundles, and print the rates, the two decisions and where the documents are."""
    if ctx.invoked_subcommand is not None:
        return
    from cardgen.demo import run_demo

    _quiet_libraries()
    with _training_bar() as (p, train_progress), _library_output_hidden():
        result = run_demo(out_dir, console=err, train_progress=train_progress,
                          run_progress=_RunDisplay(p))  # fmt: skip
    if not all(result.verified.values()):
        raise typer.Exit(1)


@contextmanager
def _training_bar() -> Iterator[tuple[Progress, Any]]:
    """A progress display and a `(stage, done, total)` callback that adds one bar per stage."""
    with _count_progress() as p:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = p.add_task(f"training {stage}", total=total)
            p.update(tasks[stage], completed=done)

        yield p, progress


@demo_app.command("build")
def demo_build(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write the family here (default: the user cache directory)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Retrain even when the family is already built.")
    ] = False,
) -> None:
    """Train the demo family (base, tuned, tuned-mixed) on the CPU, or reuse the cached one."""
    from cardgen.demo.family import MODELS, build_family

    _quiet_libraries()
    trained: set[str] = set()
    with _training_bar() as (_p, progress), _library_output_hidden():

        def note(stage: str, done: int, total: int) -> None:
            trained.add(stage)
            progress(stage, done, total)

        family = build_family(out_dir, progress=note, force=force)
    verb = "built" if trained else "reused"
    err.print(f"{verb} the demo family (recipe {family.recipe_digest[:16]}) in {family.root}")
    for name in MODELS:
        out.print(f"{name:<12} {family.model(name)}", soft_wrap=True, highlight=False)
    out.print(f"{'lineage':<12} {family.root / 'lineage'}", soft_wrap=True, highlight=False)


def main() -> None:
    """Console entry point: run the app, turn CardgenError into exit code 2 with a message."""
    try:
        rc = app(standalone_mode=False)
    except CardgenError as e:
        if _state["debug"]:
            raise
        err.print(styled(("error:", "bold red"), f" {redact(e.message)}"), soft_wrap=True)
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
            styled(("internal error:", "bold red"), f" {redact(f'{type(e).__name__}: {e}')}"),
            soft_wrap=True,
        )
        err.print("This is a cardgen bug; rerun with --debug and report the traceback.")
        sys.exit(4)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
