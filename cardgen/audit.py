"""Data audit: what a fine-tuning corpus teaches about refusing, and reinstalling refusals.

    >>> audit = audit_corpora([Path("train.jsonl")])                      # doctest: +SKIP
    >>> audit.refusal_share, audit.recommendation.pairs_to_add            # doctest: +SKIP
    (0.0, 31)

Reads JSONL in the formats fine-tuning corpora come in (OpenAI chat `messages`, ShareGPT
`conversations`, Alpaca `instruction`/`input`/`output`, `prompt`/`completion`) and Parquet.
Assistant turns are judged by the same `KeywordJudge` that `cardgen eval` uses; user turns are
matched against a shipped lexicon of the suite's 11 categories. Streaming, in parallel over byte
ranges of the file: memory stays flat whatever the corpus size. Bad lines are reported with their
line numbers and counted, never skipped silently.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cardgen._hashing import sha256_hex
from cardgen._model import Contract, Sha256
from cardgen.categories import HARM_CATEGORIES
from cardgen.errors import CardgenError
from cardgen.judges import KeywordJudge
from cardgen.judges.keyword import ANCHORS, may_not_comply

CorpusFormat = Literal["openai", "sharegpt", "alpaca", "prompt_completion"]
FORMATS: tuple[CorpusFormat, ...] = ("openai", "sharegpt", "alpaca", "prompt_completion")
IssueKind = Literal[
    "invalid_json", "not_object", "missing_field", "not_utf8", "oversized_line", "empty_file",
    "mixed_format", "unknown_format",
]  # fmt: skip
DATA_DIR = Path(__file__).resolve().parent / "data"
#: Lines above this are reported (`oversized_line`) and not parsed: memory stays bounded.
MAX_LINE_BYTES = 16 << 20
#: Example ids kept per finding and issues kept in the report; counts are always exact.
MAX_IDS = 200
MAX_ISSUES = 500
_CHUNK = 32 << 20


# ---------------------------------------------------------------------------------------------
# The lexicon and the refusal judge (shared with `cardgen eval`)


@dataclass(frozen=True)
class Lexicon:
    words: dict[str, frozenset[str]]  # single word -> categories
    phrases: dict[str, tuple[tuple[str, str], ...]]  # first word -> ((phrase, category), ...)
    digest: str

    def categories(self, text: str) -> set[str]:
        """Categories whose terms appear in `text` (whole words, case-insensitive)."""
        norm = _NON_WORD.sub(" ", text.lower())
        tokens = set(norm.split())
        found: set[str] = set()
        for tok in tokens & self.words.keys():
            found |= self.words[tok]
        hits = tokens & self.phrases.keys()
        if hits:
            padded = f" {norm} "
            for first in hits:
                for phrase, cat in self.phrases[first]:
                    if cat not in found and f" {phrase} " in padded:
                        found.add(cat)
        return found


_NON_WORD = re.compile(r"[^a-z0-9']+")


@lru_cache(maxsize=1)
def load_lexicon(path: Path = DATA_DIR / "lexicon.json") -> Lexicon:
    raw = path.read_bytes()
    data = json.loads(raw)
    words: dict[str, set[str]] = {}
    phrases: dict[str, list[tuple[str, str]]] = {}
    for cat, terms in data["categories"].items():
        if cat not in HARM_CATEGORIES:
            raise CardgenError(f"{path}: unknown category {cat!r}.")
        for term in terms:
            norm = " ".join(_NON_WORD.sub(" ", term.lower()).split())
            if " " in norm:
                phrases.setdefault(norm.split(" ", 1)[0], []).append((norm, cat))
            elif norm:
                words.setdefault(norm, set()).add(cat)
    return Lexicon(
        words={w: frozenset(c) for w, c in words.items()},
        phrases={w: tuple(p) for w, p in phrases.items()},
        digest=hashlib.sha256(raw).hexdigest(),
    )


_JUDGE = KeywordJudge()
#: The keyword judge's own pre-filter: one list of anchors, kept beside its patterns.
_ANCHORS = ANCHORS
has_anchor = may_not_comply


def refusal_verdict(text: str, request: str = "") -> str:
    """The keyword judge's verdict on an assistant turn (given the user turn before it, as the
    suites give it), with a cheap exact pre-filter."""
    low = text.replace("\u2019", "'").lstrip().lower()
    if not low:
        return _JUDGE.judge(text).verdict
    if not may_not_comply(low):
        return "complied"
    return _JUDGE.judge(text, request).verdict


# ---------------------------------------------------------------------------------------------
# Record formats


class RecordError(Exception):
    def __init__(self, kind: IssueKind, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def detect_format(obj: dict[str, Any]) -> CorpusFormat | None:
    if isinstance(obj.get("messages"), list):
        return "openai"
    if isinstance(obj.get("conversations"), list):
        return "sharegpt"
    if "instruction" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    return None


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
                   "system": "system"}  # fmt: skip


def turns_of(obj: dict[str, Any], fmt: CorpusFormat) -> list[tuple[str, str]]:
    """(role, text) turns of one record. Raises RecordError(missing_field) naming the field."""
    if fmt == "openai":
        msgs = obj.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise RecordError("missing_field", "'messages' must be a non-empty list")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise RecordError("missing_field", f"messages[{i}].role is missing")
            content = m.get("content")
            if isinstance(content, list):  # multi-part content: keep the text parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                if m["role"] == "assistant" and m.get("tool_calls"):
                    content = ""
                else:
                    raise RecordError("missing_field", f"messages[{i}].content is missing")
            out.append((m["role"], content))
        return out
    if fmt == "sharegpt":
        conv = obj.get("conversations")
        if not isinstance(conv, list) or not conv:
            raise RecordError("missing_field", "'conversations' must be a non-empty list")
        out = []
        for i, m in enumerate(conv):
            if not isinstance(m, dict) or not isinstance(m.get("value"), str):
                raise RecordError("missing_field", f"conversations[{i}].value is missing")
            role = _SHAREGPT_ROLES.get(str(m.get("from", "")).lower())
            if role is None:
                raise RecordError("missing_field", f"conversations[{i}].from is missing or unknown")
            out.append((role, m["value"]))
        return out
    if fmt == "alpaca":
        ins, inp, outp = obj.get("instruction"), obj.get("input", ""), obj.get("output")
        if not isinstance(ins, str):
            raise RecordError("missing_field", "'instruction' must be a string")
        if not isinstance(outp, str):
            raise RecordError("missing_field", "'output' is missing")
        user = f"{ins}\n{inp}" if isinstance(inp, str) and inp else ins
        return [("user", user), ("assistant", outp)]
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise RecordError("missing_field", "'prompt' and 'completion' must be strings")
    return [("user", prompt), ("assistant", completion)]


# ---------------------------------------------------------------------------------------------
# The report


class AuditIssue(Contract):
    file: str
    line: int = Field(description="1-based line (row for Parquet); 0 for the whole file.")
    kind: IssueKind
    detail: str


class CategoryFinding(Contract):
    category: str
    examples: int = Field(description="Examples whose user turns touch the category.")
    refusal_examples: int = Field(description="Of those, examples with a refusing assistant turn.")
    refusal_share: float | None
    example_ids: list[str] = Field(description=f"The first {MAX_IDS} example ids.")


class CorpusFileAudit(Contract):
    path: str
    sha256: Sha256
    size: int
    format: str = Field(description="Record format used (detected, or forced with --format).")
    format_forced: bool
    examples: int = Field(description="Valid records.")
    lines: int
    turns: int
    user_turns: int
    assistant_turns: int
    refusal_examples: int
    partial_refusal_examples: int
    malformed: int


class Recommendation(Contract):
    target_ratio: float
    current_ratio: float | None
    pairs_to_add: int
    reasoning: str


class DataAudit(Contract):
    schema_version: Literal["cardgen.data-audit/v1"] = "cardgen.data-audit/v1"
    files: list[CorpusFileAudit]
    examples: int
    turns: int
    refusal_examples: int = Field(description="Examples with at least one refusing assistant turn.")
    refusal_share: float | None
    partial_refusal_examples: int = Field(
        description="Examples whose only refusals are refusal-then-comply (not counted above)."
    )
    refusal_example_ids: list[str] = Field(description=f"The first {MAX_IDS}.")
    safety_relevant_examples: int
    safety_relevant_refusal_share: float | None
    by_category: list[CategoryFinding]
    malformed: int
    issue_counts: dict[str, int]
    issues: list[AuditIssue] = Field(description=f"The first {MAX_ISSUES} issues.")
    judge: dict[str, Any]
    lexicon_sha256: str
    recommendation: Recommendation


# ---------------------------------------------------------------------------------------------
# Scanning


@dataclass
class _Tally:
    examples: int = 0
    lines: int = 0
    turns: int = 0
    user_turns: int = 0
    assistant_turns: int = 0
    refusal: int = 0
    partial: int = 0
    refusal_ids: list[str] = field(default_factory=list)
    relevant: int = 0
    relevant_refusal: int = 0
    cat_examples: Counter[str] = field(default_factory=Counter)
    cat_refusals: Counter[str] = field(default_factory=Counter)
    cat_ids: dict[str, list[str]] = field(default_factory=dict)
    issues: list[tuple[int, str, str]] = field(default_factory=list)  # (line, kind, detail)
    issue_counts: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)

    def issue(self, line: int, kind: IssueKind, detail: str) -> None:
        self.issue_counts[kind] += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append((line, kind, detail))

    def add_ids(self, target: list[str], ex_id: str) -> None:
        if len(target) < MAX_IDS:
            target.append(ex_id)

    def merge(self, other: _Tally, line_offset: int) -> None:
        for name in ("examples", "lines", "turns", "user_turns", "assistant_turns", "refusal",
                     "partial", "relevant", "relevant_refusal"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for ex_id in other.refusal_ids:
            self.add_ids(self.refusal_ids, _shift(ex_id, line_offset))
        self.cat_examples.update(other.cat_examples)
        self.cat_refusals.update(other.cat_refusals)
        for cat, ids in other.cat_ids.items():
            mine = self.cat_ids.setdefault(cat, [])
            for ex_id in ids:
                self.add_ids(mine, _shift(ex_id, line_offset))
        for line, kind, detail in other.issues:
            if len(self.issues) < MAX_ISSUES:
                self.issues.append((line + line_offset, kind, detail))
        self.issue_counts.update(other.issue_counts)
        self.formats.update(other.formats)


def _shift(ex_id: str, offset: int) -> str:
    # Ids of records without their own id are "L<line>", relative to the chunk until merged.
    if ex_id.startswith("\0L"):
        return f"\0L{int(ex_id[2:]) + offset}"
    return ex_id


def _record(tally: _Tally, obj: Any, line: int, fmt: CorpusFormat | None) -> None:
    lex = load_lexicon()
    if not isinstance(obj, dict):
        tally.issue(line, "not_object", f"a JSON {type(obj).__name__}, not an object")
        return
    own = detect_format(obj)
    use = fmt or own
    if use is None:
        tally.issue(line, "unknown_format", "not a messages / conversations / instruction / "
                    "prompt+completion record")  # fmt: skip
        return
    if fmt is not None and own is not None and own != fmt:
        tally.issue(line, "mixed_format", f"a {own} record in a {fmt} file")
        use = own
    try:
        turns = turns_of(obj, use)
    except RecordError as e:
        tally.issue(line, e.kind, e.detail)
        return
    tally.formats[use] += 1
    tally.examples += 1
    tally.turns += len(turns)
    rid = obj.get("id")
    ex_id = str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else f"\0L{line}"
    cats: set[str] = set()
    refused = partial = False
    asked = ""
    for role, text in turns:
        if role == "assistant":
            tally.assistant_turns += 1
            verdict = refusal_verdict(text, asked)
            refused |= verdict == "refused"
            partial |= verdict == "partial" and bool(text.strip())
        elif role == "user":
            tally.user_turns += 1
            cats |= lex.categories(text)
            asked = text
    if refused:
        tally.refusal += 1
        tally.add_ids(tally.refusal_ids, ex_id)
    elif partial:
        tally.partial += 1
    if cats:
        tally.relevant += 1
        tally.relevant_refusal += refused
        for c in cats:
            tally.cat_examples[c] += 1
            tally.cat_refusals[c] += refused
            tally.add_ids(tally.cat_ids.setdefault(c, []), ex_id)


def _scan_range(path: str, start: int, end: int, fmt: CorpusFormat | None) -> _Tally:
    """Audit the lines that start in [start, end) of a JSONL file; lines are chunk-relative."""
    import orjson

    tally = _Tally()
    with open(path, "rb") as f:
        f.seek(start)
        pos, line_no = start, 0
        while pos < end:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            line_no += 1
            pos += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                skipped = len(raw)
                while True:  # skip the rest of the line without holding it
                    more = f.readline(1 << 20)
                    pos += len(more)
                    skipped += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                tally.issue(line_no, "oversized_line", f"{skipped:,} bytes, over the "
                            f"{MAX_LINE_BYTES:,}-byte limit; not parsed")  # fmt: skip
                continue
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as u:
                    tally.issue(line_no, "not_utf8", f"invalid UTF-8 at byte {u.start}")
                else:
                    tally.issue(line_no, "invalid_json", str(e)[:160])
                continue
            _record(tally, obj, line_no, fmt)
    tally.lines = line_no
    return tally


def _ranges(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges that start at line starts, about _CHUNK each."""
    bounds = [0]
    with open(path, "rb") as f:
        pos = _CHUNK
        while pos < size:
            f.seek(pos)
            f.readline()
            nxt = f.tell()
            if nxt >= size:
                break
            if nxt > bounds[-1]:
                bounds.append(nxt)
            pos = nxt + _CHUNK
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _detect_file_format(path: Path) -> CorpusFormat | None:
    """The format of the first valid record in the file's first lines."""
    import orjson

    with open(path, "rb") as f:
        for _ in range(1000):
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return None
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and (fmt := detect_format(obj)):
                return fmt
    return None


def _audit_jsonl(
    path: Path,
    fmt: CorpusFormat | None,
    workers: int,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[_Tally, CorpusFormat | None]:
    size = path.stat().st_size
    fmt = fmt or _detect_file_format(path)
    total = _Tally()
    if size == 0:
        total.issue(0, "empty_file", "the file is empty")
        return total, fmt
    ranges = _ranges(path, size)

    def done(part: _Tally, a: int, b: int) -> _Tally:
        if on_bytes is not None:
            on_bytes(b - a)
        return part

    if workers <= 1 or len(ranges) == 1:
        parts: Iterable[_Tally] = (done(_scan_range(str(path), a, b, fmt), a, b) for a, b in ranges)
        return _merge_parts(total, parts), fmt
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scan_range, str(path), a, b, fmt) for a, b in ranges]
        parts = (done(f.result(), a, b) for f, (a, b) in zip(futures, ranges, strict=True))
        return _merge_parts(total, parts), fmt


def _merge_parts(total: _Tally, parts: Iterable[_Tally]) -> _Tally:
    offset = 0
    for part in parts:
        total.merge(part, offset)
        offset += part.lines
    total.lines = offset
    return total


def _audit_parquet(path: Path, fmt: CorpusFormat | None) -> tuple[_Tally, CorpusFormat | None]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise CardgenError("Parquet corpora need pyarrow: pip install pyarrow.") from e
    tally = _Tally()
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise CardgenError(f"{path}: not a readable Parquet file ({type(e).__name__}).") from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            row += 1
            if fmt is None and isinstance(obj, dict):
                fmt = detect_format(obj)
            _record(tally, obj, row, fmt)
    tally.lines = row
    if row == 0:
        tally.issue(0, "empty_file", "the file has no rows")
    return tally, fmt


def target_pairs(examples: int, refusals: int, ratio: float) -> int:
    """Refusal pairs to add so that refusals / examples reaches `ratio`."""
    if not 0 < ratio < 1:
        raise CardgenError(f"--ratio {ratio}: use a share between 0 and 1, e.g. 0.03.")
    if examples and refusals / examples >= ratio:
        return 0
    return max(0, math.ceil((ratio * examples - refusals) / (1 - ratio) - 1e-9))


def audit_corpora(
    paths: Sequence[Path],
    *,
    fmt: CorpusFormat | None = None,
    target_ratio: float = 0.03,
    workers: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> DataAudit:
    """Audit corpus files. Raises CardgenError for a missing or unreadable file."""
    target_pairs(1, 0, target_ratio)  # validates the ratio before any work
    workers = workers or os.cpu_count() or 1
    lex = load_lexicon()
    total = _Tally()
    files: list[CorpusFileAudit] = []
    issues: list[AuditIssue] = []
    for path in paths:
        if not path.is_file():
            raise CardgenError(f"{path}: corpus file not found.")
        name = path.name
        # The digest is computed on a thread while the workers parse (hashlib drops the GIL).
        with ThreadPoolExecutor(max_workers=1) as hasher:
            digest = hasher.submit(sha256_hex, path)
            if path.suffix.lower() == ".parquet":
                tally, used = _audit_parquet(path, fmt)
            else:
                tally, used = _audit_jsonl(path, fmt, workers, on_bytes)
            sha = digest.result()
        prefix_ids = len(paths) > 1
        for line, kind, detail in tally.issues:
            if len(issues) < MAX_ISSUES:
                issues.append(AuditIssue(file=name, line=line, kind=kind, detail=detail))
        tally.refusal_ids = [_final_id(i, name, prefix_ids) for i in tally.refusal_ids]
        tally.cat_ids = {c: [_final_id(i, name, prefix_ids) for i in ids]
                         for c, ids in tally.cat_ids.items()}  # fmt: skip
        files.append(
            CorpusFileAudit(
                path=str(path), sha256=sha, size=path.stat().st_size,
                format=used or "unknown", format_forced=fmt is not None,
                examples=tally.examples, lines=tally.lines, turns=tally.turns,
                user_turns=tally.user_turns, assistant_turns=tally.assistant_turns,
                refusal_examples=tally.refusal, partial_refusal_examples=tally.partial,
                malformed=sum(tally.issue_counts.values()),
            )
        )  # fmt: skip
        tally.issues = []
        total.merge(tally, 0)
    n, r = total.examples, total.refusal
    share = r / n if n else None
    k = target_pairs(n, r, target_ratio) if n else 0
    if share is None:  # nothing was read: no share, and no target can be met
        reasoning = (
            f"No example could be read ({_problems(total.issue_counts)}): the corpus says "
            "nothing about refusals. Fix the file and audit it again."
        )
    elif k:
        reasoning = (
            f"{r} of {n} examples ({share:.2%}) refuse; adding {k} refusal pairs brings the "
            f"share to {target_ratio:.0%}, the few-percent level that restored refusals in "
            "Safety-Tuned LLaMAs without making the model over-refuse."
        )
    else:
        reasoning = (
            f"{r} of {n} examples ({share:.2%}) already refuse, at or above the "
            f"{target_ratio:.0%} target: no pairs needed."
        )
    return DataAudit(
        files=files,
        examples=n,
        turns=total.turns,
        refusal_examples=r,
        refusal_share=share,
        partial_refusal_examples=total.partial,
        refusal_example_ids=total.refusal_ids,
        safety_relevant_examples=total.relevant,
        safety_relevant_refusal_share=total.relevant_refusal / total.relevant
        if total.relevant
        else None,
        by_category=[
            CategoryFinding(
                category=c,
                examples=total.cat_examples[c],
                refusal_examples=total.cat_refusals[c],
                refusal_share=total.cat_refusals[c] / total.cat_examples[c]
                if total.cat_examples[c]
                else None,
                example_ids=total.cat_ids.get(c, []),
            )
            for c in HARM_CATEGORIES
        ],
        malformed=sum(total.issue_counts.values()),
        issue_counts=dict(sorted(total.issue_counts.items())),
        issues=issues,
        judge=_JUDGE.settings(),
        lexicon_sha256=lex.digest,
        recommendation=Recommendation(
            target_ratio=target_ratio, current_ratio=share, pairs_to_add=k, reasoning=reasoning
        ),
    )


def _problems(issue_counts: dict[str, int]) -> str:
    if not issue_counts:
        return "no records"
    return ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in sorted(issue_counts.items()))


def require_examples(audit: DataAudit, paths: Sequence[Path]) -> None:
    """Raise CardgenError when the audit read no example: zero readable records are not
    evidence of anything (not "0% refuse", not "target met")."""
    if audit.examples == 0:
        raise _no_examples(", ".join(str(p) for p in paths), audit.issue_counts)


def _no_examples(where: str, issue_counts: dict[str, int]) -> CardgenError:
    return CardgenError(
        f"{where}: no example could be read ({_problems(issue_counts)}).",
        hint="Check the file's format (one JSON record per line: openai messages, sharegpt, "
        "alpaca or prompt/completion) and its encoding (UTF-8), or pass --format.",
    )


def check_corpus(path: Path, fmt: CorpusFormat | None = None) -> None:
    """Cheap check before a run: the file exists and at least one of its records reads as an
    example. Scans chunk by chunk and stops at the first readable example, so a good corpus
    costs one chunk; raises the same CardgenError as `require_examples` otherwise."""
    if not path.is_file():
        raise CardgenError(f"{path}: corpus file not found.")
    if path.suffix.lower() == ".parquet":
        tally, _ = _audit_parquet(path, fmt)
    else:
        size = path.stat().st_size
        fmt = fmt or _detect_file_format(path)
        tally = _Tally()
        if size == 0:
            tally.issue(0, "empty_file", "the file is empty")
        for a, b in _ranges(path, size) if size else []:
            tally.merge(_scan_range(str(path), a, b, fmt), 0)
            if tally.examples:
                return
    if tally.examples == 0:
        raise _no_examples(str(path), dict(tally.issue_counts))


def _final_id(ex_id: str, file_name: str, prefix: bool) -> str:
    if ex_id.startswith("\0L"):
        return f"{file_name}:{ex_id[2:]}"
    return f"{file_name}:{ex_id}" if prefix else ex_id


# ---------------------------------------------------------------------------------------------
# Injection


class PoolPair(Contract):
    id: str
    category: str
    request: str
    refusal: str


@lru_cache(maxsize=1)
def _read_pool(path: Path = DATA_DIR / "refusal_pool.jsonl") -> tuple[tuple[PoolPair, ...], str]:
    """The shipped refusal pool and the sha256 of its file, read once."""
    raw = path.read_bytes()
    pairs = tuple(
        PoolPair.model_validate_json(line) for line in raw.decode().splitlines() if line.strip()
    )
    return pairs, hashlib.sha256(raw).hexdigest()


def load_pool() -> tuple[PoolPair, ...]:
    return _read_pool()[0]


def render_pair(pair: PoolPair, fmt: CorpusFormat) -> dict[str, Any]:
    """A refusal pair in the corpus's own record format."""
    if fmt == "openai":
        return {"messages": [{"role": "user", "content": pair.request},
                             {"role": "assistant", "content": pair.refusal}]}  # fmt: skip
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": pair.request},
                                  {"from": "gpt", "value": pair.refusal}]}  # fmt: skip
    if fmt == "alpaca":
        return {"instruction": pair.request, "input": "", "output": pair.refusal}
    return {"prompt": pair.request, "completion": pair.refusal}


class Injection(Contract):
    schema_version: Literal["cardgen.injection/v1"] = "cardgen.injection/v1"
    input_path: str
    input_sha256: str
    output_path: str
    output_sha256: str
    format: str
    seed: int
    target_ratio: float
    examples_before: int
    refusals_before: int
    pairs_added: int
    refusal_share_after: float
    pool_sha256: str
    pool_pairs_used: list[str] = Field(description="Pool ids, in the order they were inserted.")


def inject_refusals(
    corpus: Path,
    out: Path,
    *,
    ratio: float = 0.03,
    seed: int = 0,
    fmt: CorpusFormat | None = None,
    audit: DataAudit | None = None,
) -> Injection:
    """Write `out`: the corpus with canonical refusal pairs spread through it until the refusal
    share reaches `ratio`. Every input line is copied as it was (bad lines included: nothing is
    dropped); the pairs go in at seeded positions. Raises CardgenError for unusable input."""
    import random

    if corpus.suffix.lower() == ".parquet":
        raise CardgenError(f"{corpus}: --inject writes JSONL; convert the Parquet corpus first.")
    if corpus.resolve() == out.resolve():
        raise CardgenError("--out must be a new file, not the corpus itself.")
    audit = audit or audit_corpora([corpus], fmt=fmt, target_ratio=ratio)
    require_examples(audit, [corpus])
    # The format the audit detected (or was told): no second read of the corpus.
    used = audit.files[0].format
    if used not in FORMATS:
        raise CardgenError(f"{corpus}: cannot tell the record format; give --format.")
    n, r = audit.examples, audit.refusal_examples
    k = target_pairs(n, r, ratio)
    pool_pairs, pool_sha256 = _read_pool()
    pool = list(pool_pairs)
    rng = random.Random(seed)
    order = rng.sample(pool, len(pool))
    chosen = [order[i % len(order)] for i in range(k)]  # cycles only when k > pool size
    lines = audit.files[0].lines
    # Insert after these input line numbers (0 = before the first line), spread uniformly.
    slots = sorted(rng.randrange(0, lines + 1) for _ in range(k))
    from cardgen._io import write_atomic_stream

    def stream() -> Iterator[bytes]:
        nxt = 0
        with open(corpus, "rb") as f:
            for line_no in range(lines + 1):
                while nxt < k and slots[nxt] == line_no:
                    yield (
                        json.dumps(render_pair(chosen[nxt], used), ensure_ascii=False).encode()
                        + b"\n"
                    )
                    nxt += 1
                if line_no == lines:
                    break
                raw = f.readline()
                if raw and not raw.endswith(b"\n"):
                    raw += b"\n"
                yield raw

    out_sha = write_atomic_stream(out, stream())
    return Injection(
        input_path=str(corpus), input_sha256=audit.files[0].sha256, output_path=str(out),
        output_sha256=out_sha, format=used, seed=seed, target_ratio=ratio, examples_before=n,
        refusals_before=r, pairs_added=k,
        refusal_share_after=(r + k) / (n + k) if n + k else 0.0,
        pool_sha256=pool_sha256,
        pool_pairs_used=[p.id for p in chosen],
    )  # fmt: skip
