"""`cardgen run`: every stage, in order, each cached by the digest of its inputs.

    >>> outcome = run(load_run_config(Path("cardgen.yaml")))               # doctest: +SKIP
    >>> outcome.decision.verdict, outcome.exit_code                         # doctest: +SKIP

The stages, top to bottom in `Pipeline.run`: fingerprint tuned and base, lineage, data audit,
evaluate base and tuned, compare, gate, evidence, documents (card, PDF editions, ML-BOM,
attestation), push. Each writes its JSON under ``OUTPUT/stages/`` and is stored in a
content-addressed cache (``OUTPUT/.cardgen-cache`` unless configured) under the digest of its
inputs: a rerun with nothing changed restores every stage and says so, a changed policy reruns
only the gate and what follows, and an interrupted evaluation resumes from the model calls it had
completed (lm-eval's requests are cached in the run's ``lm-eval/`` folder). Local weights count
as unchanged while every file keeps its size and modification time (``--rehash`` forces hashing);
hf:// references and endpoints are looked up every run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from cardgen import __version__
from cardgen._hashing import sha256_hex
from cardgen._io import model_json, write_atomic
from cardgen.config import load_json_model
from cardgen.errors import CardgenError
from cardgen.evalrun import EvalRun
from cardgen.gate import Decision
from cardgen.identity import CheckpointIdentity
from cardgen.runconfig import ModelSpec, RunConfig

M = TypeVar("M", bound=BaseModel)
CACHE_VERSION = "1"
TEMPLATES = Path(__file__).parent / "templates"


class RunProgress(Protocol):
    """What the pipeline reports; the CLI draws it. ``eval`` and ``hashing`` feed the bars."""

    def stage_started(self, name: str) -> None: ...
    def stage_finished(self, name: str, reused: bool, seconds: float) -> None: ...
    def eval_progress(self) -> Any: ...
    def hash_progress(self) -> Any: ...


class _Silent:
    def stage_started(self, name: str) -> None:
        return None

    def stage_finished(self, name: str, reused: bool, seconds: float) -> None:
        return None

    def eval_progress(self) -> Any:
        return None

    def hash_progress(self) -> Any:
        return None


@dataclass
class StageRecord:
    name: str
    reused: bool
    seconds: float


@dataclass
class RunOutcome:
    decision: Decision
    output: Path
    weights_digest: str | None
    stages: list[StageRecord] = field(default_factory=list)
    documents: list[Path] = field(default_factory=list)
    pushed: str | None = None  # the commit URL; None when not asked or the gate did not pass

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    @property
    def reused(self) -> list[str]:
        return [s.name for s in self.stages if s.reused]


# ---------------------------------------------------------------------------------------------
# The cache


def digest_of(parts: Any) -> str:
    """The cache key of a stage: sha256 of its inputs' canonical JSON."""
    text = json.dumps([CACHE_VERSION, __version__, parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path | None) -> str | None:
    return None if path is None else sha256_hex(path)


def stat_signature(path: Path) -> list[tuple[str, int, int]]:
    """Size and mtime of every file of a checkpoint: unchanged means not re-hashed."""
    if path.is_file():
        st = path.stat()
        return [(path.name, st.st_size, st.st_mtime_ns)]
    out = []
    for p in sorted(path.rglob("*")):
        if p.is_file() and ".git" not in p.parts:
            st = p.stat()
            out.append((p.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns))
    return out


class StageCache:
    """Content-addressed store: ``ROOT/<stage>/<key>/<file>``, written by temp dir + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def restore(self, stage: str, key: str, files: dict[str, Path]) -> bool:
        entry = self.root / stage / key
        if not all((entry / name).is_file() for name in files):
            return False
        for name, dest in files.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.is_file() or file_digest(dest) != file_digest(entry / name):
                write_atomic(dest, (entry / name).read_bytes())
        return True

    def store(self, stage: str, key: str, files: dict[str, Path]) -> None:
        entry = self.root / stage / key
        if entry.is_dir():
            shutil.rmtree(entry)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=entry.parent))
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
        os.replace(tmp, entry)


# ---------------------------------------------------------------------------------------------


class Pipeline:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        progress: RunProgress | None = None,
        rehash: bool = False,
        no_cache: bool = False,
        command: list[str] | None = None,
        config_sha256: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_sha256 = config_sha256
        self.out = cfg.output
        self.stages_dir = cfg.output / "stages"
        self.cache = StageCache(cfg.cache_dir)
        self.progress: RunProgress = progress or _Silent()
        self.rehash = rehash
        self.no_cache = no_cache
        self.command = command or ["cardgen", "run"]
        self.records: list[StageRecord] = []
        self.produced: list[Path] = []  # this run's stage files (the evidence's inputs)
        # The user's input files (corpora, lineage.yaml) do not change during a run: hash once.
        self._input_sha = functools.cache(file_digest)

    # -- the stages, in order --------------------------------------------------------------

    def run(self, push: bool = False) -> RunOutcome:
        cfg = self.cfg
        self._check_inputs()
        tuned_id = self.fingerprint("tuned", cfg.tuned)
        base_id = self.fingerprint("base", cfg.base)
        digest = tuned_id.weights_digest if tuned_id else None
        if digest and base_id and base_id.weights_digest == digest and not cfg.allow_same:
            raise CardgenError(
                f"base and tuned are the same weights (sha256:{digest}): a "
                "checkpoint compared with itself proves nothing about what fine-tuning changed.",
                hint="Point `base` at the checkpoint the tuned one was made from, or set "
                "allow_same: true (the documents say so; the gate says INSUFFICIENT_EVIDENCE).",
            )
        lineage = self.lineage(tuned_id, base_id)
        audit = self.audit()
        base_run = self.evaluate("base", cfg.base, base_id)
        tuned_run = self.evaluate("tuned", cfg.tuned, tuned_id)
        comparison = self.compare(base_run, tuned_run)
        decision = self.gate(comparison)
        self.evidence(tuned_id, lineage, audit, base_run, tuned_run, comparison, decision)
        documents = self.documents()
        pushed = None
        if push or (cfg.hub is not None and cfg.hub.push):
            # Publishing is a release step: a checkpoint the gate did not pass is not published.
            pushed = self.push() if decision.verdict == "PASS" else None
        return RunOutcome(
            decision=decision, output=self.out,
            weights_digest=tuned_id.weights_digest if tuned_id else None,
            stages=self.records, documents=documents, pushed=pushed,
        )  # fmt: skip

    def _check_inputs(self) -> None:
        """Load and validate every file the config names before any stage runs, with the
        message each file's own subcommand gives: a broken policy must not cost an evaluation.
        What is loaded here (policy, declaration, suite, judges) is what the stages use."""
        from cardgen import lineage as lin
        from cardgen.attest import load_signer
        from cardgen.audit import check_corpus
        from cardgen.card import load_template
        from cardgen.gate import load_policy
        from cardgen.judges import ALWAYS, build_judges
        from cardgen.suites import load_suite

        cfg = self.cfg
        for label, spec in (("tuned", cfg.tuned), ("base", cfg.base)):
            ref = spec.model or spec.weights
            if ref and not ref.startswith("hf://") and not Path(ref).exists():
                hint = "Paths in the config are relative to its directory."
                raise CardgenError(f"{label}: {ref} does not exist.", hint=hint)
        for p in [*cfg.data, *cfg.eval.probe_files, cfg.lineage, cfg.policy, cfg.signing_key,
                  cfg.card.template]:  # fmt: skip
            if p is not None and not p.is_file():
                raise CardgenError(f"{p}: file not found (named in the run config).")
        self._policy = load_policy(cfg.policy)
        self._declaration = lin.load_declaration(cfg.lineage) if cfg.lineage else None
        self._declared: list[Path] = []
        if self._declaration is not None and cfg.lineage is not None:
            self._declared = lin.declared_paths(self._declaration, cfg.lineage.parent,
                                                str(cfg.lineage))  # fmt: skip
        for corpus in cfg.data:  # audited: at least one record must read as an example
            check_corpus(corpus)
        self._suite = load_suite(cfg.eval.packs, probe_files=cfg.eval.probe_files,
                                 benchmarks=cfg.eval.benchmarks)  # fmt: skip
        self._judge_specs = [*ALWAYS, *cfg.eval.judges]
        self._judges = build_judges(self._judge_specs)  # a classifier's directory is read here
        load_template(cfg.card.template)
        if cfg.signing_key is not None:
            load_signer(cfg.signing_key)

    def fingerprint(self, role: str, spec: ModelSpec) -> CheckpointIdentity | None:
        from cardgen.identity import fingerprint

        ref = spec.weights_ref
        if ref is None:
            return None  # an endpoint that does not say which weights it serves
        out = self.stages_dir / f"{role}.identity.json"
        local = not ref.startswith("hf://")
        key: Any = {"ref": ref, "files": stat_signature(Path(ref))} if local else None

        def compute() -> None:
            ident = fingerprint(ref, progress=self.progress.hash_progress())
            write_atomic(out, model_json(ident))

        self._stage(f"fingerprint {role}", key if not self.rehash else None, {"identity.json": out},
                    compute)  # fmt: skip
        return load_json_model(out, CheckpointIdentity)

    def lineage(self, tuned: CheckpointIdentity | None, base: CheckpointIdentity | None) -> Any:
        from cardgen import lineage as lin

        cfg = self.cfg
        if tuned is None:
            return None
        out = self.stages_dir / "lineage.json"
        decl = self._declaration
        # The corpora it lists count too, not only its own bytes.
        declared = {p.resolve() for p in self._declared}
        qf = decl.quantized_from if decl else None
        decl_here = decl
        if decl and qf and cfg.lineage and not qf.startswith("hf://") and not (
                Path(qf).expanduser().is_absolute()):  # fmt: skip
            decl_here = decl.model_copy(update={"quantized_from": str(cfg.lineage.parent / qf)})
        # A local checkpoint it was quantized from is fingerprinted into the lineage: the key
        # holds its files' sizes and times, so re-quantizing from other weights is not missed
        # behind an unchanged declaration. (A Hub reference is pinned by its revision.)
        qf_local = (Path(decl_here.quantized_from).expanduser()
                    if decl_here and decl_here.quantized_from
                    and not decl_here.quantized_from.startswith("hf://") else None)  # fmt: skip
        key = {"tuned": tuned.weights_digest, "base": base.weights_digest if base else None,
               "base_ref": cfg.base.label, "declaration": self._input_sha(cfg.lineage),
               "corpora": [(str(p), self._input_sha(p) if p.is_file() else None)
                           for p in [*sorted(declared), *cfg.data]],
               "quantized_from": stat_signature(qf_local) if qf_local and qf_local.exists()
               else None}  # fmt: skip

        def compute() -> None:
            source = str(cfg.lineage) if cfg.lineage else "cardgen.yaml"
            corpora = []
            if decl is not None and cfg.lineage is not None:
                corpora = lin.declared_corpora(decl, cfg.lineage.parent, source)
            corpora += [lin.corpus_record(p, source="cardgen.yaml data", shown=str(p))
                        for p in cfg.data if p.resolve() not in declared]  # fmt: skip

            def resolve(ref: str) -> CheckpointIdentity:
                if base is not None and ref in (cfg.base.weights_ref, base.source.reference):
                    return base
                from cardgen.identity import fingerprint

                return fingerprint(ref)

            result = lin.build_lineage(
                tuned, decl_here, declaration_source=source,
                base_flag=None if decl and decl.base_model else cfg.base.weights_ref,
                corpora=corpora, resolve_base=resolve,
            )  # fmt: skip
            write_atomic(out, model_json(result))

        self._stage("lineage", key, {"lineage.json": out}, compute)
        return load_json_model(out, lin.Lineage)

    def audit(self) -> Any:
        from cardgen.audit import DataAudit, audit_corpora, require_examples

        if not self.cfg.data:
            return None
        out = self.stages_dir / "audit.json"
        key = {"data": [(str(p), self._input_sha(p)) for p in self.cfg.data]}

        def compute() -> None:
            result = audit_corpora(self.cfg.data)
            require_examples(result, self.cfg.data)
            write_atomic(out, model_json(result))

        self._stage("audit training data", key, {"audit.json": out}, compute)
        return load_json_model(out, DataAudit)

    def evaluate(self, role: str, spec: ModelSpec, identity: CheckpointIdentity | None) -> EvalRun:
        from cardgen.evaluate import ModelTarget
        from cardgen.evaluate import evaluate as run_eval
        from cardgen.validity import SHIPPED_TEST

        ev = self.cfg.eval
        suite, specs, judges = self._suite, self._judge_specs, self._judges
        out = self.stages_dir / f"{role}.run.json"
        key: dict[str, Any] | None = {
            "weights": identity.weights_digest if identity else None,
            "endpoint": [spec.endpoint, spec.endpoint_model, spec.api] if spec.endpoint else None,
            "suite": suite.digest([j.settings() for j in judges], ev.combine),
            "decoding": ev.decoding.model_dump(), "primary": ev.primary_judge,
            "judges": [s.model_dump() for s in specs],
            # Each judge's validity is measured on the shipped labelled replies: a new corpus
            # version re-measures it.
            "validity_corpus": file_digest(SHIPPED_TEST),
        }  # fmt: skip
        if spec.endpoint and identity is None:
            key = None  # nothing ties the endpoint's answers to weights: ask it again

        def compute() -> None:
            target = ModelTarget(
                path=self._local_model(spec), endpoint=spec.endpoint, api=spec.api,
                endpoint_model=spec.endpoint_model, tokenizer=spec.tokenizer,
                num_concurrent=spec.concurrency, max_retries=spec.retries, timeout=spec.timeout,
                batch_size=spec.batch_size, device=spec.device, dtype=spec.dtype,
                api_key_env=spec.api_key_env,
            )  # fmt: skip
            run = run_eval(
                target, suite, judges, ev.decoding, workdir=self.out / "lm-eval" / role,
                identity=identity, primary=ev.primary_judge, combine=ev.combine,
                command=self.command, progress=self.progress.eval_progress(),
            )  # fmt: skip
            write_atomic(out, model_json(run))

        self._stage(f"evaluate {role}", key, {"run.json": out}, compute)
        return load_json_model(out, EvalRun)

    def _local_model(self, spec: ModelSpec) -> str | None:
        """The directory lm-eval loads: the checkpoint, or an hf:// snapshot downloaded once."""
        if spec.model is None or not spec.model.startswith("hf://"):
            return spec.model
        from huggingface_hub import snapshot_download

        from cardgen._hubref import _hub_errors, parse_reference

        repo, rev = parse_reference(spec.model)
        with _hub_errors(f"downloading {spec.model}"):
            return str(snapshot_download(repo, revision=rev))

    def compare(self, base: EvalRun, tuned: EvalRun) -> Any:
        from cardgen.compare import Comparison, load_run
        from cardgen.compare import compare as run_compare

        out = self.stages_dir / "comparison.json"
        base_path, tuned_path = (
            self.stages_dir / "base.run.json",
            self.stages_dir / "tuned.run.json",
        )
        key = {"base": file_digest(base_path), "tuned": file_digest(tuned_path),
               "allow_same": self.cfg.allow_same}  # fmt: skip

        def compute() -> None:
            # Paths relative to the output: a cached comparison serves any output directory.
            refs = [load_run(p)[1].model_copy(update={"path": f"stages/{p.name}"})
                    for p in (base_path, tuned_path)]  # fmt: skip
            comp = run_compare(base, tuned, base_ref=refs[0], tuned_ref=refs[1],
                               allow_same=self.cfg.allow_same)  # fmt: skip
            write_atomic(out, model_json(comp))

        self._stage("compare", key, {"comparison.json": out}, compute)
        comp = load_json_model(out, Comparison)
        if comp.mismatches and not comp.allow_mismatch:
            raise CardgenError("The base and tuned runs are not comparable: "
                               + "; ".join(comp.mismatches) + ".")  # fmt: skip
        return comp

    def gate(self, comparison: Any) -> Decision:
        from cardgen.gate import decide

        policy, source, sha = self._policy
        as_of = self.cfg.as_of or date.today()
        out = self.stages_dir / "decision.json"
        key = {"comparison": file_digest(self.stages_dir / "comparison.json"), "policy": sha,
               "as_of": as_of.isoformat()}  # fmt: skip

        def compute() -> None:
            dec = decide(comparison, policy, as_of=as_of, policy_source=source, policy_sha256=sha)
            write_atomic(out, model_json(dec))

        self._stage("gate", key, {"decision.json": out}, compute)
        return load_json_model(out, Decision)

    def evidence(self, identity: Any, lineage: Any, audit: Any, base_run: EvalRun,
                 tuned_run: EvalRun, comparison: Any, decision: Decision) -> None:  # fmt: skip
        from cardgen.evidence import gather, write_bundle

        # Not the config's digest: evidence reused from the cache was made by a config whose
        # stages gave these very files, so the digest it names still reproduces them (as the
        # commands recorded by the cached eval stages do).
        key = {p.name: file_digest(p) for p in self.produced if p.parent == self.stages_dir}

        def compute() -> None:
            ev = gather(identity=identity, lineage=lineage, data_audit=audit, base_run=base_run,
                        tuned_run=tuned_run, comparison=comparison, decision=decision,
                        config_sha256=self.config_sha256)  # fmt: skip
            write_bundle(ev, self.out)

        files = {n: self.out / n for n in ("evidence.json", "manifest.json")}
        self._stage("evidence", key, files, compute)

    def documents(self) -> list[Path]:
        from cardgen.bundle import seal
        from cardgen.card import CardFields
        from cardgen.pack import PACK_FILES

        cfg = self.cfg
        c = cfg.card
        name = document_name(cfg)
        fields = CardFields(model_name=name, license=c.license,
                            intended_use=c.intended_use, out_of_scope=c.out_of_scope,
                            evidence_url=c.evidence_url, tags=list(c.tags))  # fmt: skip
        names = ["README.md", *(PACK_FILES[a] for a in cfg.audiences), "bom.cdx.json",
                 "attestation.intoto.json", "manifest.json"]  # fmt: skip
        files = {n: self.out / n for n in names}
        key = {
            "evidence": file_digest(self.out / "evidence.json"),
            "card": c.model_dump(mode="json"),
            "name": name,
            "template": file_digest(c.template),
            # The shipped templates and stylesheet: an upgraded layout re-renders.
            "renderer": [file_digest(p) for p in sorted(TEMPLATES.glob("*"))],
            "audiences": cfg.audiences,
            "key": file_digest(cfg.signing_key),
        }

        def compute() -> None:
            seal(self.out, key=cfg.signing_key, fields=fields, template=c.template,
                 audiences=cfg.audiences)  # fmt: skip

        self._stage("documents", key, files, compute)
        return [files[n] for n in names]

    def push(self) -> str:
        from cardgen.push import plan_push
        from cardgen.push import push as run_push

        if self.cfg.hub is None:
            raise CardgenError("--push: the config has no `hub:` section naming the repo.")
        self.progress.stage_started("push")
        t0 = time.perf_counter()
        url = run_push(plan_push(self.out, self.cfg.hub.repo, self.cfg.hub.revision))
        self._record("push", False, time.perf_counter() - t0)
        return url

    # -- machinery ---------------------------------------------------------------------------

    def _stage(self, name: str, key_parts: Any, files: dict[str, Path],
               compute: Callable[[], None]) -> None:  # fmt: skip
        """Restore ``files`` from the cache under the digest of ``key_parts``, or compute them
        and store them. ``key_parts`` None: never cached (always computed)."""
        self.progress.stage_started(name)
        t0 = time.perf_counter()
        key = digest_of(key_parts) if key_parts is not None else None
        reused = bool(key) and not self.no_cache and self.cache.restore(
            name.replace(" ", "-"), key, files)  # type: ignore[arg-type]  # fmt: skip
        if not reused:
            compute()
            if key is not None:
                self.cache.store(name.replace(" ", "-"), key, files)
        self.produced.extend(files.values())
        self._record(name, reused, time.perf_counter() - t0)

    def _record(self, name: str, reused: bool, seconds: float) -> None:
        self.records.append(StageRecord(name, reused, seconds))
        self.progress.stage_finished(name, reused, seconds)


def run(cfg: RunConfig, **kwargs: Any) -> RunOutcome:
    """Run every stage of ``cfg``; see `Pipeline`. ``push`` publishes to ``cfg.hub``."""
    push = kwargs.pop("push", False)
    return Pipeline(cfg, **kwargs).run(push=push)


def document_name(cfg: RunConfig) -> str | None:
    """The name documents use, when the config gives one: card.model_name, else the Hub repo it
    is published to; None leaves it to what the weights say (`evidence.display_name`)."""
    return cfg.card.model_name or (cfg.hub.repo if cfg.hub else None)
