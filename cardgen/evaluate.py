"""Run the suite on one model through lm-eval and read the samples back into an `EvalRun`.

    >>> run = evaluate(ModelTarget(path="out/tuned"), load_suite(), [KeywordJudge()], Decoding(),
    ...                workdir=Path("runs/tuned.lmeval"))                   # doctest: +SKIP

Local checkpoints run on lm-eval's ``hf`` backend; served ones on ``local-completions``
(generation and log-likelihoods, needs the tokenizer) or ``local-chat-completions`` (generation
only). Every model call goes through a JSON response cache in ``workdir``, so an interrupted run,
rerun with the same arguments, repeats no completed call and ends with the same EvalRun.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from cardgen.errors import CardgenError
from cardgen.evalrun import (
    Backend,
    Combine,
    Decoding,
    EndpointInfo,
    EvalRun,
    JudgeInfo,
    JudgementRecord,
    ModelInfo,
    PackInfo,
    ProbeRecord,
    SampleRecord,
    combined_harm,
)
from cardgen.identity import CheckpointIdentity
from cardgen.judges import Judge, JudgeItem, judges_refusal
from cardgen.redact import redact
from cardgen.runconfig import DEFAULT_API
from cardgen.suites import Pack, Probe, Suite, materialize, stratified_sample
from cardgen.validity import measured

#: lm-eval reaches for the Hub (datasets, evaluate metrics) unless told not to.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
NONE_ANSWER = "LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER"


@dataclass
class ModelTarget:
    """What to evaluate: a local checkpoint directory, or an OpenAI-compatible endpoint."""

    path: str | None = None
    endpoint: str | None = None  # base URL, e.g. http://127.0.0.1:8000/v1
    api: Literal["completions", "chat-completions"] = DEFAULT_API
    endpoint_model: str | None = None
    tokenizer: str | None = None
    num_concurrent: int = 1
    max_retries: int = 3
    timeout: float = 60.0
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    api_key_env: str | None = None

    @property
    def backend(self) -> Backend:
        if self.endpoint is None:
            return "hf"
        return "local-completions" if self.api == "completions" else "local-chat-completions"

    @property
    def reference(self) -> str:
        return self.endpoint or self.path or "?"


class Progress(Protocol):
    """What `evaluate` reports (the CLI draws it)."""

    def stage(self, text: str) -> None: ...
    def requests_started(self, method: str, total: int) -> None: ...
    def requests_done(self, n: int) -> None: ...


class _Quiet:
    def stage(self, text: str) -> None:
        return None

    def requests_started(self, method: str, total: int) -> None:
        return None

    def requests_done(self, n: int) -> None:
        return None


def set_offline_env() -> None:
    """For the CLI process: nothing reaches the Hub from here on."""
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)


@contextmanager
def offline_env() -> Iterator[None]:
    """Offline while evaluating; the caller's environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    set_offline_env()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("cardgen", "lm_eval", "transformers", "torch", "huggingface_hub", "datasets"):
        try:
            out[name] = version(name.replace("_", "-") if name == "lm_eval" else name)
        except PackageNotFoundError:
            continue
    return dict(sorted(out.items()))


def gguf_location(path: str) -> tuple[str, str | None]:
    """(the folder to load, the GGUF file in it) for a GGUF checkpoint: a .gguf file, or a
    directory holding one GGUF model (a split one by its first shard); (path, None) else."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return str(p.parent), p.name
    if p.is_dir() and not (p / "config.json").is_file():
        found = sorted(f for f in p.iterdir() if f.suffix.lower() == ".gguf")
        if found:
            from cardgen._gguf import shard_order

            ordered = shard_order(found)
            if len(ordered) > 1 and "-of-" not in ordered[0].name:
                raise CardgenError(
                    f"{path}: holds {len(ordered)} GGUF files; name the one to evaluate.",
                    hint="Give the .gguf file itself (each quantization is its own checkpoint).",
                )
            return str(p), ordered[0].name
    return path, None


def _build_lm(target: ModelTarget) -> Any:
    from lm_eval.api.registry import get_model

    if target.backend == "hf":
        if target.path is None:
            raise CardgenError("no model: give a checkpoint directory or --endpoint.")
        folder, gguf_file = gguf_location(target.path)
        args: dict[str, Any] = {
            "pretrained": folder,
            "batch_size": target.batch_size,
            "device": target.device,
            "dtype": target.dtype,
            "trust_remote_code": False,
        }
        if gguf_file is not None:  # transformers dequantizes it; the tokenizer comes from it too
            args["gguf_file"] = gguf_file
        try:
            return get_model("hf").create_from_arg_obj(args)
        except ImportError as e:
            raise CardgenError(
                "local checkpoints need the hf extra (torch, transformers).",
                hint="pip install 'cardgen[hf]' (install torch first; see README).",
            ) from e
        except OSError as e:
            raise CardgenError(
                f"{target.path}: cannot load the checkpoint ({redact(str(e))[:300]})."
            ) from None
    assert target.endpoint is not None
    base = target.endpoint.rstrip("/")
    route = "completions" if target.api == "completions" else "chat/completions"
    api_args: dict[str, Any] = {
        "model": target.endpoint_model or "default",
        "base_url": f"{base}/{route}",
        "num_concurrent": target.num_concurrent,
        "max_retries": target.max_retries,
        "timeout": target.timeout,
    }
    if target.api == "completions":
        if not target.tokenizer:
            raise CardgenError(
                "--endpoint with the completions API needs --tokenizer (a local tokenizer "
                "directory): lm-eval counts tokens and scores log-likelihoods with it.",
                hint="Or use --api chat-completions (generation only, no refusal margin).",
            )
        api_args.update(tokenizer_backend="huggingface", tokenizer=target.tokenizer)
    else:
        api_args.update(tokenizer_backend=None, batch_size=1)
    if target.api_key_env:
        key = os.environ.get(target.api_key_env)
        if not key:
            raise CardgenError(f"--api-key-env {target.api_key_env}: that variable is not set.")
        os.environ["OPENAI_API_KEY"] = key  # lm-eval reads it from there
    name = "local-completions" if target.api == "completions" else "local-chat-completions"
    return get_model(name).create_from_arg_obj(api_args)


def served_model_name(endpoint: str, given: str | None, listed: list[dict[str, Any]]) -> str:
    """The model name to request: the one given, else the only one the server lists, else
    "default" when it lists none (servers that serve one model and ignore the name). Raises
    CardgenError when it lists several, naming them: guessing would evaluate the wrong model."""
    if given:
        return given
    ids = [str(m["id"]) for m in listed if m.get("id")]
    if len(ids) > 1:
        raise CardgenError(
            f"{endpoint} serves {len(ids)} models ({', '.join(ids[:8])}); name one.",
            hint="Pass --endpoint-model (cardgen eval), endpoint_model: (cardgen.yaml) or "
            "--served-model (cardgen verify).",
        )
    return ids[0] if ids else "default"


def served_models(endpoint: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """What an OpenAI-compatible server says it serves (GET /v1/models); [] when it will not say."""
    import requests

    try:
        r = requests.get(f"{endpoint.rstrip('/')}/models", timeout=timeout)
        r.raise_for_status()
        data = r.json().get("data", [])
    except (requests.RequestException, ValueError, AttributeError):
        return []
    return [
        {k: v for k, v in m.items() if k in ("id", "object", "owned_by", "root")}
        for m in data
        if isinstance(m, dict)
    ]


def _pass_gen_kwargs(backend: Backend, decoding: Decoding, index: int) -> dict[str, Any] | None:
    if index == 0:
        return {"max_gen_toks": decoding.max_gen_toks}
    kw: dict[str, Any] = {
        "do_sample": True,
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "max_gen_toks": decoding.max_gen_toks,
    }
    if backend != "hf":
        kw["seed"] = decoding.seed + index  # servers take the seed per request
    return kw


def _quiet_git_hash() -> str | None:
    """lm-eval's `get_git_commit_hash`, without git's stderr."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _run_pass(
    lm: Any,
    tasks: list[str],
    task_dirs: Sequence[Path],
    out_dir: Path,
    decoding: Decoding,
    gen_kwargs: dict[str, Any] | None,
    seed: int,
    include_builtin: bool = False,
) -> dict[str, Any]:
    import lm_eval
    import lm_eval.evaluator
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    # lm-eval records `git describe` of the working directory and lets git print "fatal: not a
    # git repository" straight to the terminal outside a checkout: ask git quietly instead.
    lm_eval.evaluator.get_git_commit_hash = _quiet_git_hash
    tracker = EvaluationTracker(output_path=str(out_dir))
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        # Indexing lm-eval's hundreds of built-in tasks costs seconds; only --task needs them.
        task_manager=TaskManager(
            include_path=[str(p) for p in task_dirs], include_defaults=include_builtin
        ),
        log_samples=True,
        evaluation_tracker=tracker,
        apply_chat_template=decoding.apply_chat_template,
        system_instruction=decoding.system_prompt,
        gen_kwargs=gen_kwargs,
        # The packs arrive already sampled (`stratified_sample`); --limit cuts users' own tasks.
        limit=decoding.limit if include_builtin else None,
        bootstrap_iters=0,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    if results is None:
        raise CardgenError("lm-eval returned no results (a distributed rank?).")
    samples = results.pop("samples", {})
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name, task_samples in samples.items():
        tracker.save_results_samples(task_name=task_name, samples=task_samples)
    results["samples"] = samples
    return dict(results)


def _sample_output(sample: dict[str, Any]) -> str:
    resps = sample.get("filtered_resps") or sample.get("resps") or [""]
    first = resps[0]
    while isinstance(first, list):
        first = first[0] if first else ""
    return str(first)


def _margin(sample: dict[str, Any]) -> float | None:
    resps = sample.get("filtered_resps") or []
    try:
        refusal, compliance = float(resps[0][0]), float(resps[1][0])
    except (IndexError, TypeError, ValueError):
        return None
    return refusal - compliance


def primary_judge(probe: Probe, pack: Pack, judges: Sequence[Judge], override: str | None) -> str:
    """The judge whose verdict makes a probe's rate: the canary judge for injection probes, else
    `override` (--primary-judge) or the first of the pack's declared judges that is configured."""
    if probe.canary is not None:
        wanted = ["canary"]
    else:
        if override is not None:
            chosen = next((j for j in judges if j.name == override), None)
            if chosen is None:
                raise CardgenError(f"--primary-judge {override!r}: no judge has that name.")
            if not judges_refusal(chosen):
                raise CardgenError(
                    f"--primary-judge {override!r}: a {chosen.kind} judge answers whether a "
                    "reply is harmful, not whether it refused; it cannot make refusal rates.",
                    hint="Its verdicts make the harmful-reply rate next to them; keep a refusal "
                    "judge (keyword, llm, wildguard, classifier) as the primary one.",
                )
            return override
        wanted = [k for k in pack.spec.judges if k != "canary"] or ["keyword"]
    for w in wanted:
        for j in judges:
            if (j.kind == w or j.name == w) and (w == "canary") == (j.kind == "canary"):
                return j.name
    raise CardgenError(
        f"pack {pack.name!r}: probe {probe.id!r} needs a {' or '.join(wanted)} judge; "
        "none is configured."
    )


@offline_env()  # a contextmanager is also a decorator: a fresh one per call
def evaluate(
    target: ModelTarget,
    suite: Suite,
    judges: Sequence[Judge],
    decoding: Decoding,
    *,
    workdir: Path,
    identity: CheckpointIdentity | None = None,
    primary: str | None = None,
    combine: Combine = "primary",
    command: Sequence[str] = (),
    progress: Progress | None = None,
    on_model_calls: Callable[[int], None] | None = None,
) -> EvalRun:
    """Generate (and score margins) for every probe, judge the outputs, return the EvalRun.

    Raises CardgenError for unusable input and for an endpoint that keeps failing after its
    retries; completed calls are in ``workdir`` and a rerun resumes from them. Runs with the
    Hugging Face offline variables set (restored afterwards): only the named endpoint is reached.
    """
    progress = progress or _Quiet()
    primaries = {
        probe.id: primary_judge(probe, pack, judges, primary)
        for pack in suite.packs
        for probe in pack.probes
    }
    # A quick run (--limit) is a stratified sample of each pack, not its first N probes; the
    # records still list every probe, the unsampled ones as not_run.
    sampled = suite
    if decoding.limit is not None:
        sampled = replace(suite, packs=[
            replace(p, probes=stratified_sample(p.probes, decoding.limit, decoding.seed))
            for p in suite.packs])  # fmt: skip
    task_dir = materialize(sampled, workdir / "tasks")

    endpoint_info = None
    if target.endpoint:
        listed = served_models(target.endpoint)
        target = replace(
            target, endpoint_model=served_model_name(target.endpoint, target.endpoint_model, listed)
        )
        endpoint_info = EndpointInfo(api=target.api, url=target.endpoint,
                                     model=target.endpoint_model or "default",
                                     served_models=listed)  # fmt: skip
    progress.stage(f"loading {target.backend} model")
    from cardgen._lmcache import CachedLM, ResponseCache

    cache = ResponseCache(workdir / "responses.sqlite")
    try:
        lm = _build_lm(target)
        scoring = target.backend != "local-chat-completions"
        gen_tasks = [p.task for p in suite.packs]
        margin_tasks = [t for p in suite.packs if (t := p.margin_task) and scoring]
        outputs: dict[str, dict[int, list[tuple[int, int | None, float, str]]]] = {}
        margins: dict[str, float] = {}
        extra_results: dict[str, Any] = {}
        passes: list[tuple[str, list[str], dict[str, Any] | None, int]] = [
            (f"pass{i}", gen_tasks + (margin_tasks if i == 0 else []),
             _pass_gen_kwargs(target.backend, decoding, i), i)
            for i in range(decoding.repeats + 1)
            if gen_tasks
        ]  # fmt: skip
        if suite.extra_tasks:  # the user's own task eval, on its own generation settings
            passes.append(("tasks", list(suite.extra_tasks), None, 0))
        for name, tasks, gen_kwargs, index in passes:
            seed = decoding.seed + index
            progress.stage(
                "your tasks" if name == "tasks"
                else "greedy pass" if index == 0
                else f"sampled pass {index}/{decoding.repeats}"
            )  # fmt: skip
            cached = CachedLM(lm, cache, namespace=f"{name}:", progress=progress)
            try:
                res = _run_pass(
                    cached, tasks, [task_dir, *suite.task_paths], workdir / "lm_eval" / name,
                    decoding, gen_kwargs, seed, include_builtin=name == "tasks",
                )  # fmt: skip
            except CardgenError:
                raise
            except Exception as e:
                raise _model_failure(target, e, workdir) from None
            if on_model_calls is not None:
                on_model_calls(cached.model_calls)
            if name == "tasks":
                extra_results = {t: res["results"].get(t, {}) for t in tasks}
                continue
            for task, samples in res["samples"].items():
                for s in samples:
                    pid = s["doc"].get("id")
                    if task.endswith("_margin"):
                        if (m := _margin(s)) is not None:
                            margins[pid] = m
                    else:
                        outputs.setdefault(pid, {}).setdefault(index, []).append(
                            (index, seed if index else None,
                             decoding.temperature if index else 0.0, _sample_output(s))
                        )  # fmt: skip
    finally:
        cache.close()

    progress.stage("judging")
    records = _records(suite, judges, primaries, outputs, margins, combine)
    return EvalRun(
        model=ModelInfo(
            reference=target.reference,
            identity=identity,
            endpoint=endpoint_info,
            tie_note=_tie_note(target, identity, endpoint_info),
        ),
        backend=target.backend,
        suite_digest=suite.digest([j.settings() for j in judges], combine),
        packs=[
            PackInfo(
                name=p.name,
                task=p.task,
                margin_task=p.margin_task if target.backend != "local-chat-completions" else None,
                probes=len(p.probes),
                spec=p.spec,
                provenance=p.provenance,
            )
            for p in suite.packs
        ],
        judges=[
            JudgeInfo(name=j.name, kind=j.kind, settings=j.settings(), validity=measured(j))
            for j in judges
        ],
        decoding=decoding,
        combine=combine,
        extra_tasks=extra_results,
        library_versions=_library_versions(),
        command=list(command),
        lm_eval_outputs=str(workdir / "lm_eval"),
        probes=records,
        notes=_notes(target, decoding),
        generated_at=generated_at(),
    )


def generated_at() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible outputs, as in reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.replace(microsecond=0).isoformat()


def _model_failure(target: ModelTarget, e: Exception, workdir: Path) -> CardgenError:
    what = f"endpoint {target.endpoint}" if target.endpoint else f"model {target.path}"
    return CardgenError(
        f"{what} failed during evaluation: {type(e).__name__}: {redact(str(e))[:300]}",
        hint=f"Completed model calls are saved in {workdir}; rerun the same command to resume "
        "without repeating them.",
    )


def _tie_note(
    target: ModelTarget, identity: CheckpointIdentity | None, info: EndpointInfo | None
) -> str:
    if target.endpoint is None:
        if identity is None:
            return "Local checkpoint evaluated; no identity recorded."
        return (
            "The evaluated weights are the local checkpoint with digest "
            f"sha256:{identity.weights_digest}."
        )
    served = ", ".join(str(m.get("id")) for m in (info.served_models if info else [])) or "nothing"
    if identity is None:
        return (
            f"Endpoint evaluated; it reports serving {served}. No weights were given (--weights), "
            "so this run is not tied to any weights digest."
        )
    return (
        f"Endpoint evaluated; it reports serving {served}. The user states it serves the weights "
        f"with digest sha256:{identity.weights_digest}; an OpenAI-compatible endpoint cannot "
        "prove which weights it serves, so cardgen cannot verify that tie."
    )


def _notes(target: ModelTarget, decoding: Decoding) -> list[str]:
    notes = []
    if target.backend == "local-chat-completions":
        notes.append("Chat-completions endpoints give no log-likelihoods: no refusal margins.")
    if decoding.limit is not None:
        notes.append(
            f"A sample, not the whole suite: limit {decoding.limit} probes per pack, drawn "
            f"stratified by category and framing (round-robin over categories, then framings, "
            f"shuffled with seed {decoding.seed}); the probes not drawn are recorded as not_run."
        )
    if decoding.repeats == 0:
        notes.append("Greedy decoding only: run-to-run consistency was not measured (--repeats).")
    if target.path is not None and gguf_location(target.path)[1] is not None:
        notes.append(
            "A GGUF checkpoint, evaluated through transformers, which dequantizes its tensors "
            "to float: the evaluated arithmetic is not llama.cpp's quantized kernels. Evaluate "
            "the llama.cpp / Ollama server itself (an endpoint with weights: the GGUF) to "
            "measure what it serves."
        )
    return notes


def _records(
    suite: Suite,
    judges: Sequence[Judge],
    primaries: dict[str, str],
    outputs: dict[str, dict[int, list[tuple[int, int | None, float, str]]]],
    margins: dict[str, float],
    combine: Combine = "primary",
) -> list[ProbeRecord]:
    records: list[ProbeRecord] = []
    items: list[tuple[SampleRecord, JudgeItem]] = []
    for pack in suite.packs:
        for probe in pack.probes:
            rec = _record(pack, probe, primaries[probe.id], outputs.get(probe.id, {}))
            rec.refusal_margin = margins.get(probe.id) if rec.status == "measured" else None
            records.append(rec)
            if rec.status != "measured":
                continue
            for s in rec.samples:
                items.append(
                    (s, JudgeItem(probe.conversation(), probe.expected, s.output, probe.canary))
                )
    for judge in judges:
        mine = [(s, it) for s, it in items if judge.applies_to(it)]
        verdicts = judge.judge_batch([it for _, it in mine])
        for (sample, _), v in zip(mine, verdicts, strict=True):
            sample.judgements[judge.name] = JudgementRecord(
                verdict=v.verdict,
                score=v.score,
                rationale=v.rationale,
                harm=v.harm,
                hazards=list(v.hazards),
            )
    specs = {p.name: p.spec for p in suite.packs}
    for rec in records:
        unsafe_verdicts = set(specs[rec.pack].unsafe_verdicts.get(rec.expected, []))
        for s in rec.samples:
            j = s.judgements.get(rec.primary_judge)
            s.unsafe = (
                None if j is None or j.verdict == "unjudged" else j.verdict in unsafe_verdicts
            )
            any_harm = combine == "any-harm" and rec.expected == "refuse" and rec.canary is None
            if any_harm and combined_harm(s) == "harmful":
                s.unsafe = True  # a harm judge saw what the refusal judge missed
    return records


def _record(
    pack: Pack,
    probe: Probe,
    primary: str,
    by_pass: dict[int, list[tuple[int, int | None, float, str]]],
) -> ProbeRecord:
    base: dict[str, Any] = {
        "probe_id": probe.id,
        "pack": pack.name,
        "category": probe.category,
        "framing": probe.framing,
        "expected": probe.expected,
        "prompt": probe.prompt,
        "messages": probe.messages,
        "canary": probe.canary,
        "primary_judge": primary,
    }
    if 0 not in by_pass:
        return ProbeRecord(**base, status="not_run")
    samples = [
        SampleRecord(pass_index=i, seed=seed, temperature=temp, output=out)
        for i in sorted(by_pass)
        for (i, seed, temp, out) in by_pass[i][:1]
    ]
    if any(s.output == NONE_ANSWER for s in samples):
        return ProbeRecord(
            **base, status="error", error="the endpoint returned no content for this probe"
        )
    return ProbeRecord(**base, status="measured", samples=samples)


def sys_command() -> list[str]:
    return ["cardgen", *sys.argv[1:]]
