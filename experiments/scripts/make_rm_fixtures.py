#!/usr/bin/env python3
"""Writes tiny Gemma / Gemma-2 causal LMs and tiny sequence-classification reward
models (Llama, GPT-NeoX, Gemma, Gemma-2; num_labels=1, pad_token_id=0) with the
outputs transformers computes, as test fixtures under tests/fixtures/<name>/:

  gemma, gemma2            config.json, model.safetensors (save_pretrained);
                           expected.safetensors: input_ids, attention_mask (left
                           padded), logits
  rm_llama, rm_gpt_neox,   config.json, model.safetensors (*ForSequenceClassification);
  rm_gemma, rm_gemma2      expected.safetensors: left_ids, left_mask, left_scores,
                           right_ids, right_mask, right_scores

Weights are random (seed 0) with std 0.3 and perturbed norms/biases so that mix-ups
show. Left-padded rows get per-row positions (cumsum of the mask - 1), as rmteach
uses. Gemma-2's sliding window (3) is shorter than the rows (8), so the band mask
is exercised, and its soft-caps (attention 5, logits 8) bite. Run with torch +
transformers:  python3 scripts/make_rm_fixtures.py tests/fixtures
Read by tests/gemma_reference.rs and tests/reward_load.rs.

Also tests/fixtures/armorm/: a tiny ArmoRM (LlamaForRewardModelWithGating: Llama
backbone, regression_layer, gating MLP, reward_transform_matrix) computed here in
torch over transformers' LlamaModel, following the published description of the
architecture (see src/armorm.rs); read by tests/armorm.rs.
"""
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

LEFT_IDS = [
    [5, 9, 17, 33, 2, 60, 7, 11],
    [0, 0, 0, 4, 8, 15, 16, 23],
    [0, 0, 0, 0, 0, 42, 1, 3],
]
LEFT_MASK = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1],
]


def right_padded():
    ids, mask = [], []
    for row, m in zip(LEFT_IDS, LEFT_MASK):
        real = [t for t, k in zip(row, m) if k]
        pad = len(row) - len(real)
        ids.append(real + [0] * pad)
        mask.append([1] * len(real) + [0] * pad)
    return ids, mask


def gemma_cfg(**kw):
    return transformers.GemmaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0,
        hidden_act="gelu_pytorch_tanh", pad_token_id=0, bos_token_id=2, eos_token_id=1,
        tie_word_embeddings=True, **kw)


def gemma2_cfg(**kw):
    return transformers.Gemma2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
        attn_logit_softcapping=5.0, final_logit_softcapping=8.0, sliding_window=3,
        pad_token_id=0, bos_token_id=2, eos_token_id=1, tie_word_embeddings=True, **kw)


def llama_cfg(**kw):
    return transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
        pad_token_id=0, **kw)


def neox_cfg(**kw):
    return transformers.GPTNeoXConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, hidden_act="gelu", rotary_pct=0.5,
        max_position_embeddings=64, use_parallel_residual=True,
        tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0,
        pad_token_id=0, **kw)


def perturb(model):
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias") or "norm" in pname:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.3)


def make(cls, cfg, d):
    torch.manual_seed(0)
    cfg._attn_implementation = "eager"
    model = cls(cfg).eval()
    perturb(model)
    model.save_pretrained(d, safe_serialization=True)
    return model


def run(model, ids, mask):
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    return ids, mask, out


ARMO_PATTERN = [60, 61, 62]
ARMO_IDS = [
    [5, 9, 60, 61, 62, 17, 33, 2, 7, 11],
    [0, 0, 4, 60, 61, 62, 8, 15, 16, 23],
    [42, 60, 61, 62, 1, 60, 61, 62, 9, 0],
]
ARMO_MASK = [[int(t != 0) for t in row] for row in ARMO_IDS]


def last_occurrence(row, pattern):
    for j in range(len(row) - len(pattern), -1, -1):
        if row[j:j + len(pattern)] == pattern:
            return j
    raise ValueError("pattern not found")


def armorm(out):
    n_obj, g_hidden, g_layers, temp = 5, 16, 2, 3.0
    cfg = llama_cfg()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    backbone = transformers.LlamaModel(cfg).eval()
    perturb(backbone)
    state = {"model." + k: v.contiguous() for k, v in backbone.state_dict().items()}
    state["regression_layer.weight"] = torch.randn(n_obj, 32) * 0.3
    state["reward_transform_matrix"] = torch.eye(n_obj) + 0.2 * torch.randn(n_obj, n_obj)
    width = 32
    for i in range(g_layers + 1):
        w_out = g_hidden if i < g_layers else n_obj
        state[f"gating.layers.{i}.weight"] = torch.randn(w_out, width) * 0.3
        state[f"gating.layers.{i}.bias"] = torch.randn(w_out) * 0.1
        width = w_out
    state["gating.logit_scale"] = torch.tensor([1.7])
    d = os.path.join(out, "armorm")
    os.makedirs(d, exist_ok=True)
    conf = cfg.to_dict()
    conf.update({"architectures": ["LlamaForRewardModelWithGating"], "num_objectives": n_obj,
                 "gating_temperature": temp, "gating_hidden_dim": g_hidden,
                 "gating_n_hidden": g_layers, "gating_token_pattern": ARMO_PATTERN})
    conf.pop("_attn_implementation_autoset", None)
    import json
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True, default=str)
    save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})

    ids, mask = torch.tensor(ARMO_IDS), torch.tensor(ARMO_MASK)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
        b, t = ids.shape
        rows = torch.arange(b)
        # Reward position as the published code computes it: first pad - 1, modulo t.
        last = (torch.eq(ids, 0).int().argmax(-1) - 1) % t
        rewards = hidden[rows, last] @ state["regression_layer.weight"].T
        gate_pos = [last_occurrence(r, ARMO_PATTERN) for r in ARMO_IDS]
        x = hidden[rows, gate_pos]
        for i in range(g_layers + 1):
            x = x @ state[f"gating.layers.{i}.weight"].T + state[f"gating.layers.{i}.bias"]
            if i < g_layers:
                x = torch.relu(x)
        gating = torch.softmax(x / temp, dim=1) * state["gating.logit_scale"][0]
        score = (gating * (rewards @ state["reward_transform_matrix"])).sum(1)
    save_file({"input_ids": ids, "attention_mask": mask, "rewards": rewards.contiguous(),
               "gating": gating.contiguous(), "score": score.contiguous()},
              os.path.join(d, "expected.safetensors"))
    print("armorm gate at", gate_pos, "reward at", last.tolist(), "score", score.tolist())


def main(out):
    T = transformers
    armorm(out)
    for name, cls, cfg in [("gemma", T.GemmaForCausalLM, gemma_cfg()),
                           ("gemma2", T.Gemma2ForCausalLM, gemma2_cfg())]:
        d = os.path.join(out, name)
        model = make(cls, cfg, d)
        ids, mask, logits = run(model, LEFT_IDS, LEFT_MASK)
        save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous()},
                  os.path.join(d, "expected.safetensors"))
        print(name, "logits", tuple(logits.shape), "max", logits.abs().max().item())

    rows = [("rm_llama", T.LlamaForSequenceClassification, llama_cfg(num_labels=1)),
            ("rm_gpt_neox", T.GPTNeoXForSequenceClassification, neox_cfg(num_labels=1)),
            ("rm_gemma", T.GemmaForSequenceClassification, gemma_cfg(num_labels=1)),
            ("rm_gemma2", T.Gemma2ForSequenceClassification, gemma2_cfg(num_labels=1))]
    right_ids, right_mask = right_padded()
    for name, cls, cfg in rows:
        d = os.path.join(out, name)
        model = make(cls, cfg, d)
        li, lm, ls = run(model, LEFT_IDS, LEFT_MASK)
        ri, rmask, rs = run(model, right_ids, right_mask)
        save_file({"left_ids": li, "left_mask": lm, "left_scores": ls[:, 0].contiguous(),
                   "right_ids": ri, "right_mask": rmask,
                   "right_scores": rs[:, 0].contiguous()},
                  os.path.join(d, "expected.safetensors"))
        print(name, "left", ls[:, 0].tolist(), "right", rs[:, 0].tolist())
    print("transformers", T.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
