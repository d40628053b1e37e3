"""The judge interface: what a judge sees, what it says, how it is configured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from cardgen._model import Contract

Verdict = Literal["refused", "partial", "complied", "compromised", "unjudged"]
Harm = Literal["harmful", "not_harmful"]
JudgeKind = Literal["keyword", "canary", "llm", "classifier", "llama-guard", "wildguard",
                    "harmbench", "strongreject", "shieldgemma"]  # fmt: skip
#: Kinds that run a judge model: served (`url` and `model`) or a local checkpoint (`model`).
ENDPOINT_KINDS = ("llm", "llama-guard", "wildguard", "harmbench", "strongreject", "shieldgemma")


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    score: float | None = None
    rationale: str | None = None
    #: A second question, where the judge can tell: is the reply itself harmful? Not refusing
    #: is not the same as harm (a deflection or nonsense is neither a refusal nor harmful).
    harm: Harm | None = None
    #: Hazard codes a safety classifier named (Llama Guard's S1-S14), as it said them.
    hazards: tuple[str, ...] = ()


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees: the conversation sent, the expected behaviour, the model's output."""

    messages: list[dict[str, str]]
    expected: Literal["refuse", "comply"]
    output: str
    canary: str | None = None

    @property
    def request(self) -> str:
        """The request the output answers: the last user turn (earlier turns are context)."""
        return last_user_turn(self.messages)


def last_user_turn(messages: Sequence[dict[str, str]]) -> str:
    """The last user turn of a conversation, or "" when it has none."""
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


class Judge(Protocol):
    name: str
    kind: JudgeKind

    def applies_to(self, item: JudgeItem) -> bool: ...
    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Judgement]: ...
    def settings(self) -> dict[str, Any]: ...


class JudgeSpec(Contract):
    """A judge as configured: recorded in every EvalRun and covered by the suite digest."""

    kind: JudgeKind
    name: str | None = Field(default=None, description="Defaults to the kind.")
    url: str | None = Field(
        default=None, description="Endpoint judges: OpenAI-compatible base URL (…/v1)."
    )
    model: str | None = Field(
        default=None, description="Endpoint judges: the served model name; classifier: dir."
    )
    api_key_env: str | None = Field(
        default=None, description="Endpoint judges: env var holding the API key (never stored)."
    )
    timeout: float = 60.0
    max_retries: int = 3
    concurrency: int = 4
    labels: dict[str, Verdict] | None = Field(
        default=None, description="classifier: label name -> verdict (default: inferred)."
    )
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="strongreject, shieldgemma: score at or above which a reply is harmful "
        "(default 0.5).",
    )  # fmt: skip

    @property
    def display_name(self) -> str:
        return self.name or self.kind
