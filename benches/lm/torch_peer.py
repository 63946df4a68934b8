#!/usr/bin/env python3
"""PyTorch + transformers peer of `rmteach exp bench run`.

Runs the same workloads on the directory written by `rmteach exp bench init`
(`policy/`, `rm/`: Hugging Face checkpoints of the same seeded random weights;
`inputs.json`: the token ids) and writes the same JSON report. Each workload starts
from the saved weights; the warm-up call's values (losses, gradient norms, logits)
are the agreement check, then `--reps` timed calls give the median.

Workloads (mirroring experiments/src/bench/workloads.rs):
  forward  full-sequence forward, logits of every position, no gradients
  step     causal-LM loss (labels = input_ids), backward, clip 1.0, AdamW step
  sft      token-mean NLL of the response tokens (prompt labels -100), step
  rm       *ForSequenceClassification on [chosen..., rejected...], Bradley-Terry loss
           with centring 0.01 (r_c + r_r)^2, step
  sample   model.generate: temperature 1, no top-k/top-p, exactly new_tokens per row
  rloo     one RLOO update as experiments/src/stages/pg.rs: k = 2, rollout with
           generate, old/reference log-probs, reward-model scores, reward =
           score - 0.05 * sum(logp_old - logp_ref), leave-one-out advantages, two
           mini-batch steps of the clipped (0.2) sequence-ratio surrogate
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

K, BETA, CLIP, MINI_BATCHES = 2, 0.05, 0.2, 2
ALL = ["forward", "step", "sft", "rm", "sample", "rloo"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--workloads", default="all")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: RAYON_NUM_THREADS or torch's own)")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa or eager)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.reps < 1 or a.new_tokens < 1:
        sys.exit("--reps and --new-tokens must be positive")

    threads = a.threads or (int(os.environ["RAYON_NUM_THREADS"]) if os.environ.get("RAYON_NUM_THREADS") else None)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(a.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    with open(os.path.join(a.dir, "inputs.json")) as f:
        inp = json.load(f)
    names = ALL if a.workloads == "all" else [w.strip() for w in a.workloads.split(",") if w.strip()]
    for w in names:
        if w not in ALL:
            sys.exit(f"unknown workload `{w}`; use {', '.join(ALL)} or all")

    def load(kind):
        cls = AutoModelForCausalLM if kind == "policy" else AutoModelForSequenceClassification
        m = cls.from_pretrained(os.path.join(a.dir, kind), dtype=dtype, attn_implementation=a.attn)
        return m.to(dev).eval()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        first = fn()
        sync()
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return first, times

    def opt_for(model):
        # As our AdamW (OptimConfig::new): betas (0.9, 0.999), eps 1e-8, no weight decay.
        return torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def step(model, opt, loss):
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(norm)

    T = lambda rows: torch.tensor(rows, dtype=torch.long, device=dev)
    prompts, responses = T(inp["prompts"]), T(inp["responses"])
    full = torch.cat([prompts, responses], 1)
    B, P = prompts.shape
    R = responses.shape[1]
    pad = inp["pad"]

    def gen(model, ids, seed):
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
            top_k=0, top_p=1.0, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
            pad_token_id=pad, use_cache=True)
        return out

    def seq_logp(model, ids, p):
        # Logits of the positions that predict response tokens only (as TRL's logits_to_keep).
        r = ids.shape[1] - p
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=r + 1).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, p:, None]).squeeze(-1)
        return logp.sum(1)

    def w_forward():
        m = load("policy")
        mask = torch.ones_like(full)

        def f():
            with torch.no_grad():
                return m(input_ids=full, attention_mask=mask).logits.float()
        logits, times = timed(f)
        check = {"logits_row0_last_first16": logits[0, -1, :16].tolist(),
                 "logits_mean": float(logits.mean()), "logits_rms": float(logits.pow(2).mean().sqrt())}
        return check, times, None

    def w_step():
        m = load("policy")
        opt, mask = opt_for(m), torch.ones_like(full)

        def f():
            loss = m(input_ids=full, attention_mask=mask, labels=full).loss
            return float(loss.detach()), step(m, opt, loss)
        (loss, norm), times = timed(f)
        return {"loss": loss, "grad_norm": norm}, times, None

    def w_sft():
        m = load("policy")
        opt, mask = opt_for(m), torch.ones_like(full)
        labels = full.clone()
        labels[:, :P] = -100

        def f():
            loss = m(input_ids=full, attention_mask=mask, labels=labels).loss
            return float(loss.detach()), step(m, opt, loss)
        (loss, norm), times = timed(f)
        return {"loss": loss, "grad_norm": norm}, times, None

    def w_rm():
        m = load("rm")
        opt = opt_for(m)
        ids = torch.cat([torch.cat([prompts, T(inp["chosen"])], 1), torch.cat([prompts, T(inp["rejected"])], 1)], 0)
        mask = torch.ones_like(ids)

        def f():
            r = m(input_ids=ids, attention_mask=mask).logits[:, 0].float()
            c, j = r[:B], r[B:]
            loss = torch.nn.functional.softplus(-(c - j)).mean() + 0.01 * (c + j).pow(2).mean()
            first = r[: min(4, B)].detach().tolist()
            return float(loss.detach()), step(m, opt, loss), first
        (loss, norm, first), times = timed(f)
        return {"loss": loss, "grad_norm": norm, "rewards_first4": first}, times, None

    def w_sample():
        m = load("policy")
        seed = [a.seed]

        def f():
            seed[0] += 1
            with torch.no_grad():
                out = gen(m, prompts, seed[0])
            return int(out[:, P:].numel())
        tokens, times = timed(f)
        return {"tokens": tokens}, times, tokens

    def w_rloo():
        pol, ref, rm = load("policy"), load("policy"), load("rm")
        for p in list(ref.parameters()) + list(rm.parameters()):
            p.requires_grad_(False)
        opt = opt_for(pol)
        rows = prompts[: B // K].repeat_interleave(K, 0)
        upd = [0]

        def f():
            upd[0] += 1
            seed = a.seed * 1000 + upd[0]
            with torch.no_grad():
                ids = gen(pol, rows, seed)
                old = seq_logp(pol, ids, P)
                refl = seq_logp(ref, ids, P)
                scores = rm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, 0].float()
            kl = (old - refl).double()
            rewards = scores.double() - BETA * kl
            g = rewards.view(-1, K)
            adv = (g - (g.sum(1, keepdim=True) - g) / (K - 1)).view(-1).float()
            gen_ = torch.Generator().manual_seed(seed)
            perm = torch.randperm(B, generator=gen_).to(dev)
            clipped, losses = 0.0, []
            for mb in perm.chunk(MINI_BATCHES):
                new = seq_logp(pol, ids[mb], P)
                ratio = torch.exp(new - old[mb])
                un = -adv[mb] * ratio
                cl = -adv[mb] * ratio.clamp(1 - CLIP, 1 + CLIP)
                clipped += float((cl > un).sum())
                loss = torch.maximum(un, cl).sum() / len(mb)
                losses.append(float(loss.detach()))
                step(pol, opt, loss)
            return int(ids[:, P:].numel()), float(kl.mean()), clipped / B, losses
        (tokens, kl, cf, losses), times = timed(f)
        if not all(math.isfinite(x) for x in losses):
            raise RuntimeError(f"non-finite surrogate loss {losses}")
        return {"tokens": tokens, "kl_first_update": kl, "clip_frac_first_update": cf}, times, tokens

    fns = {"forward": w_forward, "step": w_step, "sft": w_sft, "rm": w_rm, "sample": w_sample, "rloo": w_rloo}
    reports = {}
    for w in names:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            check, times, tokens = fns[w]()
            med = statistics.median_high(times)
            rep = {"median_s": med, "times_s": times, "tokens_per_s": tokens / med if tokens else None,
                   "check": check, "error": None}
        except Exception as e:  # recorded, the other workloads still run
            rep = {"median_s": 0.0, "times_s": [], "tokens_per_s": None, "check": {}, "error": f"{type(e).__name__}: {e}"}
        if dev.type == "cuda":
            rep["peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
        reports[w] = rep

    m = AutoModelForCausalLM.from_pretrained(os.path.join(a.dir, "policy"), dtype=dtype)
    report = {
        "framework": f"torch {torch.__version__} + transformers {transformers.__version__} ({a.attn})",
        "model_type": m.config.model_type, "params": sum(p.numel() for p in m.parameters()),
        "device": a.device, "dtype": a.dtype, "threads": torch.get_num_threads(),
        "batch": B, "prompt_len": P, "response_len": R,
        "spec": {"workloads": names, "reps": a.reps, "new_tokens": a.new_tokens, "lr": a.lr, "seed": a.seed},
        "workloads": reports,
    }
    del m
    text = json.dumps(report, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    failed = [f"{k}: {v['error']}" for k, v in reports.items() if v["error"]]
    for f_ in failed:
        print(f"workload failed: {f_}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
