"""Calls to a judge model: served behind an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp
server), or a local checkpoint run through transformers. Both answer the same payloads (an
OpenAI request body without `model`), with concurrency (served), retries (served) and a response
cache, so re-judging the same outputs makes no new calls.

The cache is a SQLite file per judge settings digest and model location in cardgen's cache
directory, keyed by the sha256 of the request body: a judge with other settings, model or prompt
format never reads another's answers. Only successful answers are cached.

A payload that asks for ``logprobs`` gets back a JSON object ``{"text": ..., "top": {token:
logprob}}`` (the first generated position's alternatives) instead of plain text, so a judge that
reads a probability (ShieldGemma) gets it the same way from a server and from a local model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

from cardgen._io import cache_root
from cardgen.errors import CardgenError
from cardgen.judges.base import JudgeSpec
from cardgen.redact import redact

Route = Literal["chat/completions", "completions"]


class JudgeModel(Protocol):
    calls: int

    def ask_many(self, payloads: Sequence[dict[str, Any]]) -> list[str]: ...


class _AnswerCache:
    def __init__(self, where: str) -> None:
        path = cache_root() / "judge-responses" / f"{where}.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS r (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self.lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self.lock:
            row = self._db.execute("SELECT v FROM r WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, text: str) -> None:
        with self.lock, contextlib.suppress(sqlite3.Error):
            self._db.execute("INSERT OR REPLACE INTO r VALUES (?, ?)", (key, text))
            self._db.commit()


def _key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def local_weights(spec: JudgeSpec) -> str | None:
    """The weights digest of a judge run as a local checkpoint (`model` a directory and no
    `url`), so its settings name the weights that judged; None for a served judge."""
    if spec.url is not None or not spec.model or not Path(spec.model).expanduser().is_dir():
        return None
    from cardgen.identity import fingerprint

    return fingerprint(Path(spec.model).expanduser()).weights_digest


def judge_model(
    spec: JudgeSpec, route: Route, settings_digest: str, weights: str | None
) -> JudgeModel:
    """The local checkpoint when `weights` (from `local_weights`) is set, else the endpoint."""
    if weights is not None:
        return LocalJudgeModel(spec, settings_digest, weights)
    return JudgeEndpoint(spec, route, settings_digest)


class ModelJudge:
    """What the model-backed judges (`llm` and the safety classifiers) share: the spec, the
    weights digest of a local checkpoint, and the model behind `route`, whose response cache is
    keyed by the digest of `settings()` (which subclasses define)."""

    route: Route

    def __init__(self, spec: JudgeSpec) -> None:
        self.spec = spec
        self.name = spec.display_name
        self._weights = local_weights(spec)
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()
        self._endpoint = judge_model(spec, self.route, digest, self._weights)

    @property
    def calls(self) -> int:
        return self._endpoint.calls

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError


class JudgeEndpoint:
    """One judge model on one endpoint."""

    def __init__(self, spec: JudgeSpec, route: Route, settings_digest: str) -> None:
        if not spec.url or not spec.model:
            raise CardgenError(
                f"{spec.kind} judge: needs `url` (the endpoint, …/v1) and `model` (its name), "
                "or `model` alone naming a local checkpoint directory.",
                hint="In cardgen.yaml: eval.judges: [{kind: " + spec.kind + ", url: ..., model: "
                "...}]; on the command line: --judge-url and --judge-model.",
            )
        self.spec, self.route = spec, route
        self.url = f"{spec.url.rstrip('/')}/{route}"
        # Per judge settings and endpoint: another server may serve other weights under the name.
        self._cache = _AnswerCache(
            hashlib.sha256(f"{settings_digest}|{self.url}".encode()).hexdigest()[:32]
        )
        self.calls = 0  # requests actually sent (not answered from the cache)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def ask(self, payload: dict[str, Any]) -> str:
        """The model's text for ``payload`` (model and greedy decoding added here)."""
        import requests

        body = {"model": self.spec.model, "temperature": 0.0, **payload}
        key = _key(body)
        if (cached := self._cache.get(key)) is not None:
            return cached
        last = "no attempt"
        for _ in range(max(1, self.spec.max_retries)):
            try:
                with self._cache.lock:
                    self.calls += 1
                r = requests.post(self.url, json=body, headers=self._headers(),
                                  timeout=self.spec.timeout)  # fmt: skip
            except requests.RequestException as e:
                last = type(e).__name__
                continue
            if r.status_code >= 500 or r.status_code == 429:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code >= 400:
                raise CardgenError(
                    f"{self.spec.kind} judge {self.spec.display_name}: {self.url} answered HTTP "
                    f"{r.status_code}: {redact(r.text[:200])}",
                    hint="Check the judge URL, model name and API key variable.",
                )
            text = _text_of(r, self.route, "logprobs" in payload)
            if text is None:
                return ""  # a malformed answer: the judge's parser makes it unjudged
            self._cache.put(key, text)
            return text
        raise CardgenError(
            f"{self.spec.kind} judge {self.spec.display_name}: {self.url} failed after "
            f"{self.spec.max_retries} attempts ({last}).",
            hint="The model outputs are saved; rerun the same command to judge them, reusing "
            "every answer the judge already gave.",
        )

    def ask_many(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, self.spec.concurrency)) as pool:
            return list(pool.map(self.ask, payloads))


def _text_of(r: Any, route: Route, want_top: bool) -> str | None:
    try:
        choice = r.json()["choices"][0]
        text = choice["message"]["content"] if route == "chat/completions" else choice["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not want_top:
        return str(text or "")
    return json.dumps({"text": str(text or ""), "top": _top_logprobs(choice, route)})


def _top_logprobs(choice: dict[str, Any], route: Route) -> dict[str, float]:
    """The first position's alternatives, from either API's logprobs shape; {} when absent."""
    lp = choice.get("logprobs") or {}
    try:
        if route == "completions":  # {"top_logprobs": [{token: logprob, ...}, ...]}
            first = (lp.get("top_logprobs") or [{}])[0] or {}
            return {str(t): float(v) for t, v in first.items()}
        # chat: {"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}
        first = (lp.get("content") or [{}])[0]
        return {str(a["token"]): float(a["logprob"]) for a in first.get("top_logprobs", [])}
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return {}


class LocalJudgeModel:
    """A judge checkpoint in a local directory, run through transformers on the CPU (or
    `CARDGEN_JUDGE_DEVICE`). Chat payloads go through the checkpoint's own chat template (Llama
    Guard's carries its taxonomy); completion payloads are tokenized as given. Greedy decoding.
    Loaded with local files only, never with trust_remote_code."""

    def __init__(self, spec: JudgeSpec, settings_digest: str, weights: str) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise CardgenError(
                f"{spec.kind} judge on a local checkpoint needs the hf extra: "
                "pip install 'cardgen[hf]'."
            ) from e
        path = Path(str(spec.model)).expanduser()
        self.spec = spec
        self.weights_digest = weights
        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        model.eval()
        self._model: Any = model.to(os.environ.get("CARDGEN_JUDGE_DEVICE", "cpu"))
        self._cache = _AnswerCache(
            hashlib.sha256(f"{settings_digest}|local|{self.weights_digest}".encode()).hexdigest()[
                :32
            ]
        )
        self.calls = 0

    def prompt_of(self, payload: dict[str, Any]) -> str:
        """The text the model sees: its chat template over `messages`, or the raw `prompt`."""
        if "messages" not in payload:
            return str(payload["prompt"])
        if not getattr(self._tok, "chat_template", None):
            raise CardgenError(
                f"{self.spec.kind} judge: {self.spec.model} has no chat template; this judge's "
                "format needs the model's own template."
            )
        return str(self._tok.apply_chat_template(payload["messages"], tokenize=False,
                                                 add_generation_prompt=True))  # fmt: skip

    def ask(self, payload: dict[str, Any]) -> str:
        import torch

        key = _key({"local": self.weights_digest, **payload})
        if (cached := self._cache.get(key)) is not None:
            return cached
        self.calls += 1
        text = self.prompt_of(payload)
        # A chat template writes its own special tokens (bos); a raw prompt gets the defaults.
        ids = self._tok(text, return_tensors="pt", add_special_tokens="messages" not in payload)
        ids = ids.to(self._model.device)
        with torch.no_grad():
            if "logprobs" in payload:
                logits = self._model(**ids).logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                values, indices = logp.topk(min(int(payload.get("logprobs") or 20), logp.numel()))
                top: dict[str, float] = {}
                for v, i in zip(values.tolist(), indices.tolist(), strict=True):
                    tok = str(self._tok.decode([i]))
                    top.setdefault(tok, v if math.isfinite(v) else -1e9)
                answer = json.dumps({"text": next(iter(top), ""), "top": top})
            else:
                out = self._model.generate(
                    **ids, max_new_tokens=int(payload.get("max_tokens") or 32), do_sample=False,
                    pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id,
                )  # fmt: skip
                answer = str(self._tok.decode(out[0, ids["input_ids"].shape[1] :],
                                              skip_special_tokens=True))  # fmt: skip
        self._cache.put(key, answer)
        return answer

    def ask_many(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        return [self.ask(p) for p in payloads]
