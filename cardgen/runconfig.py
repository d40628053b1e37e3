"""`cardgen.yaml`: everything `cardgen run` needs, in one file.

    >>> cfg = load_run_config(Path("cardgen.yaml"))                         # doctest: +SKIP

Relative paths are read relative to the file's own directory, so a config checked into a repo
works from any working directory. Errors name the file, the line and the field (`config.py`).
`cardgen init` writes a commented starter (``templates/cardgen.yaml``) that loads as is.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from cardgen._model import Contract
from cardgen.config import load_yaml_model
from cardgen.errors import ConfigError
from cardgen.evalrun import Combine, Decoding
from cardgen.judges import JudgeSpec
from cardgen.suites import SHIPPED_PACKS
from cardgen.suites.benchmarks import BenchmarkSpec

STARTER = Path(__file__).parent / "templates" / "cardgen.yaml"


#: The endpoint API when none is named (config and `cardgen eval --endpoint` alike): chat
#: completions work with a bare URL; completions need a local tokenizer.
DEFAULT_API: Literal["completions", "chat-completions"] = "chat-completions"


class ModelSpec(Contract):
    """One model: a local checkpoint or Hub reference, or an OpenAI-compatible endpoint."""

    model: str | None = Field(
        default=None, description="Local checkpoint directory, or hf://org/name@revision."
    )
    endpoint: str | None = Field(
        default=None, description="OpenAI-compatible base URL (vLLM, TGI), e.g. http://host/v1."
    )
    api: Literal["completions", "chat-completions"] = Field(
        default=DEFAULT_API,
        description="Endpoint API. completions needs `tokenizer` and adds refusal margins.",
    )
    endpoint_model: str | None = Field(default=None, description="Model name on the endpoint.")
    tokenizer: str | None = Field(default=None, description="Local tokenizer (completions API).")
    weights: str | None = Field(
        default=None,
        description="Endpoint only: the weights it serves (directory or hf://), fingerprinted so "
        "the evidence names them. Without it the evidence cannot name a digest.",
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the endpoint's API key."
    )
    concurrency: int = Field(default=8, ge=1, description="Concurrent endpoint requests.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per endpoint request.")
    retries: int = Field(default=3, ge=1, description="Attempts per endpoint request.")
    batch_size: int = Field(default=8, ge=1, description="Local checkpoints: batch size.")
    device: str = Field(default="cpu", description="Local checkpoints: torch device (cuda, ...).")
    dtype: str = Field(default="float32", description="Local checkpoints: torch dtype.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give either `model` (a checkpoint) or `endpoint` (a URL)")
        if self.weights is not None and self.endpoint is None:
            raise ValueError("`weights` is for endpoints; a local `model` is hashed itself")
        return self

    @property
    def weights_ref(self) -> str | None:
        """What to fingerprint: the checkpoint, or the weights an endpoint says it serves."""
        return self.model or self.weights

    @property
    def label(self) -> str:
        return self.model or f"{self.endpoint} ({self.endpoint_model or 'default'})"


class EvalSpec(Contract):
    packs: list[str] = Field(
        default_factory=lambda: list(SHIPPED_PACKS), description="Shipped packs to run."
    )
    probe_files: list[Path] = Field(
        default_factory=list, description="Your own probe packs (JSONL), run next to the shipped."
    )
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=list,
        description="Public benchmarks from their published files (harmbench, strongreject, "
        "xstest, donotanswer, jbb, advbench, jailbreak), run next to the packs.",
    )
    judges: list[JudgeSpec] = Field(
        default_factory=list,
        description="Judges besides keyword and canary, which always run (llm, llama-guard, "
        "wildguard, harmbench, strongreject, shieldgemma, classifier).",
    )
    primary_judge: str | None = Field(
        default=None, description="Judge whose verdicts make the rates (default: keyword)."
    )
    combine: Combine = Field(
        default="primary",
        description="How judges' verdicts combine: primary (the primary judge decides) or "
        "any-harm (also unsafe when any harm judge calls a reply harmful).",
    )
    decoding: Decoding = Field(default_factory=Decoding)


class CardSpec(Contract):
    model_name: str | None = None
    license: str | None = None
    intended_use: str | None = None
    out_of_scope: str | None = None
    tags: list[str] = Field(default_factory=list)
    template: Path | None = Field(default=None, description="Your Jinja template for the body.")
    evidence_url: str = "evidence/evidence.json"


class HubSpec(Contract):
    repo: str = Field(description="Hub model repo (org/name) to publish the card and evidence to.")
    revision: str = "main"
    push: bool = Field(
        default=False, description="Push at the end of every run (else only with --push)."
    )


class RunConfig(Contract):
    base: ModelSpec = Field(description="The base model the tuned one was made from.")
    tuned: ModelSpec = Field(description="The checkpoint you serve.")
    lineage: Path | None = Field(
        default=None, description="lineage.yaml (see `cardgen lineage`): relation, recipe, ..."
    )
    data: list[Path] = Field(
        default_factory=list, description="Fine-tuning corpora: audited and hashed into lineage."
    )
    eval: EvalSpec = Field(default_factory=EvalSpec)
    policy: Path | None = Field(default=None, description="Gate policy (default: shipped).")
    allow_same: bool = Field(
        default=False,
        description="Run when base and tuned are the same weights (else refused before any "
        "evaluation): the documents say so and the gate says INSUFFICIENT_EVIDENCE.",
    )
    as_of: date | None = Field(default=None, description="Gate date for waivers (default: today).")
    signing_key: Path | None = Field(
        default=None, description="Private key from `cardgen keygen`; omit for unsigned."
    )
    output: Path = Field(default=Path("cardgen-out"), description="Where the documents go.")
    cache: Path | None = Field(
        default=None, description="Stage cache (default: OUTPUT/.cardgen-cache)."
    )
    audiences: list[Literal["auditor", "customer"]] = Field(
        default=["auditor", "customer"], description="PDF editions to render."
    )
    card: CardSpec = Field(default_factory=CardSpec)
    hub: HubSpec | None = None

    @model_validator(mode="after")
    def _tuned_weights_named(self) -> RunConfig:
        if self.tuned.endpoint is not None and self.tuned.weights is None:
            raise ValueError(
                "tuned: an endpoint needs `weights:` (the checkpoint it serves): every document "
                "names the tuned weights' digest, and `cardgen verify --endpoint` checks the "
                "server against it"
            )
        return self

    def resolved(self, root: Path) -> RunConfig:
        """Relative paths made absolute against ``root`` (the config file's directory)."""

        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else root / p)

        def local(ref: str | None) -> str | None:
            if ref is None or ref.startswith("hf://") or Path(ref).is_absolute():
                return ref
            return str(root / ref)

        def model(m: ModelSpec) -> ModelSpec:
            return m.model_copy(update={"model": local(m.model), "weights": local(m.weights),
                                        "tokenizer": local(m.tokenizer)})  # fmt: skip

        ev = self.eval.model_copy(update={
            "probe_files": [fix(p) for p in self.eval.probe_files],
            "benchmarks": [b.model_copy(update={"source": local(b.source)})
                           for b in self.eval.benchmarks],
        })  # fmt: skip
        return self.model_copy(update={
            "base": model(self.base), "tuned": model(self.tuned), "lineage": fix(self.lineage),
            "data": [fix(p) for p in self.data], "eval": ev, "policy": fix(self.policy),
            "signing_key": fix(self.signing_key), "output": fix(self.output),
            "cache": fix(self.cache),
            "card": self.card.model_copy(update={"template": fix(self.card.template)}),
        })  # fmt: skip

    @property
    def cache_dir(self) -> Path:
        return self.cache or self.output / ".cardgen-cache"


def load_run_config(path: Path) -> RunConfig:
    """Read cardgen.yaml, resolve its relative paths. Raises ConfigError naming line and field."""
    cfg = load_yaml_model(path, RunConfig, what="run config")
    if not cfg.eval.packs and not cfg.eval.probe_files and not cfg.eval.benchmarks:
        raise ConfigError(
            f"{path}: eval.packs, eval.probe_files and eval.benchmarks are all empty: nothing "
            "to run."
        )
    return cfg.resolved(path.resolve().parent)
