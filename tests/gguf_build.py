"""Write a tiny real GGUF from a demo-family safetensors checkpoint with the `gguf` writer, in
the layout llama.cpp's converter produces (tensor names, the Q/K row permutation, a gpt2-style
BPE tokenizer), so transformers (and llama.cpp) load it. For the tests only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order (transformers' GGUF loader undoes it)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def build_gguf(src: Path, dest: Path, qtype: str = "Q8_0", *, name: str = "tiny-chat",
               base_name: str | None = None, split: int = 1) -> list[Path]:  # fmt: skip
    """``src`` (a demo checkpoint) as GGUF at ``dest``; `qtype` Q8_0, Q4_0, F16 or F32 for the 2-D
    weights (norms stay F32). ``split`` > 1 writes -0000N-of-0000M shards. Returns the files."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((src / "config.json").read_text())
    tok = json.loads((src / "tokenizer.json").read_text())
    tok_cfg = json.loads((src / "tokenizer_config.json").read_text())
    tensors: dict[str, np.ndarray] = {}
    for f in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out: dict[str, np.ndarray] = {"token_embd.weight": tensors["model.embed_tokens.weight"],
                                  "output_norm.weight": tensors["model.norm.weight"]}  # fmt: skip
    out["output.weight"] = tensors.get("lm_head.weight", tensors["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[f"blk.{i}.attn_norm.weight"] = tensors[p + "input_layernorm.weight"]
        out[f"blk.{i}.attn_q.weight"] = _permute(tensors[p + "self_attn.q_proj.weight"], n_head)
        out[f"blk.{i}.attn_k.weight"] = _permute(tensors[p + "self_attn.k_proj.weight"], n_kv)
        out[f"blk.{i}.attn_v.weight"] = tensors[p + "self_attn.v_proj.weight"]
        out[f"blk.{i}.attn_output.weight"] = tensors[p + "self_attn.o_proj.weight"]
        out[f"blk.{i}.ffn_norm.weight"] = tensors[p + "post_attention_layernorm.weight"]
        out[f"blk.{i}.ffn_gate.weight"] = tensors[p + "mlp.gate_proj.weight"]
        out[f"blk.{i}.ffn_up.weight"] = tensors[p + "mlp.up_proj.weight"]
        out[f"blk.{i}.ffn_down.weight"] = tensors[p + "mlp.down_proj.weight"]
    q = gguf.GGMLQuantizationType[qtype]
    ft = gguf.LlamaFileType
    file_type = {"Q8_0": ft.MOSTLY_Q8_0, "Q4_0": ft.MOSTLY_Q4_0, "F16": ft.MOSTLY_F16,
                 "F32": ft.ALL_F32}[qtype]  # fmt: skip
    names = list(out)
    shards = [names[k::split] for k in range(split)] if split > 1 else [names]
    paths = []
    dest.parent.mkdir(parents=True, exist_ok=True)
    for k, shard in enumerate(shards):
        path = (dest if split == 1
                else dest.with_name(f"{dest.stem}-{k + 1:05d}-of-{split:05d}.gguf"))  # fmt: skip
        w = gguf.GGUFWriter(str(path), "llama")
        if k == 0:
            _metadata(w, cfg, tok, tok_cfg, file_type, name, base_name)
        if split > 1:
            w.add_uint16("split.no", k)
            w.add_uint16("split.count", split)
            w.add_int32("split.tensors.count", len(names))
        for tname in shard:
            data = np.ascontiguousarray(out[tname], dtype=np.float32)
            if data.ndim == 2 and q not in (gguf.GGMLQuantizationType.F32,):
                packed = gguf.quants.quantize(data, q)
                w.add_tensor(tname, packed, raw_dtype=q)
            else:
                w.add_tensor(tname, data)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        paths.append(path)
    return paths


def _metadata(w, cfg, tok, tok_cfg, file_type, name, base_name) -> None:  # type: ignore[no-untyped-def]
    import gguf

    w.add_name(name)
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if base_name:
        w.add_base_model_count(1)
        w.add_base_model_name(0, base_name)
        w.add_base_model_organization(0, "cardgen-demo")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_parameters", {}).get("rope_theta", 10000.0))
    w.add_vocab_size(cfg["vocab_size"])
    vocab = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["id"] for a in tok["added_tokens"] if a.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                       for i in range(len(tokens))])  # fmt: skip
    merges = tok["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_chat_template(tok_cfg["chat_template"])
