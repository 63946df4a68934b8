#!/usr/bin/env python3
"""Writes tiny transformers checkpoints and their logits as test fixtures.

For each tiny model (GPT-NeoX with partial rotary; Llama with GQA, llama3 rope
scaling and tied embeddings) this saves, under tests/fixtures/<name>/:
  config.json, model.safetensors   (save_pretrained, random init, seed 0)
  expected.safetensors             input_ids, attention_mask (left padded), logits
The Rust test tests/hf_reference.rs loads the checkpoint and compares logits on the
real (non-pad) tokens. Run once with torch + transformers installed:
  python3 scripts/make_hf_fixtures.py tests/fixtures
"""
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

IDS = [
    [5, 9, 17, 33, 2, 60, 7, 11],
    [0, 0, 0, 4, 8, 15, 16, 23],
    [0, 0, 0, 0, 0, 42, 1, 3],
]
MASK = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1],
]


def neox():
    cfg = transformers.GPTNeoXConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, hidden_act="gelu", rotary_pct=0.5,
        max_position_embeddings=64, use_parallel_residual=True,
        tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0,
    )
    return transformers.GPTNeoXForCausalLM(cfg)


def neox_sequential():
    m = neox()
    cfg = m.config
    cfg.use_parallel_residual = False
    return transformers.GPTNeoXForCausalLM(cfg)


def llama():
    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    )
    return transformers.LlamaForCausalLM(cfg)


def main(out):
    for name, make in [("gpt_neox", neox), ("gpt_neox_sequential", neox_sequential),
                       ("llama", llama)]:
        torch.manual_seed(0)
        model = make().eval()
        # Large random weights (sharp attention, logits of order 10) and random norms
        # and biases, so a mix-up of names, layouts or rotary dims shows clearly.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("bias") or "norm" in pname:
                    p.add_(0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.3)
        d = os.path.join(out, name)
        model.config._attn_implementation = "eager"
        model.save_pretrained(d, safe_serialization=True)
        ids = torch.tensor(IDS)
        mask = torch.tensor(MASK)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        save_file({"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64),
                   "logits": logits.float().contiguous()},
                  os.path.join(d, "expected.safetensors"))
        print(name, "transformers", transformers.__version__, "logits", tuple(logits.shape))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
