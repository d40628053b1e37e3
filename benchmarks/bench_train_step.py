"""Demo-family training step: the loss on assistant positions only, against transformers' own.

The baseline is what `train` did before: `model(input_ids, attention_mask, labels=labels).loss`,
which runs the output layer and the 2,048-way log-softmax over every position, prompt and
padding included. `cardgen.demo.family.assistant_loss` applies them to the positions that carry a
label only. Both run the same seeded batches of the base recipe (forward, backward, AdamW step)
on a freshly initialised model, alternately, in one process; the script prints seconds per step
for each, the ratio (baseline / cardgen; > 1.0 is faster), and the largest difference between
the two losses (the same loss, so it should be at float rounding).

    python benchmarks/bench_train_step.py [--steps 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch
    from transformers import LlamaForCausalLM

    from cardgen.demo import family as fam
    from cardgen.demo.tiny import llama_config, train_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    recipe = fam.RECIPE
    stage = recipe["base"]
    chats = fam.base_chats(random.Random(0), recipe["multiturn_chats"], recipe["lookalike_weight"])
    texts = [m["content"] for c in chats + fam.corpus_chats(fam.WEALTH_QA) for m in c]
    tok = train_tokenizer(texts, vocab_size=recipe["vocab_size"])
    encoded = [fam._encode(tok, c, recipe["max_tokens"]) for c in chats]
    batches = [
        fam._tensors(b, tok.pad_token_id)
        for b in fam._batches(encoded, stage["batch_size"], args.steps, random.Random(0))
    ]
    config = llama_config(tok, recipe["shape"])

    def run(kind: str) -> tuple[float, list[float]]:
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=stage["lr"])
        losses: list[float] = []
        t0 = time.perf_counter()
        for input_ids, attn, labels in batches:
            loss: Any
            if kind == "transformers":
                loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
            else:
                loss = fam.assistant_loss(model, input_ids, attn, labels)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.item()))
        return (time.perf_counter() - t0) / len(batches), losses

    times: dict[str, list[float]] = {"transformers": [], "cardgen": []}
    first: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for kind in times:
            took, losses = run(kind)
            times[kind].append(took)
            first.setdefault(kind, losses)
    base, ours = min(times["transformers"]), min(times["cardgen"])
    diff = abs(first["transformers"][0] - first["cardgen"][0])  # the same weights only at step 1
    print(f"{args.steps} steps of the base recipe (batch {stage['batch_size']}), best of "
          f"{args.rounds} rounds each, alternating")  # fmt: skip
    print(f"transformers labels= loss  {base * 1000:7.1f} ms/step")
    print(f"cardgen assistant_loss     {ours * 1000:7.1f} ms/step")
    print(f"ratio (baseline / cardgen): {base / ours:.2f}x")
    print(f"first-step loss difference: {diff:.2e}")


if __name__ == "__main__":
    main()
