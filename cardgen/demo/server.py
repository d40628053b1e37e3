"""A small OpenAI-compatible server that really runs a transformers checkpoint, on 127.0.0.1.

cardgen evaluates the checkpoint that is actually served, so its tests, demo and benchmarks need an
endpoint that answers like vLLM or OpenAI *and* is backed by real weights: lm-eval's
``local-completions`` and ``local-chat-completions`` models must give the same generations and
log-likelihoods through this server as lm-eval's ``hf`` backend gives on the same directory. That
is what this module is built and tested for (``tests/test_server.py``).

What lm-eval 0.4.13 sends, and what the server therefore matches:

* ``local-completions`` (``tokenizer_backend=huggingface``) posts token ids, always as a *list of
  lists* (one per prompt, even with batch size 1). Scoring requests are ``echo=true, logprobs=1,
  max_tokens=1, temperature=0``; lm-eval reads ``choices[i].logprobs.token_logprobs[ctxlen:-1]``, so
  the answer must hold exactly one logprob per prompt token (the first one ``null``) followed by
  one generated token (kept even when it is the end-of-sequence token, which is left out of
  ``text``). ``is_greedy`` compares each token's logprob with ``max(top_logprobs[i].values())``,
  so both come from the same tensor and compare exactly. Generation requests carry ``max_tokens``,
  ``temperature: 0``, ``stop`` (the task's ``until`` plus the EOS string, not capped at 4) and
  ``seed: 1234``; lm-eval does not post-process ``text``, so the server truncates at ``stop``.
* ``local-chat-completions`` posts ``messages`` with ``max_tokens``, ``temperature``, ``seed`` and
  ``stop[:4]``, and strips nothing either.
* lm-eval's ``hf`` backend decodes continuations with ``skip_special_tokens=True`` and cuts them at
  the first stop string; the server does the same, so special tokens never reach ``text``.

There is deliberately no ``/tokenize`` route: lm-eval's ``tokenizer_backend=auto`` switches to a
"remote" tokenizer when it finds one, and that mode breaks scoring with chat templates.

Design: HTTP handler threads parse and validate; ONE worker thread owns the model and takes jobs
from a queue, batching whatever is pending (up to ``max_batch`` sequences per call): scoring is a
right-padded forward pass (under causal attention, padding *after* a sequence cannot change it, and
positions start at 0 as they do unbatched); greedy generation is one left-padded ``generate`` call
whose position ids transformers derives from the attention mask. Per-row stop strings and token
limits are enforced by a stopping criterion, and each row's answer is recomputed from its own
tokens afterwards, so a batched answer equals the sequential one. Sampled requests are never
mixed with other requests: each runs alone under a forked RNG seeded with its ``seed``, so the
same request always gives the same answer whatever else is queued.

Greedy means the arg-max of the raw logits: the checkpoint's ``generation_config`` (repetition
penalties and the like) is not applied, as with OpenAI's API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import torch

log = logging.getLogger(__name__)

#: OpenAI allows at most 20 alternatives per position; larger requests are a client bug.
MAX_TOP_LOGPROBS = 20
#: Request bodies above this are refused (413): nothing legitimate for a tiny model is this big.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: The legacy completions API's default ``max_tokens``.
DEFAULT_COMPLETION_TOKENS = 16


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON error body, as OpenAI's clients expect to parse it."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass
class Faults:
    """Test hooks that make the next requests fail in the ways real endpoints fail.

    Set the counters from any thread (``server.faults.fail_next = 2``); each request to a ``/v1``
    route consumes at most one of each kind, under a lock, so concurrent requests never both take
    the last one. Hangs happen first, then failures, then garbage.
    """

    fail_next: int = 0  # next N requests answer HTTP 500
    hang_next: int = 0  # next N requests sleep `hang_seconds` before answering (client timeouts)
    hang_seconds: float = 30.0
    garbage_next: int = 0  # next N requests answer 200 with invalid JSON
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def take(self, kind: Literal["fail", "hang", "garbage"]) -> bool:
        """Consume one fault of ``kind`` if any is armed; True when this request gets it."""
        name = f"{kind}_next"
        with self._lock:
            left = int(getattr(self, name))
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False


# --------------------------------------------------------------------------------------------
# Work items for the model thread


@dataclass(frozen=True)
class _Scored:
    """Log-probabilities of one sequence under the model.

    ``token_logprobs[j]`` and ``top[j]`` describe token ``j + 1`` (the first token has no
    context); ``next_top`` is the distribution after the last token, best first.
    """

    token_logprobs: list[float]
    top: list[list[tuple[int, float]]]
    next_top: list[tuple[int, float]]


@dataclass(frozen=True)
class _GenRow:
    prompt: list[int]
    max_new: int
    stops: tuple[str, ...]


@dataclass(frozen=True)
class _Generated:
    tokens: list[int]  # generated ids, cut at EOS (kept) or at the stop string's token
    text: str  # decoded without special tokens, truncated before the first stop string
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class _Decoding:
    temperature: float
    top_p: float
    seed: int | None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class _Job:
    kind: Literal["score", "generate"]
    rows: list[Any]  # list[list[int]] to score, or list[_GenRow] to generate
    top_n: int = 1
    decoding: _Decoding | None = None
    future: Future[list[Any]] = field(default_factory=Future)
    results: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)


class _RowStopper:
    """Per-row stopping for a batched ``generate``: each row stops at its own limit or stop string.

    A plain callable rather than a ``StoppingCriteria`` subclass: ``StoppingCriteriaList`` only
    calls it, and generate marks a row finished when it returns True for that row.
    """

    def __init__(self, rows: Sequence[_GenRow], width: int, decode: Callable[[list[int]], str]):
        self.rows = rows
        self.width = width
        self.decode = decode

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        made = input_ids.shape[1] - self.width
        done: list[bool] = []
        for b, row in enumerate(self.rows):
            stop = made >= row.max_new
            if not stop and row.stops:
                text = self.decode(input_ids[b, self.width :].tolist())
                stop = any(s in text for s in row.stops)
            done.append(stop)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# --------------------------------------------------------------------------------------------
# Request validation helpers


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def _opt_number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"'{key}' must be a number", key)
    if not lo <= float(value) <= hi:
        raise _bad(f"'{key}' must be between {lo} and {hi}", key)
    return float(value)


def _opt_int(body: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"'{key}' must be an integer", key)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise _bad(f"'{key}' must be {bound}", key)
    return value


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad("'stop' must be a string or a list of strings", "stop")
    return tuple(s for s in value if s)  # "" would stop everything; lm-eval ignores it too


def _decoding(body: dict[str, Any]) -> _Decoding:
    if body.get("stream"):
        raise _bad("streaming is not supported by this server", "stream")
    n = _opt_int(body, "n", 1)
    if n not in (None, 1):
        raise _bad("only n=1 is supported", "n")
    # OpenAI's default temperature is 1: a client that omits it gets sampling, as it would there.
    temperature = _opt_number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _opt_number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0.0:
        raise _bad("'top_p' must be greater than 0", "top_p")
    seed = _opt_int(body, "seed", -(2**63))
    return _Decoding(temperature=temperature, top_p=top_p, seed=seed)


def _now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    """Handler threads are daemons: a hung fault or a client's idle keep-alive never blocks exit."""

    daemon_threads = True
    app: ModelServer


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the `ModelServer`. Logs request lines only: never headers or bodies."""

    protocol_version = "HTTP/1.1"  # keep-alive, like real servers (lm-eval's clients reuse them)
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms or more per response on keep-alive connections).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.app._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _read_body(self) -> bytes | None:
        """The request body; None (after answering) when it cannot be read safely."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                self.close_connection = True
                self._send_json(411, _bad("Content-Length is required").body())
                return None
            return b""
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY_BYTES:
            self.close_connection = True
            status = 413 if size > MAX_BODY_BYTES else 400
            self._send_json(status, ApiError(status, "bad Content-Length").body())
            return None
        return self.rfile.read(size)

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        raw = self._read_body()  # always drain the body, or keep-alive would desynchronise
        if raw is None:
            return
        path = urlsplit(self.path).path.rstrip("/")
        routes: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
            "/v1/models": ("GET", lambda _body: app._models()),
            "/v1/completions": ("POST", app._completions),
            "/v1/chat/completions": ("POST", app._chat),
        }
        if path not in routes:
            self._send_json(404, ApiError(404, f"no route {path!r}", code="not_found").body())
            return
        want, handler = routes[path]
        if method != want:
            self._send_json(405, ApiError(405, f"use {want} for {path}").body())
            return
        app._count_request()
        app._arrive()
        try:
            self._serve_model_route(app, method, raw, path, handler)
        finally:
            app._arrived()

    def _serve_model_route(
        self,
        app: ModelServer,
        method: str,
        raw: bytes,
        path: str,
        handler: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        app._pause(app.latency_ms / 1000.0)
        if app.faults.take("hang"):
            app._pause(app.faults.hang_seconds)
        if app.faults.take("fail"):
            err = ApiError(500, "injected failure", type_="server_error")
            self._send_json(500, err.body())
            return
        if app.faults.take("garbage"):
            self._send_raw(200, b'{"id": "cmpl-garbage", "choices": [{"text": "unterminated')
            return
        try:
            if method == "POST":
                try:
                    body = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise _bad(f"request body is not valid JSON: {exc}") from None
                if not isinstance(body, dict):
                    raise _bad("request body must be a JSON object")
            else:
                body = {}
            self._send_json(200, handler(body))
        except ApiError as exc:
            self._send_json(exc.status, exc.body())
        except Exception:  # the client gets a 500; the traceback goes to our log, not to it
            log.exception("error serving %s %s", method, path)
            err = ApiError(500, "internal server error", type_="server_error")
            self._send_json(500, err.body())

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload, ensure_ascii=False).encode())

    def _send_raw(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) or went away: nothing left to tell it
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# The server


class ModelServer:
    """An OpenAI-compatible endpoint for one local checkpoint, started with ``with``.

    ``url`` is known as soon as the object exists (the socket is bound in ``__init__``, port 0
    picks a free one); the model API is under ``url + "/v1"``.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        model_name: str | None = None,
        max_batch: int = 16,
        threads: int | None = 1,
    ) -> None:
        """Load the checkpoint and bind the socket; ``start()`` (or ``with``) begins serving.

        ``threads`` is the number of torch intra-op threads in the model thread (set there, so the
        caller's setting is left alone); None keeps torch's default. It is 1 by default because a
        small model gains nothing from more, and on a small shared CPU two OpenMP threads that
        wait for each other on busy cores made each forward pass ~100x slower (measured here).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.model_dir = Path(model_dir).resolve()
        self.model_name = model_name or self.model_dir.name
        self.latency_ms = float(latency_ms)
        self.max_batch = int(max_batch)
        self.threads = threads
        self.faults = Faults()
        #: Rows per model call, in order: lets tests see that concurrent requests were batched.
        self.batch_sizes: list[int] = []

        # Never trust_remote_code: the checkpoint's own code would run in the server.
        self._tok: Any = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=False)
        self._model: Any = cast(
            Any, AutoModelForCausalLM.from_pretrained(self.model_dir, trust_remote_code=False)
        )
        self._model.eval()
        self._vocab = int(self._model.get_input_embeddings().weight.shape[0])
        self.max_context = int(getattr(self._model.config, "max_position_embeddings", 0) or 2048)
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tok.eos_token_id
        self._eos: frozenset[int] = frozenset(
            [] if eos is None else [eos] if isinstance(eos, int) else eos
        )
        pad = self._tok.pad_token_id
        self._pad = int(pad if pad is not None else min(self._eos, default=0))

        # Rust tokenizers raise "Already borrowed" when called from two threads at once.
        self._tok_lock = threading.RLock()
        self._lock = threading.Lock()
        self._requests = 0
        self._pending = 0
        #: Requests accepted but not yet queued: the model thread waits briefly for them, so
        #: concurrent clients that drift out of step still share batches (like a serving engine's
        #: scheduler); a lone client never waits.
        self._arriving = 0
        self._local = threading.local()
        self.batch_wait_s = max(0.06, 1.2 * self.latency_ms / 1000.0)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._hold = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._worker: threading.Thread | None = None
        self._serve_thread: threading.Thread | None = None

        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = bound_host if isinstance(bound_host, str) else bound_host.decode()
        self.url = f"http://{shown}:{bound_port}"

    # ---- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the model thread and the HTTP loop in background threads."""
        if self._serve_thread is not None:
            return
        self._worker = threading.Thread(target=self._work, name="cardgen-model", daemon=True)
        self._worker.start()
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="cardgen-http",
            daemon=True,
        )
        self._serve_thread.start()
        log.info("serving %s at %s/v1", self.model_name, self.url)

    def stop(self) -> None:
        """Stop accepting, cut open connections, fail queued jobs, and join both threads."""
        self._stopping.set()
        if self._serve_thread is not None:
            self._httpd.shutdown()
            self._serve_thread.join()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:  # idle keep-alive readers would otherwise linger until clients close
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
        self._fail_queued()

    @property
    def request_count(self) -> int:
        """Requests to the model API (every ``/v1`` route), counted as they arrive."""
        with self._lock:
            return self._requests

    @property
    def pending(self) -> int:
        """Jobs submitted to the model thread that it has not started yet."""
        with self._lock:
            return self._pending

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the model thread from starting work: jobs queue up and then run as one batch.

        A test hook that makes batching deterministic instead of a matter of thread timing.
        """
        with self._hold:
            yield

    def _count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _pause(self, seconds: float) -> None:
        """Sleep outside every lock; cut short when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # ---- tokenizer (shared by handler threads and the model thread) ------------------------

    def _encode(self, text: str) -> list[int]:
        # No special tokens, as lm-eval's clients tokenize: with tokenized_requests=False they
        # count context tokens locally, and an extra BOS here would shift every offset by one.
        with self._tok_lock:
            return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def _decode(self, ids: list[int], *, skip_special: bool = True) -> str:
        with self._tok_lock:
            return str(self._tok.decode(ids, skip_special_tokens=skip_special))

    def _token_str(self, token: int) -> str:
        return self._decode([token], skip_special=False)

    # ---- the model thread -----------------------------------------------------------------

    def _arrive(self) -> None:
        """A request is on its way to the model (in the latency pause, or being parsed)."""
        self._local.arriving = True
        with self._lock:
            self._arriving += 1

    def _arrived(self) -> None:
        """It queued its job, or left without one; idempotent per request."""
        if getattr(self._local, "arriving", False):
            self._local.arriving = False
            with self._lock:
                self._arriving -= 1

    def _submit(self, job: _Job) -> list[Any]:
        """Queue a job for the model thread and wait for its results."""
        if self._stopping.is_set():
            raise ApiError(503, "server is stopping", type_="server_error")
        with self._lock:
            self._pending += 1
        self._arrived()
        self._queue.put(job)
        while True:
            try:
                return job.future.result(timeout=0.5)
            except FutureTimeout:
                if self._stopping.is_set() and not (self._worker and self._worker.is_alive()):
                    self._fail_queued()
                    if not job.future.done():
                        raise ApiError(503, "server stopped", type_="server_error") from None
            except ApiError:
                raise
            except Exception as exc:
                log.error("model error: %s", exc)
                raise ApiError(500, "model error", type_="server_error") from exc

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and not job.future.done():
                job.future.set_exception(ApiError(503, "server stopped", type_="server_error"))

    def _work(self) -> None:
        """Take whatever jobs are pending, run them in as few model calls as allowed, repeat."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        while True:
            first = self._queue.get()
            if first is None:
                return
            with self._hold:
                jobs = [first]
                stop = False
                deadline = time.monotonic() + self.batch_wait_s
                while len(jobs) < self.max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        with self._lock:
                            coming = self._arriving > 0
                        if not coming or time.monotonic() >= deadline:
                            break
                        try:
                            nxt = self._queue.get(timeout=0.002)
                        except queue.Empty:
                            continue
                    if nxt is None:
                        stop = True
                        break
                    jobs.append(nxt)
                with self._lock:
                    self._pending -= len(jobs)
                with torch.inference_mode():
                    self._run_jobs(jobs)
            if stop:
                return

    def _run_jobs(self, jobs: list[_Job]) -> None:
        score = [(j, i) for j in jobs if j.kind == "score" for i in range(len(j.rows))]
        greedy = [
            (j, i)
            for j in jobs
            if j.kind == "generate" and j.decoding is not None and j.decoding.greedy
            for i in range(len(j.rows))
        ]
        sampled = [
            j for j in jobs if j.kind == "generate" and not (j.decoding and j.decoding.greedy)
        ]

        def run(items: list[tuple[_Job, int]], fn: Callable[[list[Any]], list[Any]]) -> None:
            # Longest first, so each batch pads as little as possible.
            items.sort(key=lambda ji: -self._row_len(ji[0].rows[ji[1]]))
            for k in range(0, len(items), self.max_batch):
                chunk = items[k : k + self.max_batch]
                try:
                    out = fn([j.rows[i] for j, i in chunk])
                except Exception as exc:
                    log.exception("model call failed")
                    for j, _ in chunk:
                        if not j.future.done():
                            j.future.set_exception(exc)
                    continue
                for (j, i), res in zip(chunk, out, strict=True):
                    j.results[i] = res

        top_n = max((j.top_n for j in jobs if j.kind == "score"), default=1)
        run(score, lambda rows: self._score_batch(rows, top_n))
        run(greedy, lambda rows: self._generate_batch(rows, _Decoding(0.0, 1.0, None)))
        for job in sampled:
            assert job.decoding is not None
            run([(job, i) for i in range(len(job.rows))], partial(self._sample, dec=job.decoding))
        for job in jobs:
            if not job.future.done():
                job.future.set_result(job.results)

    @staticmethod
    def _row_len(row: Any) -> int:
        return len(row.prompt) if isinstance(row, _GenRow) else len(row)

    def _sample(self, rows: list[_GenRow], dec: _Decoding) -> list[_Generated]:
        """Sampled generation under a forked RNG, seeded when the request gave a seed."""
        with torch.random.fork_rng(devices=[]):
            if dec.seed is not None:
                torch.manual_seed(dec.seed)
            return self._generate_batch(rows, dec)

    def _score_batch(self, seqs: list[list[int]], top_n: int) -> list[_Scored]:
        """Log-probabilities of every token of every sequence in one right-padded forward pass."""
        self.batch_sizes.append(len(seqs))
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [self._pad] * (width - len(s)) for s in seqs], dtype=torch.long)
        kwargs: dict[str, Any] = {}
        if any(len(s) < width for s in seqs):
            mask = [[1] * len(s) + [0] * (width - len(s)) for s in seqs]
            kwargs["attention_mask"] = torch.tensor(mask, dtype=torch.long)
        logits = self._model(input_ids=ids, **kwargs).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        k = max(1, min(top_n, logp.shape[-1]))
        out: list[_Scored] = []
        for b, seq in enumerate(seqs):
            lp = logp[b, : len(seq)]
            target = torch.tensor(seq[1:], dtype=torch.long).unsqueeze(-1)
            token_lp = lp[:-1].gather(1, target).squeeze(-1).tolist()
            values, indices = lp.topk(k, dim=-1)
            tops = [
                list(zip(idx, val, strict=True))
                for idx, val in zip(indices.tolist(), values.tolist(), strict=True)
            ]
            out.append(_Scored(token_logprobs=token_lp, top=tops[:-1], next_top=tops[-1]))
        return out

    def _generate_batch(self, rows: list[_GenRow], dec: _Decoding) -> list[_Generated]:
        """One left-padded ``generate`` call; each row is then cut by its own rules."""
        from transformers import GenerationConfig, StoppingCriteriaList

        self.batch_sizes.append(len(rows))
        max_new = max(r.max_new for r in rows)
        if max_new <= 0:
            return [_Generated([], "", "length") for _ in rows]
        width = max(len(r.prompt) for r in rows)
        ids = [[self._pad] * (width - len(r.prompt)) + r.prompt for r in rows]
        mask = [[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows]
        settings: dict[str, Any] = {
            "max_new_tokens": max_new,
            "eos_token_id": sorted(self._eos) or None,
            "pad_token_id": self._pad,
        }
        if dec.greedy:
            settings["do_sample"] = False
        else:
            settings.update(do_sample=True, temperature=dec.temperature, top_p=dec.top_p, top_k=0)
        out = self._model.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            generation_config=GenerationConfig(**settings),
            stopping_criteria=StoppingCriteriaList([_RowStopper(rows, width, self._decode)]),
        )
        generated = out[:, width:].tolist()
        return [self._cut(gen, row) for gen, row in zip(generated, rows, strict=True)]

    def _cut(self, gen: list[int], row: _GenRow) -> _Generated:
        """A row's answer from its own tokens alone, so batching cannot change it.

        Stops at the row's token limit, at the first EOS (kept in ``tokens``, left out of the
        text, as vLLM does) or at the first stop string (text truncated before it).
        """
        tokens = gen[: row.max_new]
        finish = "length"
        for i, t in enumerate(tokens):
            if t in self._eos:
                tokens, finish = tokens[: i + 1], "stop"
                break
        body = tokens[:-1] if finish == "stop" else tokens
        text = self._decode(body)
        cut = min((p for p in (text.find(s) for s in row.stops) if p >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            for k in range(1, len(body) + 1):  # keep tokens up to the one completing the stop
                if any(s in self._decode(body[:k]) for s in row.stops):
                    tokens = body[:k]
                    break
        return _Generated(tokens=tokens, text=text, finish_reason=finish)

    # ---- shared request logic -------------------------------------------------------------

    def _check_model(self, body: dict[str, Any]) -> None:
        name = body.get("model")
        if name is not None and name != self.model_name:
            # Evaluating a different model than asked for is the failure cardgen exists to catch.
            raise ApiError(
                404,
                f"The model {name!r} does not exist; this server serves {self.model_name!r}.",
                code="model_not_found",
                param="model",
            )

    def _check_ids(self, ids: list[int]) -> list[int]:
        if not ids:
            raise _bad("prompt must not be empty", "prompt")
        if len(ids) > self.max_context:
            raise _bad(
                f"prompt has {len(ids)} tokens; this model's maximum context length is "
                f"{self.max_context} tokens",
                "prompt",
            )
        return ids

    def _room(self, prompt: list[int], wanted: int) -> int:
        """Tokens a generation may add: what was asked, clamped to the context window."""
        return max(0, min(wanted, self.max_context - len(prompt)))

    def _generate(
        self, prompts: list[list[int]], max_tokens: int, stops: tuple[str, ...], dec: _Decoding
    ) -> list[_Generated]:
        rows = [_GenRow(p, self._room(p, max_tokens), stops) for p in prompts]
        return list(self._submit(_Job("generate", rows, decoding=dec)))

    def _score(self, seqs: list[list[int]], top_n: int) -> list[_Scored]:
        return list(self._submit(_Job("score", seqs, top_n=top_n)))

    def _top_dict(
        self, top: list[tuple[int, float]], n: int, actual: int, lp: float
    ) -> dict[str, float]:
        """OpenAI's ``top_logprobs`` entry: the N best token strings, plus the actual token."""
        entry: dict[str, float] = {}
        for tid, val in top[:n]:
            entry.setdefault(self._token_str(tid), val)
        entry.setdefault(self._token_str(actual), lp)
        return entry

    # ---- routes ---------------------------------------------------------------------------

    def _models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model_name,
                    "object": "model",
                    "created": _now(),
                    "owned_by": "cardgen-demo",
                    "root": str(self.model_dir),
                }
            ],
        }

    def _prompts(self, body: dict[str, Any]) -> tuple[list[list[int]], list[str | None]]:
        """Token ids per prompt, and the prompt text as given (None when ids were sent)."""
        prompt = body.get("prompt")
        if prompt is None:
            raise _bad("'prompt' is required", "prompt")
        items: list[Any]
        single_ids = isinstance(prompt, list) and bool(prompt) and all(map(_is_token, prompt))
        if isinstance(prompt, str) or single_ids:
            items = [prompt]
        elif isinstance(prompt, list) and prompt:
            items = prompt
        else:
            raise _bad(
                "'prompt' must be a string, a list of strings or of token id lists", "prompt"
            )
        ids: list[list[int]] = []
        texts: list[str | None] = []
        for item in items:
            if isinstance(item, str):
                ids.append(self._check_ids(self._encode(item)))
                texts.append(item)
            elif isinstance(item, list) and all(_is_token(t) for t in item):
                if any(not 0 <= t < self._vocab for t in item):
                    raise _bad(f"token ids must be in [0, {self._vocab})", "prompt")
                ids.append(self._check_ids(list(item)))
                texts.append(None)
            else:
                raise _bad("each prompt must be a string or a list of token ids", "prompt")
        return ids, texts

    def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/completions``: one choice per prompt, in order."""
        self._check_model(body)
        prompts, texts = self._prompts(body)
        dec = _decoding(body)
        stops = _stops(body)
        max_tokens = _opt_int(body, "max_tokens", 0)
        max_tokens = DEFAULT_COMPLETION_TOKENS if max_tokens is None else max_tokens
        n_logprobs = _opt_int(body, "logprobs", 0, MAX_TOP_LOGPROBS)
        echo = body.get("echo", False)
        if not isinstance(echo, bool):
            raise _bad("'echo' must be a boolean", "echo")

        gens: list[_Generated]
        scored: list[_Scored] | None = None
        if dec.greedy and max_tokens == 1 and all(self._room(p, 1) == 1 for p in prompts):
            # lm-eval's scoring request: one forward pass yields the prompt's logprobs and the
            # greedy next token (the arg-max, exactly what generate's first step picks).
            scored = self._score(prompts, max(1, n_logprobs or 0))
            gens = [self._one_token(s, stops) for s in scored]
        elif max_tokens == 0:
            gens = [_Generated([], "", "length") for _ in prompts]
        else:
            gens = self._generate(prompts, max_tokens, stops, dec)

        choices: list[dict[str, Any]] = []
        need_full_scores = n_logprobs is not None and scored is None
        if need_full_scores:
            seqs = [p + g.tokens for p, g in zip(prompts, gens, strict=True)]
            scored = self._score(seqs, max(1, n_logprobs or 0))
        for i, (prompt, text, gen) in enumerate(zip(prompts, texts, gens, strict=True)):
            prompt_text = text if text is not None else self._decode(prompt, skip_special=False)
            logprobs = None
            if n_logprobs is not None:
                assert scored is not None
                logprobs = self._completion_logprobs(
                    prompt, prompt_text, gen, scored[i], n_logprobs, echo, full=need_full_scores
                )
            choices.append(
                {
                    "index": i,
                    "text": (prompt_text if echo else "") + gen.text,
                    "logprobs": logprobs,
                    "finish_reason": gen.finish_reason,
                }
            )
        n_prompt = sum(len(p) for p in prompts)
        n_gen = sum(len(g.tokens) for g in gens)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": _now(),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_gen,
                "total_tokens": n_prompt + n_gen,
            },
        }

    def _one_token(self, scored: _Scored, stops: tuple[str, ...]) -> _Generated:
        token = scored.next_top[0][0]
        if token in self._eos:
            return _Generated([token], "", "stop")
        text = self._decode([token])
        cut = min((p for p in (text.find(s) for s in stops) if p >= 0), default=-1)
        if cut >= 0:
            return _Generated([token], text[:cut], "stop")
        return _Generated([token], text, "length")

    def _completion_logprobs(
        self,
        prompt: list[int],
        prompt_text: str,
        gen: _Generated,
        scored: _Scored,
        n: int,
        echo: bool,
        *,
        full: bool,
    ) -> dict[str, Any]:
        """OpenAI's legacy ``logprobs`` object for one choice.

        ``scored`` covers the prompt plus the generated tokens (``full``), or the prompt alone
        with the single greedy token taken from ``next_top``.
        """
        seq = prompt + gen.tokens
        lps: list[float | None] = [None, *scored.token_logprobs]
        tops: list[list[tuple[int, float]] | None] = [None, *scored.top]
        if not full and gen.tokens:
            lps.append(scored.next_top[0][1])
            tops.append(scored.next_top)
        start = 0 if echo else len(prompt)
        tokens: list[str] = []
        token_logprobs: list[float | None] = []
        top_logprobs: list[dict[str, float] | None] = []
        offsets: list[int] = []
        offset = 0 if echo else len(prompt_text)
        for j in range(start, len(seq)):
            piece = self._token_str(seq[j])
            tokens.append(piece)
            offsets.append(offset)
            offset += len(piece)
            lp, top = lps[j], tops[j]
            token_logprobs.append(lp)
            top_logprobs.append(
                None if top is None or lp is None else self._top_dict(top, n, seq[j], lp)
            )
        return {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": offsets,
        }

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/chat/completions``: the tokenizer's chat template, then generation."""
        self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("'messages' must be a non-empty list", "messages")
        clean: list[dict[str, str]] = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise _bad("each message needs a string 'role'", "messages")
            clean.append({"role": m["role"], "content": _content_text(m.get("content"))})
        dec = _decoding(body)
        stops = _stops(body)
        max_tokens = _opt_int(body, "max_completion_tokens", 0)
        if max_tokens is None:
            max_tokens = _opt_int(body, "max_tokens", 0)
        want_logprobs = body.get("logprobs", False)
        if not isinstance(want_logprobs, bool):
            raise _bad("'logprobs' must be a boolean", "logprobs")
        n_top = _opt_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS) or 0

        if not getattr(self._tok, "chat_template", None):
            raise _bad(f"model {self.model_name!r} has no chat template", "messages")
        try:
            with self._tok_lock:
                rendered = self._tok.apply_chat_template(
                    clean, tokenize=False, add_generation_prompt=True
                )
        except Exception as exc:  # jinja errors: the messages do not fit the template
            raise _bad(f"cannot apply the chat template: {exc}", "messages") from None
        # The template already holds any BOS it wants: no special tokens added on top.
        prompt = self._check_ids(self._encode(str(rendered)))
        limit = self.max_context if max_tokens is None else max_tokens
        gen = self._generate([prompt], limit, stops, dec)[0]

        logprobs = None
        if want_logprobs:
            scored = self._score([prompt + gen.tokens], max(1, n_top))[0]
            content = []
            for j, token in enumerate(gen.tokens, start=len(prompt)):
                lp = scored.token_logprobs[j - 1]
                piece = self._token_str(token)
                content.append(
                    {
                        "token": piece,
                        "logprob": lp,
                        "bytes": list(piece.encode()),
                        "top_logprobs": [
                            {"token": s, "logprob": v, "bytes": list(s.encode())}
                            for s, v in (
                                (self._token_str(t), v) for t, v in scored.top[j - 1][:n_top]
                            )
                        ],
                    }
                )
            logprobs = {"content": content}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": _now(),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "logprobs": logprobs,
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": len(gen.tokens),
                "total_tokens": len(prompt) + len(gen.tokens),
            },
        }


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _content_text(content: object) -> str:
    """A message's text: a string, or OpenAI's list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad("only text content parts are supported", "messages")
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad("a text part needs a string 'text'", "messages")
            parts.append(text)
        return "".join(parts)
    raise _bad("message 'content' must be a string or a list of text parts", "messages")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cardgen.demo.server MODEL_DIR``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m cardgen.demo.server",
        description="Serve a local transformers checkpoint through an OpenAI-compatible API.",
    )
    parser.add_argument("model_dir", type=Path, help="checkpoint directory (config + safetensors)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--name", default=None, help="model id to serve (default: the dir name)")
    parser.add_argument("--max-batch", type=int, default=16, help="sequences per model call")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for the model (0: torch's default)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not (args.model_dir / "config.json").is_file():
        parser.error(f"{args.model_dir} is not a checkpoint directory (no config.json)")
    server = ModelServer(
        args.model_dir,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        model_name=args.name,
        max_batch=args.max_batch,
        threads=args.threads or None,
    )
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    # Both set explicitly: a shell starts background jobs with SIGINT ignored, and supervisors
    # stop services with SIGTERM; either way the server shuts down cleanly.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with server:
        print(f"serving {server.model_name!r} at {server.url}/v1  (Ctrl-C to stop)", flush=True)
        done.wait()
        print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
