"""Calls to a judge served behind an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server):
concurrency, retries, and a response cache, so re-judging the same outputs makes no new calls.

The cache is a SQLite file per judge settings digest in cardgen's cache directory, keyed by the
sha256 of the request body: a judge with other settings, model or prompt format never reads
another's answers. Only successful answers are cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from cardgen._io import cache_root
from cardgen.errors import CardgenError
from cardgen.judges.base import JudgeSpec
from cardgen.redact import redact

Route = Literal["chat/completions", "completions"]


class JudgeEndpoint:
    """One judge model on one endpoint."""

    def __init__(self, spec: JudgeSpec, route: Route, settings_digest: str) -> None:
        if not spec.url or not spec.model:
            raise CardgenError(
                f"{spec.kind} judge: needs `url` (the endpoint, …/v1) and `model` (its name).",
                hint="In cardgen.yaml: eval.judges: [{kind: " + spec.kind + ", url: ..., model: "
                "...}]; on the command line: --judge-url and --judge-model.",
            )
        self.spec, self.route = spec, route
        self.url = f"{spec.url.rstrip('/')}/{route}"
        # Per judge settings and endpoint: another server may serve other weights under the name.
        where = hashlib.sha256(f"{settings_digest}|{self.url}".encode()).hexdigest()[:32]
        path = cache_root() / "judge-responses" / f"{where}.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS r (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self._lock = threading.Lock()
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
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            row = self._db.execute("SELECT v FROM r WHERE k = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        last = "no attempt"
        for _ in range(max(1, self.spec.max_retries)):
            try:
                with self._lock:
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
            text = _text_of(r, self.route)
            if text is None:
                return ""  # a malformed answer: the judge's parser makes it unjudged
            with self._lock, contextlib.suppress(sqlite3.Error):
                self._db.execute("INSERT OR REPLACE INTO r VALUES (?, ?)", (key, text))
                self._db.commit()
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


def _text_of(r: Any, route: Route) -> str | None:
    try:
        choice = r.json()["choices"][0]
        text = choice["message"]["content"] if route == "chat/completions" else choice["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return str(text or "")
