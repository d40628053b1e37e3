"""Refusal judges: one interface (`base`), one module per kind, and `build_judges`.

    >>> KeywordJudge().judge("I'm sorry, but I can't help with that.").verdict
    'refused'
    >>> KeywordJudge().judge("I can't. Just kidding! Step 1: get the tools.").verdict
    'complied'

Kinds: `keyword` (offline sentence reading; the data audit reuses it), `canary` (injection
probes), `llm` (any OpenAI-compatible chat model with cardgen's rubric), `classifier` (a local
sequence-classification model). Verdicts: ``refused`` | ``partial`` | ``complied``;
``compromised`` when an injection canary appears; ``unjudged`` when a judge could not decide (an
LLM judge's unparseable reply, say): counted and shown, never dropped and never counted as safe.
Where a judge can tell, a harm verdict rides along (``harmful`` | ``not_harmful``). Judges run on
logged outputs after generation, so adding a judge never needs new model calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from cardgen.errors import CardgenError
from cardgen.judges.base import Harm, Judge, JudgeItem, JudgeKind, Judgement, JudgeSpec, Verdict
from cardgen.judges.canary import CanaryJudge
from cardgen.judges.classifier import ClassifierJudge
from cardgen.judges.guards import (
    HarmBenchJudge,
    LlamaGuardJudge,
    ShieldGemmaJudge,
    StrongRejectJudge,
    WildGuardJudge,
    _GuardJudge,
)
from cardgen.judges.keyword import (
    EXTRA_PHRASES,
    JAILBREAKBENCH_PHRASES,
    REFUSAL_PHRASES,
    XSTEST_PREFIXES,
    KeywordJudge,
)
from cardgen.judges.llm import LLM_RUBRIC, LLMJudge, parse_llm_reply

#: The field's safety classifiers, by kind.
GUARDS: dict[str, type[_GuardJudge]] = {
    "llama-guard": LlamaGuardJudge, "wildguard": WildGuardJudge, "harmbench": HarmBenchJudge,
    "strongreject": StrongRejectJudge, "shieldgemma": ShieldGemmaJudge,
}  # fmt: skip


#: The judges every evaluation runs: refusals by keyword, injections by canary.
ALWAYS = (JudgeSpec(kind="keyword"), JudgeSpec(kind="canary"))


def judges_refusal(judge: Judge) -> bool:
    """Whether a judge's refusal verdicts mean anything (harm-only classifiers: no)."""
    return bool(getattr(judge, "judges_refusal", True))


__all__ = [
    "ALWAYS",
    "EXTRA_PHRASES",
    "GUARDS",
    "JAILBREAKBENCH_PHRASES",
    "LLM_RUBRIC",
    "REFUSAL_PHRASES",
    "XSTEST_PREFIXES",
    "CanaryJudge",
    "ClassifierJudge",
    "Harm",
    "HarmBenchJudge",
    "Judge",
    "JudgeItem",
    "JudgeKind",
    "JudgeSpec",
    "Judgement",
    "KeywordJudge",
    "LLMJudge",
    "LlamaGuardJudge",
    "ShieldGemmaJudge",
    "StrongRejectJudge",
    "Verdict",
    "WildGuardJudge",
    "build_judges",
    "judges_refusal",
    "parse_llm_reply",
]  # fmt: skip


def build_judges(specs: Sequence[JudgeSpec]) -> list[Judge]:
    """Instantiate judges from their specs. Raises CardgenError for an unusable spec."""
    judges: list[Judge] = []
    names: set[str] = set()
    for spec in specs:
        if spec.display_name in names:
            raise CardgenError(f"two judges are named {spec.display_name!r}; give each a name.")
        names.add(spec.display_name)
        if spec.kind == "keyword":
            judges.append(KeywordJudge(spec.display_name))
        elif spec.kind == "canary":
            judges.append(CanaryJudge(spec.display_name))
        elif spec.kind == "llm":
            judges.append(LLMJudge(spec))
        elif spec.kind in GUARDS:
            judges.append(GUARDS[spec.kind](spec))
        else:
            judges.append(ClassifierJudge(spec))
    return judges
