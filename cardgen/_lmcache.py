"""Resumable model calls: a JSON-in-SQLite response cache around any lm-eval `LM`.

lm-eval's own `use_cache` stores responses with `sqlitedict`, i.e. pickles them, and skips
sampled generations. cardgen never unpickles and must resume sampled passes too, so this wrapper
keeps the same idea (every finished request is committed as soon as lm-eval reports it through
its cache hook) with JSON values and a key that includes the pass, so K sampled passes over the
same prompts stay K different samples.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from lm_eval.api.model import LM, hash_args

_METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")


class ResponseCache:
    """sqlite3 table (key -> JSON). Safe to share between threads; commits every write."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (k TEXT PRIMARY KEY, v TEXT)")
        self.hits = 0
        self.writes = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT v FROM responses WHERE k = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (k, v) VALUES (?, ?)", (key, json.dumps(value))
            )
            self.writes += 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _to_json(method: str, value: Any) -> Any:
    if method == "loglikelihood":  # (logprob, is_greedy)
        return [float(value[0]), bool(value[1])]
    if method == "loglikelihood_rolling":
        return float(value)
    return str(value)


def _from_json(method: str, value: Any) -> Any:
    if method == "loglikelihood":
        return (float(value[0]), bool(value[1]))
    return value


class RequestProgress(Protocol):
    def requests_started(self, method: str, total: int) -> None: ...
    def requests_done(self, n: int) -> None: ...


class _Hook:
    """lm-eval backends call `cache_hook.add_partial(...)` as each request finishes."""

    def __init__(
        self, cache: ResponseCache, namespace: str, progress: RequestProgress | None
    ) -> None:
        self.cache, self.namespace, self.progress = cache, namespace, progress

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        if attr in _METHODS and req is not None:
            self.cache.put(self.namespace + hash_args(attr, req), _to_json(attr, res))
            if self.progress is not None:
                self.progress.requests_done(1)


class CachedLM(LM):  # type: ignore[misc]
    """An `LM` that answers from the cache first and records every new answer immediately."""

    def __init__(
        self,
        lm: Any,
        cache: ResponseCache,
        namespace: str,
        progress: RequestProgress | None = None,
    ) -> None:
        super().__init__()
        self.lm = lm
        self.cache = cache
        self.namespace = namespace
        self.progress = progress
        self.model_calls = 0
        lm.set_cache_hook(_Hook(cache, namespace, progress))

    def __getattr__(self, attr: str) -> Any:  # tokenizer, chat template, rank... pass through
        return getattr(self.lm, attr)

    def _run(self, method: str, requests: list[Any]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        todo: list[int] = []
        for i, req in enumerate(requests):
            hit = self.cache.get(self.namespace + hash_args(method, req.args))
            if hit is None:
                todo.append(i)
            else:
                results[i] = _from_json(method, hit)
                self.cache.hits += 1
        if todo:
            self.model_calls += len(todo)
            if self.progress is not None:
                self.progress.requests_started(method, len(todo))
            fresh = getattr(self.lm, method)([requests[i] for i in todo])
            for i, res in zip(todo, fresh, strict=True):
                results[i] = res
                self.cache.put(
                    self.namespace + hash_args(method, requests[i].args), _to_json(method, res)
                )
        return results

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._run("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._run("loglikelihood_rolling", requests)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._run("generate_until", requests)

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> Any:
        return self.lm.apply_chat_template(
            chat_history, add_generation_prompt=add_generation_prompt
        )

    @property
    def tokenizer_name(self) -> str:
        return str(self.lm.tokenizer_name)

    @property
    def rank(self) -> int:
        return int(getattr(self.lm, "rank", 0))

    @property
    def world_size(self) -> int:
        return int(getattr(self.lm, "world_size", 1))
