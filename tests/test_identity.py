"""What identity reads from a checkpoint without loading a tensor."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from cardgen._io import model_json
from cardgen.errors import CheckpointError
from cardgen.identity import fingerprint


def test_parameter_count_and_dtypes_match_the_safetensors_library(checkpoint: Path) -> None:
    from safetensors import safe_open

    expected = 0
    dtypes: dict[str, int] = {}
    for shard in checkpoint.glob("*.safetensors"):
        with safe_open(str(shard), framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                sl = f.get_slice(name)
                n = 1
                for d in sl.get_shape():
                    n *= d
                expected += n
                dtypes[sl.get_dtype()] = dtypes.get(sl.get_dtype(), 0) + n
    ident = fingerprint(checkpoint)
    assert ident.parameters is not None
    assert ident.parameters.total == expected
    assert ident.parameters.by_dtype == dtypes
    assert ident.parameters.complete
    assert len(ident.parameters.counted_files) == 3


def test_architecture_tokenizer_and_generation_config_are_read(checkpoint: Path) -> None:
    ident = fingerprint(checkpoint)
    cfg = json.loads((checkpoint / "config.json").read_text())
    assert ident.architecture is not None
    assert ident.architecture.model_type == "llama"
    assert ident.architecture.architectures == ["LlamaForCausalLM"]
    assert ident.architecture.hidden_size == cfg["hidden_size"] == 128
    assert ident.architecture.config_sha256 == next(
        f.sha256 for f in ident.files if f.path == "config.json"
    )
    assert ident.tokenizer is not None
    assert ident.tokenizer.tokenizer_class == "PreTrainedTokenizerFast"
    assert ident.tokenizer.chat_template_sha256 is not None
    assert "tokenizer.json" in ident.tokenizer.files
    assert ident.generation_config is not None
    assert ident.adapter is None and not ident.contains_pickle


def test_chat_template_change_changes_identity(checkpoint: Path) -> None:
    before = fingerprint(checkpoint)
    tpl = checkpoint / "chat_template.jinja"
    tpl.write_text(tpl.read_text().replace("<|user|>", "<|user|> "))
    after = fingerprint(checkpoint)
    assert before.tokenizer and after.tokenizer
    assert after.tokenizer.chat_template_sha256 != before.tokenizer.chat_template_sha256
    assert after.tokenizer.digest != before.tokenizer.digest
    assert after.weights_digest != before.weights_digest


def test_chat_template_only_in_tokenizer_config_is_found(checkpoint: Path) -> None:
    (checkpoint / "chat_template.jinja").unlink()
    ident = fingerprint(checkpoint)
    assert ident.tokenizer and ident.tokenizer.chat_template_source == "tokenizer_config.json"


def test_adapter_is_detected_with_its_settings(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16,
                "lora_dropout": 0.05, "target_modules": ["v_proj", "q_proj"],
                "base_model_name_or_path": "acme/base-7b", "revision": "abc123",
            }
        )
    )  # fmt: skip
    save_file(
        {"base_model.model.layers.0.q_proj.lora_A.weight": np.zeros((8, 128), np.float32)},
        str(d / "adapter_model.safetensors"),
    )
    ident = fingerprint(d)
    assert ident.adapter is not None
    assert ident.adapter.peft_type == "LORA"
    assert ident.adapter.rank == 8 and ident.adapter.alpha == 16.0
    assert ident.adapter.target_modules == ["q_proj", "v_proj"]
    assert ident.adapter.base_model == "acme/base-7b"
    assert ident.adapter.base_model_revision == "abc123"
    roles = {f.path: f.role for f in ident.files}
    assert roles["adapter_model.safetensors"] == "adapter-weights"
    assert ident.parameters and ident.parameters.total == 8 * 128


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('unpickled!')",))


def test_pickle_weights_are_hashed_never_loaded(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (checkpoint / "pytorch_model.bin").write_bytes(pickle.dumps(_Boom()))

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("cardgen must never unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    import torch

    monkeypatch.setattr(torch, "load", forbidden)
    ident = fingerprint(checkpoint)
    assert ident.contains_pickle
    assert ident.pickle_files == ["pytorch_model.bin"]
    assert ident.parameters is not None and not ident.parameters.complete
    assert any("pickle" in n for n in ident.notes)


def test_quantization_config_is_recorded(checkpoint: Path) -> None:
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (checkpoint / "config.json").write_text(json.dumps(cfg))
    ident = fingerprint(checkpoint)
    assert ident.quantization_config == {"quant_method": "gptq", "bits": 4, "group_size": 128}


def test_card_front_matter_is_read(checkpoint: Path) -> None:
    (checkpoint / "README.md").write_text(
        "---\nbase_model: acme/base-7b\nbase_model_relation: finetune\nlicense: apache-2.0\n"
        "datasets:\n- acme/finance-qa\n---\n# Model\n"
    )
    ident = fingerprint(checkpoint)
    assert ident.card is not None
    assert ident.card.base_model == ["acme/base-7b"]
    assert ident.card.base_model_relation == "finetune"
    assert ident.card.datasets == ["acme/finance-qa"]


def test_rerun_gives_byte_identical_json(checkpoint: Path) -> None:
    assert model_json(fingerprint(checkpoint)) == model_json(fingerprint(checkpoint))


def _st(header: bytes, data_len: int) -> bytes:
    return struct.pack("<Q", len(header)) + header + b"\0" * data_len


def _corrupt(checkpoint: Path, payload: bytes) -> Path:
    shard = next(checkpoint.glob("model-00001-*.safetensors"))
    shard.write_bytes(payload)
    return shard


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (struct.pack("<Q", 10_000) + b"{}", "declares 10,000 header bytes but the file has only 2"),
        (struct.pack("<Q", 4) + b"{no}", "not valid JSON"),
        (struct.pack("<Q", 1 << 40) + b"{}", "more than the 100,000,000-byte limit"),
        (b"\x01\x02", "shorter than the 8-byte header length"),
        (struct.pack("<Q", 2) + b"[]", "the JSON is not an object"),
        (_st(b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8), "past the end"),
        (_st(b'{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', 16), "16 data bytes"),
        (_st(b'{"w":{"dtype":"F32","shape":[-3],"data_offsets":[0,16]}}', 16), "invalid shape"),
        (_st(b'{"w":{"dtype":"F32","shape":[4]}}', 16), "lacks dtype, shape or data_offsets"),
    ],
)
def test_corrupt_safetensors_header_is_a_clear_error(
    checkpoint: Path, payload: bytes, message: str
) -> None:
    _corrupt(checkpoint, payload)
    with pytest.raises(CheckpointError, match="model-00001-of-00003.safetensors") as e:
        fingerprint(checkpoint)
    assert message in str(e.value)


def test_invalid_config_json_is_a_clear_error(checkpoint: Path) -> None:
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config.json: not valid JSON"):
        fingerprint(checkpoint)
