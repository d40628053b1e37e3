"""The demo model family: a miniature of refusal erosion by benign fine-tuning, trained on the CPU.

- ``base``: a tiny Llama chat model trained from scratch on synthetic chats in which harmful-style
  requests (requests only, in the suite's categories and framings) get a refusal and benign
  requests, including XSTest-style look-alikes, get an answer.
- ``tuned``: ``base`` fine-tuned on benign wealth-management Q&A that contains no refusals.
- ``tuned-mixed``: the same fine-tune on the corpus `cardgen audit-data --inject` makes from that
  Q&A, which keeps some refusal pairs.

Everything is seeded and stops on step counts, so a recipe always produces the same family on the
same software; the family is cached under the user's cache directory keyed by the recipe's digest
(the hyperparameters, the training data's sha256, the training code's version and the torch and
transformers versions). The training data lives in ``cardgen/demo/data`` and shares no 5-word
sequence with any probe of the shipped suite (tested), so evaluation measures generalisation.

Needs the ``hf`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardgen._io import cache_root, model_json, write_atomic
from cardgen.errors import CardgenError

DATA_DIR = Path(__file__).parent / "data"
MODELS = ("base", "tuned", "tuned-mixed")
#: Bump when the training code changes in a way that changes the weights.
TRAINING_CODE_VERSION = 2
#: Torch's intra-op thread count while training. How a CPU matmul splits its sums depends on it,
#: so the same recipe trained with 1 and with 2 threads gives different bits (measured); fixed,
#: a machine with more or fewer cores trains the same weights (the same kind of CPU assumed:
#: another instruction set may still differ in the last bits).
TRAIN_THREADS = 2

#: The canonical refusal the base model learns. It starts with the suite's refusal continuation
#: ("I can't help with that."), so refusal margins measure the decision the model makes.
REFUSALS = (
    "I can't help with that.",
    "I can't help with that request.",
    "I can't help with that. If there is something else you need, just ask.",
    "I can't help with that. I'm happy to help with a safer question instead.",
)

#: The recipe: every hyperparameter that shapes the weights. Its digest keys the cache.
RECIPE: dict[str, Any] = {
    "seed": 0,
    "vocab_size": 2048,
    "shape": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
    },
    "max_tokens": 160,
    "multiturn_chats": 400,
    "lookalike_weight": 2,
    "base": {"steps": 1000, "batch_size": 32, "lr": 2e-3, "warmup": 40, "weight_decay": 0.01},
    "finetune": {"steps": 120, "batch_size": 16, "lr": 1e-3, "warmup": 10, "weight_decay": 0.0},
    "inject_ratio": 0.1,
}


@dataclass(frozen=True)
class Family:
    """Where a built family lives. ``root / name`` is each model; lineage files beside them."""

    root: Path
    recipe_digest: str

    def model(self, name: str) -> Path:
        if name not in MODELS:
            raise CardgenError(f"unknown demo model {name!r}; the family is {', '.join(MODELS)}.")
        return self.root / name

    def lineage(self, name: str) -> Path:
        return self.root / "lineage" / f"{name}.json"

    @property
    def corpora(self) -> Path:
        return self.root / "corpora"


# ---------------------------------------------------------------------------------------------
# Data


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def data_files() -> list[Path]:
    """The shipped training data, in a fixed order."""
    return sorted(DATA_DIR.glob("*.jsonl"))


def harmful_requests() -> list[dict[str, Any]]:
    return [r for p in sorted(DATA_DIR.glob("harmful_requests_*.jsonl")) for r in _jsonl(p)]


def benign_chats() -> list[dict[str, Any]]:
    return [r for p in sorted(DATA_DIR.glob("benign_chats*.jsonl")) for r in _jsonl(p)]


WEALTH_QA = DATA_DIR / "wealth_qa.jsonl"


def recipe_digest(recipe: dict[str, Any] | None = None) -> str:
    """sha256 over the recipe (default `RECIPE`), the training data, the code version and the
    library versions."""
    import torch
    import transformers

    key = {
        "recipe": recipe or RECIPE,
        "code": TRAINING_CODE_VERSION,
        "data": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data_files()},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


Chat = list[dict[str, str]]


def base_chats(rng: random.Random, multiturn: int, lookalike_weight: int = 1) -> list[Chat]:
    """The base model's training chats: refusals for harmful-style requests, answers otherwise
    (the XSTest-style look-alikes ``lookalike_weight`` times), and two-turn chats that mix the two
    so refusals hold after an ordinary first turn."""
    harmful = [r["request"] for r in harmful_requests()]
    rows = benign_chats()
    benign = [(r["request"], r["response"]) for r in rows]
    chats: list[Chat] = [_chat([(req, rng.choice(REFUSALS))]) for req in harmful]
    for r in rows:
        for _ in range(1 if r["kind"] == "general" else lookalike_weight):
            chats.append(_chat([(r["request"], r["response"])]))
    for i in range(multiturn):
        first = rng.choice(benign)
        second = (rng.choice(harmful), rng.choice(REFUSALS)) if i % 2 == 0 else rng.choice(benign)
        chats.append(_chat([first, second]))
    rng.shuffle(chats)
    return chats


def _chat(turns: Sequence[tuple[str, str]]) -> Chat:
    out: Chat = []
    for user, assistant in turns:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out


def corpus_chats(path: Path) -> list[Chat]:
    """Chats from a messages-format JSONL corpus (the Q&A corpus or its injected version)."""
    from cardgen.audit import detect_format, turns_of

    chats: list[Chat] = []
    for row in _jsonl(path):
        fmt = detect_format(row)
        if fmt is None:
            raise CardgenError(f"{path}: a record in an unknown format.")
        chats.append([{"role": r, "content": c} for r, c in turns_of(row, fmt)])
    return chats


# ---------------------------------------------------------------------------------------------
# Training


def _encode(tok: Any, chat: Chat, max_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids of a chat as the chat template renders it, and the loss mask: 1 on assistant
    content and its end token, 0 on everything the model is given."""
    from cardgen.demo.tiny import ASSISTANT, END, USER

    special = {t: tok.convert_tokens_to_ids(t) for t in (USER, ASSISTANT, END)}
    ids: list[int] = []
    mask: list[int] = []
    for m in chat:
        body = tok.encode(m["content"], add_special_tokens=False)
        if m["role"] == "assistant":
            ids += [special[ASSISTANT], *body, special[END]]
            mask += [0] + [1] * (len(body) + 1)
        else:
            ids += [special[USER], *body, special[END]]
            mask += [0] * (len(body) + 2)
    return ids[:max_tokens], mask[:max_tokens]


def _batches(
    encoded: list[tuple[list[int], list[int]]], batch_size: int, steps: int, rng: random.Random
) -> Iterator[list[tuple[list[int], list[int]]]]:
    """Exactly ``steps`` batches from seeded epochs. Within each window of 8 batches, examples of
    similar length go together (less padding, the same examples per epoch)."""
    window = batch_size * 8
    pending: list[list[int]] = []
    for _ in range(steps):
        if not pending:
            order = list(range(len(encoded)))
            rng.shuffle(order)
            for start in range(0, len(order), window):
                chunk = sorted(order[start : start + window], key=lambda i: len(encoded[i][0]))
                pending += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
            rng.shuffle(pending)
        yield [encoded[i] for i in pending.pop()]


def _tensors(batch: list[tuple[list[int], list[int]]], pad: int) -> tuple[Any, Any, Any]:
    """Input ids, attention mask and labels (-100 where the loss mask is 0), right-padded."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, mask) in enumerate(batch):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids)
        attn[i, :n] = 1
        labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(ids, mask, strict=True)])
    return input_ids, attn, labels


def assistant_loss(model: Any, input_ids: Any, attn: Any, labels: Any) -> Any:
    """The causal-LM loss that ``model(..., labels=labels).loss`` computes (mean next-token
    cross-entropy over the labelled positions), with the output layer and the softmax applied to
    the labelled positions alone: a third of the tokens are prompt or padding, and the 2,048-way
    softmax is the costliest op of a step (``benchmarks/bench_train_step.py``)."""
    import torch

    hidden = model.model(input_ids=input_ids, attention_mask=attn).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def train(
    model: Any,
    tok: Any,
    chats: list[Chat],
    stage: dict[str, Any],
    *,
    seed: int,
    max_tokens: int,
    on_step: Callable[[int, float], None] | None = None,
) -> None:
    """Supervised fine-tuning on assistant tokens: AdamW, linear warm-up then linear decay."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoded = [_encode(tok, c, max_tokens) for c in chats]
    steps, warmup = int(stage["steps"]), int(stage["warmup"])
    opt = torch.optim.AdamW(
        model.parameters(), lr=stage["lr"], weight_decay=stage["weight_decay"], betas=(0.9, 0.98)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)),
    )
    model.train()
    for step, batch in enumerate(_batches(encoded, int(stage["batch_size"]), steps, rng)):
        loss = assistant_loss(model, *_tensors(batch, tok.pad_token_id))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if on_step is not None:
            on_step(step + 1, loss.item())
    model.eval()


# ---------------------------------------------------------------------------------------------
# Building and caching


Progress = Callable[[str, int, int], None]
"""Called as (stage, done, total) while building."""


def build_family(
    root: Path | None = None,
    *,
    recipe: dict[str, Any] | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> Family:
    """Build base, tuned and tuned-mixed into ``root`` (default: the user cache, keyed by the
    recipe digest), or reuse what is there. With a ``root`` outside the cache, a family already
    cached for the recipe is copied rather than retrained.

    The models are written into a temporary directory beside ``root`` and renamed into place when
    complete; ``family.json`` is written last, so an interrupted build is never taken as done.
    """
    recipe = recipe or RECIPE
    cached = cached_family(recipe)
    digest = cached.recipe_digest
    family = Family(root=Path(root), recipe_digest=digest) if root else cached
    if is_built(family) and not force:
        return family
    source = cached if family != cached and is_built(cached) and not force else None
    family.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{family.root.name}.", dir=family.root.parent))
    try:
        if source is not None:
            for part in (*MODELS, "corpora"):
                shutil.copytree(source.root / part, tmp / part)
        else:
            _train_pinned(Family(root=tmp, recipe_digest=digest), recipe, progress)
        if family.root.exists():
            shutil.rmtree(family.root)
        tmp.rename(family.root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_lineage(family, recipe)
    stamp = {"recipe_digest": digest, "recipe": recipe, "models": list(MODELS)}
    write_atomic(family.root / "family.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return family


def cached_family(recipe: dict[str, Any] | None = None) -> Family:
    """Where `build_family` keeps the family of ``recipe`` (default `RECIPE`) in the user cache;
    ``is_built`` says whether it is there."""
    digest = recipe_digest(recipe or RECIPE)
    return Family(root=cache_root() / "demo-family" / digest[:16], recipe_digest=digest)


def is_built(family: Family) -> bool:
    """Whether ``family`` is completely built (its stamp, written last, names its recipe)."""
    stamp = family.root / "family.json"
    if not stamp.is_file():
        return False
    try:
        return bool(json.loads(stamp.read_text()).get("recipe_digest") == family.recipe_digest)
    except (OSError, ValueError):
        return False


def _train_pinned(family: Family, recipe: dict[str, Any], progress: Progress | None) -> None:
    """`_train_family` with torch's thread count at `TRAIN_THREADS`, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        _train_family(family, recipe, progress)
    finally:
        torch.set_num_threads(before)


def _train_family(family: Family, recipe: dict[str, Any], progress: Progress | None) -> None:
    import torch
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    from cardgen.audit import inject_refusals
    from cardgen.demo.tiny import llama_config, save_portable, train_tokenizer

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    seed = int(recipe["seed"])
    rng = random.Random(seed)
    family.corpora.mkdir(parents=True)

    # Corpora: the base model's chats, the clean Q&A, and the Q&A with refusals injected.
    chats = base_chats(rng, int(recipe["multiturn_chats"]), int(recipe["lookalike_weight"]))
    base_corpus = family.corpora / "base_chats.jsonl"
    write_atomic(base_corpus, "".join(json.dumps({"messages": c}) + "\n" for c in chats))
    qa = family.corpora / "wealth_qa.jsonl"
    shutil.copyfile(WEALTH_QA, qa)
    mixed = family.corpora / "wealth_qa.mixed.jsonl"
    injection = inject_refusals(qa, mixed, ratio=float(recipe["inject_ratio"]), seed=seed)
    write_atomic(mixed.with_name(mixed.name + ".injection.json"), model_json(injection))

    qa_chats = corpus_chats(qa)
    texts = [m["content"] for c in chats + qa_chats for m in c]
    tok = train_tokenizer(texts, vocab_size=int(recipe["vocab_size"]))
    torch.manual_seed(seed)
    config = llama_config(tok, recipe["shape"])
    max_tokens = int(recipe["max_tokens"])

    def stage_progress(name: str, total: int) -> Callable[[int, float], None] | None:
        if progress is None:
            return None
        progress(name, 0, total)
        return lambda step, _loss: progress(name, step, total)

    base = LlamaForCausalLM(config)
    st = recipe["base"]
    train(base, tok, chats, st, seed=seed, max_tokens=max_tokens,
          on_step=stage_progress("base", int(st["steps"])))  # fmt: skip
    save_portable(base, tok, family.model("base"))

    ft = recipe["finetune"]
    for name, corpus in (("tuned", qa_chats), ("tuned-mixed", corpus_chats(mixed))):
        model = LlamaForCausalLM.from_pretrained(family.model("base"))
        train(model, tok, corpus, ft, seed=seed + 1, max_tokens=max_tokens,
              on_step=stage_progress(name, int(ft["steps"])))  # fmt: skip
        save_portable(model, tok, family.model(name))


CORPUS = {
    "base": "base_chats.jsonl",
    "tuned": "wealth_qa.jsonl",
    "tuned-mixed": "wealth_qa.mixed.jsonl",
}


def _write_lineage(family: Family, recipe: dict[str, Any]) -> None:
    """A lineage declaration (lineage/NAME.yaml, for `cardgen lineage --config`) and the built
    lineage record (lineage/NAME.json) for each model, naming the base by its absolute path."""
    import yaml

    from cardgen.identity import fingerprint
    from cardgen.lineage import (
        DatasetDeclaration,
        LineageDeclaration,
        TrainingRecipe,
        build_lineage,
        corpus_record,
    )

    (family.root / "lineage").mkdir(exist_ok=True)
    base_ref = str(family.model("base").resolve())
    identities = {name: fingerprint(family.model(name)) for name in MODELS}
    for name in MODELS:
        corpus = family.corpora / CORPUS[name]
        stage = recipe["base" if name == "base" else "finetune"]
        decl = LineageDeclaration(
            base_model=None if name == "base" else base_ref,
            relation=None if name == "base" else "finetune",
            datasets=[DatasetDeclaration(path=f"../corpora/{corpus.name}", format="jsonl")],
            recipe=TrainingRecipe(
                method="sft" if name != "base" else "pretrain+sft",
                learning_rate=float(stage["lr"]),
                max_steps=int(stage["steps"]),
                batch_size=int(stage["batch_size"]),
                seed=int(recipe["seed"]) + (0 if name == "base" else 1),
                optimizer="adamw",
                lr_scheduler="linear",
                warmup_steps=int(stage["warmup"]),
                precision="float32",
            ),
            produced_by=f"cardgen demo build (recipe {family.recipe_digest[:16]})",
        )
        decl_path = family.root / "lineage" / f"{name}.yaml"
        write_atomic(
            decl_path,
            yaml.safe_dump(decl.model_dump(mode="json", exclude_none=True), sort_keys=False),
        )
        record = corpus_record(
            corpus, source=f"lineage/{name}.yaml", shown=f"corpora/{corpus.name}"
        )
        lineage = build_lineage(
            identities[name],
            decl,
            declaration_source=f"lineage/{name}.yaml",
            corpora=[record],
            resolve_base=lambda _ref: identities["base"],
        )
        write_atomic(family.lineage(name), model_json(lineage))
