#!/usr/bin/env python3
"""Checks that transformers loads checkpoints rmteach saved and computes our logits.

1. Export checkpoints from the Rust test (seeded init, so always the same weights):
     RMTEACH_EXPORT_SAVED=/tmp/saved cargo test --test hf_save transformers_reads
   Each /tmp/saved/<name>/ holds config.json, model.safetensors (written by
   rmteach's hf::save) and ours.safetensors (input_ids, attention_mask, and our
   logits, or for reward models saved as *ForSequenceClassification our scores).
2. Run this with torch + transformers:
     python3 scripts/check_saved_checkpoints.py /tmp/saved tests/fixtures/saved
   For every checkpoint it loads AutoModelForCausalLM.from_pretrained (eager
   attention, float32; AutoModelForSequenceClassification for reward models),
   computes logits (scores) on the same left-padded batch (per-row positions),
   prints the max |diff| against ours on real tokens, fails above 1e-4, and writes
   <out>/<name>/transformers_logits.safetensors (or transformers_scores.safetensors;
   the committed fixtures) and a copy of the config.json we wrote.
"""
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file


def main(src, out):
    worst = 0.0
    for name in sorted(os.listdir(src)):
        d = os.path.join(src, name)
        if not os.path.isfile(os.path.join(d, "ours.safetensors")):
            continue
        ours = load_file(os.path.join(d, "ours.safetensors"))
        reward = "scores" in ours
        auto = (transformers.AutoModelForSequenceClassification if reward
                else transformers.AutoModelForCausalLM)
        model = auto.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        ids, mask = ours["input_ids"], ours["attention_mask"]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
        o = os.path.join(out, name)
        os.makedirs(o, exist_ok=True)
        if reward:
            scores = logits[:, 0].contiguous()
            diff = (scores - ours["scores"]).abs().max().item()
            print(f"{name}: {type(model).__name__}, scores {scores.tolist()}, "
                  f"max |transformers - ours| {diff:.3e}")
            save_file({"scores": scores}, os.path.join(o, "transformers_scores.safetensors"))
        else:
            real = mask.bool().unsqueeze(-1).expand_as(logits)
            diff = (logits - ours["logits"]).abs()[real].max().item()
            scale = logits.abs().max().item()
            print(f"{name}: {type(model).__name__}, max |logit| {scale:.3f}, "
                  f"max |transformers - ours| {diff:.3e}")
            save_file({"logits": logits.contiguous()},
                      os.path.join(o, "transformers_logits.safetensors"))
        worst = max(worst, diff)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(o, "config.json"))
    print("transformers", transformers.__version__, "torch", torch.__version__, "worst", worst)
    if worst > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
