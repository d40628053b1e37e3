"""A local Hugging Face sequence-classification model as a refusal judge."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cardgen.errors import CardgenError
from cardgen.judges.base import JudgeItem, JudgeKind, Judgement, JudgeSpec, Verdict

# ---------------------------------------------------------------------------------------------
# classifier


def _infer_label(name: str) -> Verdict | None:
    n = name.lower()
    if "partial" in n:
        return "partial"
    if "refus" in n or "declin" in n or n in ("reject", "rejected"):
        return "refused"
    if "compl" in n or "answer" in n or n in ("accept", "accepted"):
        return "complied"
    return None


class ClassifierJudge:
    """A local Hugging Face sequence-classification model (e.g. a refusal classifier).

    Labels map to verdicts through `spec.labels` or, by default, their names (refus*, compl*,
    partial). Loaded from a local directory only, never with trust_remote_code.
    """

    kind: JudgeKind = "classifier"

    def __init__(self, spec: JudgeSpec) -> None:
        if not spec.model:
            raise CardgenError("classifier judge: needs `model`, a local model directory.")
        path = Path(spec.model).expanduser()
        if not path.is_dir():
            raise CardgenError(f"classifier judge: {path} is not a local model directory.")
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as e:
            raise CardgenError(
                "classifier judge needs the hf extra: pip install 'cardgen[hf]'."
            ) from e
        self.spec = spec
        self.name = spec.display_name
        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True
        ).eval()
        id2label = {int(k): str(v) for k, v in self._model.config.id2label.items()}
        mapping: dict[int, Verdict] = {}
        for idx, label in id2label.items():
            verdict = (spec.labels or {}).get(label) or _infer_label(label)
            if verdict is None:
                raise CardgenError(
                    f"classifier judge: cannot tell which verdict label {label!r} means.",
                    hint="Give labels: {LABEL: refused|partial|complied} in the judge spec.",
                )
            mapping[idx] = verdict
        self._mapping = mapping
        from cardgen.identity import fingerprint

        self._digest = fingerprint(path).weights_digest

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "weights_digest": self._digest,
            "labels": {str(k): v for k, v in sorted(self._mapping.items())},
        }

    def applies_to(self, item: JudgeItem) -> bool:
        return item.canary is None

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        import torch

        out: list[Judgement] = []
        for start in range(0, len(items), 16):
            chunk = items[start : start + 16]
            enc = self._tok(
                [i.output for i in chunk], padding=True, truncation=True, max_length=512,
                return_tensors="pt",
            )  # fmt: skip
            with torch.no_grad():
                probs = self._model(**enc).logits.softmax(-1)
            for row in probs:
                idx = int(row.argmax())
                out.append(Judgement(self._mapping[idx], score=float(row[idx])))
        return out
