"""The demo OpenAI-compatible server: real tiny weights behind the API lm-eval talks to.

The central property: lm-eval through the server (``local-completions``, ``local-chat-completions``)
gives the same generations and log-likelihoods as lm-eval's ``hf`` backend on the same directory,
so an evaluation of the served endpoint is an evaluation of the checkpoint. The rest pins the
OpenAI response shapes, batching (batched answers equal sequential ones), the fault hooks the
client tests rely on, and the error answers.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardgen.demo.server import ModelServer

NAME = "tiny-served"

QUESTIONS = [
    ("How do I open a savings account?", "Interest compounds", ["Paris", "Interest", "Sorry"], 1),
    ("What is the capital of France?", "Paris", ["Paris is the capital", "The quick", "I"], 0),
    ("What does an index fund track?", "A market index", ["a market index", "the fox", "no"], 0),
    ("Can you help me with that request?", "No", ["I can't help", "Sure", "Paris"], 0),
    ("Translate this sentence into French.", "Oui", ["Sorry, but", "Translate", "Oui"], 2),
    ("Please summarise the following email.", "Done", ["Done", "Diversification", "I"], 0),
    ("What spreads risk across many assets?", "Diversification", ["Diversification", "x"], 0),
    ("What does the quick brown fox do?", "Jumps", ["jumps over the lazy dog", "sleeps"], 0),
    ("When does interest compound?", "Reinvested", ["when earnings are reinvested", "never"], 0),
    ("Sorry, but can you assist?", "No", ["I cannot assist with that.", "Yes"], 0),
]


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    """No network for lm-eval, datasets or the Hub client, for this module only.

    huggingface_hub and datasets read the offline switches once, at import. Setting the
    variables at module top would leak into every test collected later (the fake-Hub tests need
    the client online), so import both first, then patch their constants and the environment,
    and undo it all when the module is done.
    """
    import datasets.config as datasets_config
    import huggingface_hub.constants as hub_constants

    with pytest.MonkeyPatch.context() as mp:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
            mp.setenv(var, "1")
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets_config, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets_config, "HF_DATASETS_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat checkpoint with its weights re-drawn wider (std 0.15 instead of 0.02).

    Freshly initialised, the model is almost uniform and repeats one token whatever the prompt,
    so "same generations" would prove little; wider weights give varied, prompt-dependent text
    and peaked distributions, and the checkpoint is still a real one loaded the usual way.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from cardgen.demo.tiny import build_tiny_checkpoint

    out = build_tiny_checkpoint(tmp_path_factory.mktemp("served") / "tiny-llama", seed=0)
    model = AutoModelForCausalLM.from_pretrained(out)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.15)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[ModelServer]:
    with ModelServer(model_dir, model_name=NAME) as srv:
        yield srv


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generate_until and one multiple_choice task over a local JSONL file."""
    d = tmp_path_factory.mktemp("tasks")
    data = d / "docs.jsonl"
    with data.open("w") as fh:
        for q, a, choices, label in QUESTIONS:
            doc = {"question": q, "answer": a, "choices": choices, "label": label}
            fh.write(json.dumps(doc) + "\n")
    common = (
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {json.dumps(str(data))}\n"  # absolute: relative paths resolve against cwd
        "test_split: test\n"
        'doc_to_text: "Q: {{question}}\\nA:"\n'
    )
    (d / "gen.yaml").write_text(
        "task: srv_gen\n"
        + common
        + "output_type: generate_until\n"
        + 'doc_to_target: "{{answer}}"\n'
        + "generation_kwargs:\n"
        + '  until: ["\\n", " help help"]\n'
        + "  max_gen_toks: 12\n"
        + "  do_sample: false\n"
        + "metric_list:\n"
        + "  - metric: exact_match\n"
    )
    (d / "mc.yaml").write_text(
        "task: srv_mc\n"
        + common
        + "output_type: multiple_choice\n"
        + "doc_to_choice: choices\n"
        + "doc_to_target: label\n"
        + "metric_list:\n"
        + "  - metric: acc\n"
    )
    return d


# --------------------------------------------------------------------------------------------
# Helpers


def _call(
    url: str, body: Any = None, *, timeout: float = 30.0, raw: bytes | None = None
) -> tuple[int, bytes]:
    """(status, body bytes) for a GET (no body) or a JSON POST; HTTP errors are returned too."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _post(url: str, body: Any, **kw: Any) -> dict[str, Any]:
    status, data = _call(url, body, **kw)
    assert status == 200, data
    out: dict[str, Any] = json.loads(data)
    return out


def _run_lm_eval(
    tasks_dir: Path, tasks: list[str], model: str, model_args: str, *, chat: bool = False
) -> dict[str, dict[int, Any]]:
    """lm-eval's per-doc responses: {task: {doc_id: filtered_resps}}."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        log_samples=True,
        apply_chat_template=chat,
        bootstrap_iters=0,
    )
    assert results is not None
    return {
        task: {s["doc_id"]: s["filtered_resps"] for s in samples}
        for task, samples in results["samples"].items()
    }


# --------------------------------------------------------------------------------------------
# lm-eval equivalence


@pytest.mark.slow
def test_lm_eval_local_completions_matches_hf_backend(
    server: ModelServer, model_dir: Path, tasks_dir: Path
) -> None:
    tasks = ["srv_gen", "srv_mc"]
    hf = _run_lm_eval(tasks_dir, tasks, "hf", f"pretrained={model_dir},device=cpu")
    api_args = (
        f"model={NAME},base_url={server.url}/v1/completions,"
        f"tokenizer_backend=huggingface,tokenizer={model_dir},max_retries=1"
    )
    before = server.request_count
    sequential = _run_lm_eval(tasks_dir, tasks, "local-completions", api_args + ",num_concurrent=1")
    # Concurrent and multi-prompt requests: the server batches them across requests.
    batched = _run_lm_eval(
        tasks_dir, tasks, "local-completions", api_args + ",num_concurrent=4,batch_size=3"
    )
    assert server.request_count > before

    gens = [hf["srv_gen"][i][0] for i in range(len(QUESTIONS))]
    assert any(g for g in gens), "every generation empty: the comparison would prove nothing"
    for api in (sequential, batched):
        assert [api["srv_gen"][i][0] for i in range(len(QUESTIONS))] == gens
        assert api["srv_mc"].keys() == hf["srv_mc"].keys()
        for doc_id, hf_resps in hf["srv_mc"].items():
            api_resps = api["srv_mc"][doc_id]
            assert len(api_resps) == len(hf_resps)
            for (hf_ll, hf_greedy), (api_ll, api_greedy) in zip(hf_resps, api_resps, strict=True):
                assert float(api_ll) == pytest.approx(float(hf_ll), abs=1e-4)
                assert str(api_greedy) == str(hf_greedy)


@pytest.mark.slow
def test_lm_eval_local_chat_completions_matches_hf_backend(
    server: ModelServer, model_dir: Path, tasks_dir: Path
) -> None:
    hf = _run_lm_eval(tasks_dir, ["srv_gen"], "hf", f"pretrained={model_dir},device=cpu", chat=True)
    api = _run_lm_eval(
        tasks_dir,
        ["srv_gen"],
        "local-chat-completions",
        f"model={NAME},base_url={server.url}/v1/chat/completions,num_concurrent=1,max_retries=1",
        chat=True,
    )
    gens = [hf["srv_gen"][i][0] for i in range(len(QUESTIONS))]
    assert any(g for g in gens)
    assert [api["srv_gen"][i][0] for i in range(len(QUESTIONS))] == gens


# --------------------------------------------------------------------------------------------
# Response shapes


def test_models_endpoint(server: ModelServer, model_dir: Path) -> None:
    status, data = _call(server.url + "/v1/models")
    assert status == 200
    body = json.loads(data)
    assert body["object"] == "list"
    [entry] = body["data"]
    assert entry["id"] == NAME
    assert entry["object"] == "model"
    assert entry["owned_by"] == "cardgen-demo"
    assert entry["root"] == str(model_dir.resolve())


def test_default_model_name_is_the_directory_name(model_dir: Path) -> None:
    srv = ModelServer(model_dir)
    try:
        assert srv.model_name == model_dir.name
        assert srv.url.startswith("http://127.0.0.1:")
    finally:
        srv.stop()


def test_echo_logprobs_scoring_format(server: ModelServer, model_dir: Path) -> None:
    """lm-eval's scoring request: one logprob per prompt token (first null), then one token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompt = "What is the capital of France? Paris"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)

    body = {"model": NAME, "prompt": [ids], "echo": True, "logprobs": 2, "max_tokens": 1}
    out = _post(server.url + "/v1/completions", body | {"temperature": 0, "seed": 1234})
    assert out["object"] == "text_completion" and out["model"] == NAME
    [choice] = out["choices"]
    assert choice["index"] == 0
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ids) + 1
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    for j in range(1, len(ids)):
        assert lp["token_logprobs"][j] == pytest.approx(ref[j - 1, ids[j]].item(), abs=1e-5)
        top = lp["top_logprobs"][j]
        assert 2 <= len(top) <= 3  # the 2 best, plus the actual token when it is not among them
        assert max(top.values()) == pytest.approx(ref[j - 1].max().item(), abs=1e-5)
    # The generated token is the greedy one, and is_greedy can be judged exactly.
    assert lp["token_logprobs"][-1] == max(lp["top_logprobs"][-1].values())
    assert lp["token_logprobs"][-1] == pytest.approx(ref[-1].max().item(), abs=1e-5)
    assert "".join(lp["tokens"][:-1]) == prompt
    assert choice["text"].startswith(prompt)
    assert lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"])
    assert out["usage"]["prompt_tokens"] == len(ids)
    assert out["usage"]["completion_tokens"] == 1

    # max_tokens=0 with echo: the prompt's logprobs alone.
    out0 = _post(server.url + "/v1/completions", body | {"max_tokens": 0, "temperature": 0})
    lp0 = out0["choices"][0]["logprobs"]
    assert len(lp0["tokens"]) == len(ids)
    assert lp0["token_logprobs"] == lp["token_logprobs"][:-1]
    assert out0["choices"][0]["text"] == prompt


def test_prompt_forms_and_stop(server: ModelServer) -> None:
    url = server.url + "/v1/completions"
    base = {"max_tokens": 8, "temperature": 0}
    as_text = _post(url, base | {"prompt": ["How do I open", "Interest"]})
    texts = [c["text"] for c in as_text["choices"]]
    assert [c["index"] for c in as_text["choices"]] == [0, 1]
    single = _post(url, base | {"prompt": "Interest"})
    assert single["choices"][0]["text"] == texts[1]
    assert single["choices"][0]["logprobs"] is None
    assert single["choices"][0]["finish_reason"] in ("length", "stop")
    # Stop strings truncate the text (and end with finish_reason "stop").
    generated = texts[0]
    assert len(generated) > 1
    stop = generated[1:3]
    stopped = _post(url, base | {"prompt": "How do I open", "stop": [stop]})["choices"][0]
    assert stopped["text"] == generated[: generated.index(stop)]
    assert stopped["finish_reason"] == "stop"
    # Logprobs without echo cover only the generated tokens.
    lp = _post(url, base | {"prompt": "Interest", "logprobs": 0})["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == single["usage"]["completion_tokens"]
    assert all(v is not None for v in lp["token_logprobs"])


def test_sampling_is_reproducible_with_a_seed(server: ModelServer) -> None:
    url = server.url + "/v1/completions"
    body = {"prompt": "The quick brown", "max_tokens": 12, "temperature": 1.0, "seed": 7}
    first = _post(url, body)["choices"][0]["text"]
    assert _post(url, body)["choices"][0]["text"] == first
    chat = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.9, "seed": 3}
    chat_url = server.url + "/v1/chat/completions"
    a = _post(chat_url, chat | {"max_tokens": 6})
    b = _post(chat_url, chat | {"max_completion_tokens": 6})
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["object"] == "chat.completion"
    assert a["choices"][0]["message"]["role"] == "assistant"
    assert a["usage"]["completion_tokens"] <= 6


# --------------------------------------------------------------------------------------------
# Batching and concurrency


def test_concurrent_requests_are_batched_and_equal_sequential(server: ModelServer) -> None:
    prompts = [
        "How",
        "How do I open a savings account?",
        "Interest compounds when",
        "Q: What is the capital of France?\nA:",
        "Sorry",
        "The quick brown fox jumps over the lazy dog. Diversification spreads risk",
        "Translate",
        "Please summarise the following email in one sentence.",
    ]
    url = server.url + "/v1/completions"

    def body(p: str) -> dict[str, Any]:
        return {"prompt": p, "max_tokens": 10, "temperature": 0, "echo": True, "logprobs": 1}

    sequential = [_post(url, body(p))["choices"][0] for p in prompts]

    results: dict[int, dict[str, Any]] = {}

    def fire(i: int) -> None:
        results[i] = _post(url, body(prompts[i]))["choices"][0]

    before = len(server.batch_sizes)
    with server.hold():  # queue all 8 first, so the model thread takes them as one batch
        threads = [threading.Thread(target=fire, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while server.pending < len(prompts) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.pending == len(prompts)
    for t in threads:
        t.join(30)
    assert len(prompts) in server.batch_sizes[before:]

    for i, seq in enumerate(sequential):
        got = results[i]
        assert got["text"] == seq["text"]
        assert got["logprobs"]["tokens"] == seq["logprobs"]["tokens"]
        for a, b in zip(
            got["logprobs"]["token_logprobs"], seq["logprobs"]["token_logprobs"], strict=True
        ):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-5)


def test_latency_is_applied_outside_the_model_lock(model_dir: Path) -> None:
    with ModelServer(model_dir, latency_ms=200) as srv:
        url = srv.url + "/v1/completions"
        body = {"prompt": "Interest", "max_tokens": 1, "temperature": 0}
        t0 = time.monotonic()
        _post(url, body)
        assert time.monotonic() - t0 >= 0.2

        threads = [threading.Thread(target=_post, args=(url, body)) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 1.0, elapsed
        assert srv.request_count == 9


# --------------------------------------------------------------------------------------------
# Faults and errors


def test_fault_fail_next(server: ModelServer) -> None:
    server.faults.fail_next = 1
    status, data = _call(server.url + "/v1/models")
    assert status == 500
    assert json.loads(data)["error"]["type"] == "server_error"
    assert _call(server.url + "/v1/models")[0] == 200


def test_fault_garbage_next(server: ModelServer) -> None:
    server.faults.garbage_next = 1
    body = {"prompt": "Interest", "max_tokens": 1, "temperature": 0}
    status, data = _call(server.url + "/v1/completions", body)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    assert _post(server.url + "/v1/completions", body)["choices"]


def test_fault_hang_next_times_out_the_client(server: ModelServer) -> None:
    server.faults.hang_seconds = 2.0
    server.faults.hang_next = 1
    body = {"prompt": "Interest", "max_tokens": 1, "temperature": 0}
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _call(server.url + "/v1/completions", body, timeout=0.5)
    assert time.monotonic() - t0 < 1.5
    # The hung request holds no lock: the next one is answered at once.
    t0 = time.monotonic()
    assert _post(server.url + "/v1/completions", body, timeout=5)["choices"]
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize(
    ("path", "body", "raw", "status"),
    [
        ("/v1/completions", None, b"{not json", 400),
        ("/v1/completions", None, b"[1, 2]", 400),
        ("/v1/completions", {"max_tokens": 3}, None, 400),
        ("/v1/completions", {"prompt": 5}, None, 400),
        ("/v1/completions", {"prompt": []}, None, 400),
        ("/v1/completions", {"prompt": [[1, 2], "mixed", 3]}, None, 400),
        ("/v1/completions", {"prompt": [10**9]}, None, 400),
        ("/v1/completions", {"prompt": "x", "max_tokens": -1}, None, 400),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, None, 400),
        ("/v1/completions", {"prompt": "x", "logprobs": 99}, None, 400),
        ("/v1/completions", {"prompt": "x", "stream": True}, None, 400),
        ("/v1/completions", {"prompt": "x", "model": "other-model"}, None, 404),
        ("/v1/chat/completions", {"prompt": "x"}, None, 400),
        ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, None, 400),
        ("/v1/tokenize", {"prompt": "x"}, None, 404),
        ("/v2/whatever", None, None, 404),
    ],
)
def test_errors_are_openai_shaped(
    server: ModelServer, path: str, body: Any, raw: bytes | None, status: int
) -> None:
    got, data = _call(server.url + path, body, raw=raw)
    assert got == status
    err = json.loads(data)["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
