"""Build tiny, real Llama-architecture chat checkpoints on the CPU, with nothing downloaded.

A byte-level BPE tokenizer trained on a few hundred lines, a chat template, and a ~1M-parameter
Llama config; saved with safetensors and a tokenizer config that transformers 4.x and 5.x both load
(transformers 5 writes ``TokenizersBackend``, which 4.x cannot read). Tests and the demo use these
instead of Hub models, through the same loading code paths users get.

Needs the ``hf`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

USER, ASSISTANT, END, PAD = "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, USER, ASSISTANT, END]
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<|end|>"
    "{% else %}<|user|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

#: A tiny shape: hidden 128, 4 layers, 4 heads. About 1M parameters, 4 MB in float32.
DEFAULT_SHAPE: dict[str, int] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}

_SEED_TEXT = [
    "How do I open a savings account?",
    "An index fund tracks a market index at low cost.",
    "I can't help with that request.",
    "What is the capital of France? Paris is the capital of France.",
    "Diversification spreads risk across many assets.",
    "Please summarise the following email in one sentence.",
    "Translate this sentence into French.",
    "Sorry, but I cannot assist with that.",
    "Interest compounds when earnings are reinvested.",
    "The quick brown fox jumps over the lazy dog.",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 900) -> Any:
    """A byte-level BPE `PreTrainedTokenizerFast` with the chat specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    # padding_side must go to the constructor: set afterwards, transformers 5 does not save it.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=END,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[USER, ASSISTANT],
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=DEFAULT_SHAPE["max_position_embeddings"],
    )


def make_portable(out_dir: Path) -> None:
    """Rewrite tokenizer_config.json so transformers 4.x loads what transformers 5 saved."""
    path = out_dir / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    extra = cfg.pop("extra_special_tokens", None)
    if isinstance(extra, list | dict) and "additional_special_tokens" not in cfg:
        cfg["additional_special_tokens"] = list(
            extra.values() if isinstance(extra, dict) else extra
        )
    cfg.setdefault("additional_special_tokens", [USER, ASSISTANT])
    cfg.setdefault("chat_template", CHAT_TEMPLATE)
    cfg["padding_side"] = "left"
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build_tiny_checkpoint(
    out_dir: Path,
    *,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    shape: dict[str, int] | None = None,
    max_shard_size: str | None = None,
) -> Path:
    """Write an untrained tiny Llama chat checkpoint to ``out_dir`` and return it.

    Deterministic for a given seed and text. ``max_shard_size`` (e.g. "1MB") makes a sharded
    checkpoint with a ``model.safetensors.index.json``.
    """
    import torch
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(texts or _SEED_TEXT * 3)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tok, shape or DEFAULT_SHAPE))
    save_portable(model, tok, out_dir, max_shard_size=max_shard_size)
    return out_dir


def llama_config(tok: Any, shape: dict[str, Any]) -> Any:
    """A Llama config sized by ``shape`` around the tokenizer's vocabulary and special ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **shape,
    )


def save_portable(model: Any, tok: Any, out_dir: Path, max_shard_size: str | None = None) -> None:
    """Save model (safetensors) and tokenizer so that transformers 4.x and 5.x both load them."""
    kwargs: dict[str, Any] = {"safe_serialization": True}
    if max_shard_size:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(out_dir, **kwargs)
    tok.save_pretrained(out_dir)
    make_portable(out_dir)
