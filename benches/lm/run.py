#!/usr/bin/env python3
"""Benchmark rmteach's LM stages against PyTorch + transformers on identical work.

For each model config: `rmteach exp bench init` random-initialises (seeded) a causal
LM and a reward model and saves them as Hugging Face checkpoints plus the token ids
(`inputs.json`); then, for each dtype and thread count, `rmteach exp bench run` and
`torch_peer.py` run the same workloads on those files, one after the other. The
driver checks that both computed the same values (logits, losses, gradient norms,
rewards) and prints a markdown table of medians and ratios.

  python3 benches/lm/run.py                                 # CPU, the ~5M configs
  python3 benches/lm/run.py --threads 1,2 --readme README.md  # and rewrite the README table

The peer's interpreter: `--python PATH`, or a venv created in .cache/bench-lm-venv
with `pip install torch transformers safetensors` from the package index.
Ratio = torch median / rmteach median: above 1 means rmteach is faster.
Not a test: timings depend on the machine.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BEGIN, END = "<!-- bench:lm:begin -->", "<!-- bench:lm:end -->"
ALL = ["forward", "step", "sft", "rm", "sample", "rloo"]


def sh(cmd, env=None, timeout=None):
    """Runs `cmd`; returns (rc, stdout, stderr)."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def peer_python(args):
    if args.python:
        return args.python
    venv = os.path.join(ROOT, ".cache", "bench-lm-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"creating the peer venv {venv} (torch, transformers from the package index)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch", "transformers", "safetensors", "numpy"], check=True)
    return py


class GpuMemory:
    """Peak `nvidia-smi` memory.used (MiB) above the level before start, sampled every 0.1 s."""

    def __init__(self, enabled):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.peak, self.base, self._stop = 0.0, 0.0, threading.Event()

    @staticmethod
    def used():
        rc, out, _ = sh(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"])
        try:
            return float(out.strip().splitlines()[0]) if rc == 0 else 0.0
        except (ValueError, IndexError):
            return 0.0

    def __enter__(self):
        if self.enabled:
            self.base = self.used()
            self._t = threading.Thread(target=self._loop, daemon=True)
            self._t.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used() - self.base)
            time.sleep(0.1)

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._t.join()


def run_json(cmd, env, out_path, gpu, timeout):
    """Runs a bench process writing `out_path`; returns (report or None, error text, peak MiB)."""
    with GpuMemory(gpu) as mem:
        try:
            rc, so, se = sh(cmd, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout} s", mem.peak
    if not os.path.exists(out_path):
        return None, f"exit {rc}: {se.strip()[-800:]}", mem.peak
    with open(out_path) as f:
        rep = json.load(f)
    return rep, (se.strip()[-400:] if rc != 0 else ""), mem.peak


def max_diff(a, b, rel):
    """Largest |a - b| (relative to max(|a|, |b|, 1e-6) when `rel`) over scalars or lists."""
    xs = a if isinstance(a, list) else [a]
    ys = b if isinstance(b, list) else [b]
    if len(xs) != len(ys):
        return float("inf")
    worst = 0.0
    for x, y in zip(xs, ys):
        d = abs(x - y)
        if rel:
            d /= max(abs(x), abs(y), 1e-6)
        worst = max(worst, d)
    return worst


# (check key, relative?, tolerance f32, tolerance bf16). Logits and rewards of these
# random-initialised models are O(0.1-1), so absolute tolerances are meaningful.
CHECKS = {
    "logits_row0_last_first16": (False, 1e-4, 6e-2),
    "logits_mean": (False, 1e-4, 2e-2),
    "logits_rms": (True, 1e-4, 2e-2),
    "loss": (True, 1e-4, 2e-2),
    "grad_norm": (True, 1e-3, 5e-2),
    "rewards_first4": (False, 1e-4, 6e-2),
    "tokens": (False, 0.0, 0.0),
    "kl_first_update": (False, 1e-3, 1e-1),
}


def agreement(ours, theirs, dtype):
    """('ok'|'MISMATCH', text) comparing the check values of one workload."""
    worst, bad, parts = 0.0, [], []
    for key, (rel, tol32, tol16) in CHECKS.items():
        if key not in ours or key not in theirs:
            continue
        tol = tol32 if dtype == "f32" else tol16
        d = max_diff(ours[key], theirs[key], rel)
        worst = max(worst, d if key != "tokens" else 0.0)
        if key == "kl_first_update":  # policy == reference at the first update: both 0
            d = max(abs(ours[key]), abs(theirs[key]))
        if d > tol:
            bad.append(f"{key} {d:.2g} > {tol:.0e}")
        parts.append(key)
    if bad:
        return False, "MISMATCH: " + "; ".join(bad)
    return True, f"ok ({worst:.1e})" if parts else "n/a"


def machine(device):
    if device.startswith("cuda") and shutil.which("nvidia-smi"):
        rc, out, _ = sh(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
        if rc == 0:
            return "GPU " + out.strip().splitlines()[0]
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def write_readme(path, table):
    """Replaces the text between the markers of `path` with `table`."""
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit(f"--readme {path}: markers {BEGIN} / {END} not found")
    pre, rest = text.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(pre + BEGIN + "\n" + table + END + post)


def fmt_s(x):
    return "-" if not x else (f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="benches/lm/configs/llama-5m.json,benches/lm/configs/neox-5m.json")
    ap.add_argument("--workloads", default=",".join(ALL))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--response-len", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1", help="comma-separated CPU thread counts (RAYON_NUM_THREADS = torch threads)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", default="f32", help="comma-separated: f32, bf16")
    ap.add_argument("--rmteach", default=os.environ.get("RMTEACH", os.path.join(ROOT, "target", "release", "rmteach")))
    ap.add_argument("--python", default=None, help="the peer's interpreter (with torch and transformers)")
    ap.add_argument("--work", default=os.path.join(ROOT, ".cache", "bench-lm"), help="models, inputs and raw JSON")
    ap.add_argument("--out", default=None, help="write table.md and results.json here (default: --work)")
    ap.add_argument("--readme", default=None, help=f"rewrite the README section between {BEGIN} and {END}")
    ap.add_argument("--per-workload-process", action="store_true", help="one process per workload (per-workload peak GPU memory)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per bench process")
    ap.add_argument("--reuse", action="store_true", help="reuse the raw JSON of an earlier run in --work where both sides have it")
    ap.add_argument("--title", default="LM stages: rmteach vs PyTorch + transformers")
    ap.add_argument("--readme-from", default=None, metavar="TABLE_MD",
                    help="only rewrite --readme's section with the table.md file(s) of earlier runs (comma-separated), then exit")
    a = ap.parse_args()
    if a.readme_from:
        if not a.readme:
            sys.exit("--readme-from needs --readme")
        parts = []
        for path in a.readme_from.split(","):
            with open(path) as f:
                parts.append(f.read())
        write_readme(a.readme, "\n".join(parts))
        return

    if not os.path.exists(a.rmteach):
        sys.exit(f"--rmteach {a.rmteach}: no such binary (cargo build --release -p rmteach-cli)")
    workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in ALL:
            sys.exit(f"--workloads: unknown `{w}`; use {', '.join(ALL)}")
    threads = [int(t) for t in a.threads.split(",")]
    dtypes = [d.strip() for d in a.dtypes.split(",")]
    py = peer_python(a)
    out_dir = a.out or a.work
    os.makedirs(out_dir, exist_ok=True)
    gpu = a.device.startswith("cuda")
    if gpu:
        threads = threads[:1]

    rows, results, ok_all = [], [], True
    versions = {}
    for cfg in a.configs.split(","):
        name = os.path.splitext(os.path.basename(cfg))[0]
        d = os.path.join(a.work, f"{name}-b{a.batch}-p{a.prompt_len}-r{a.response_len}")
        if not os.path.exists(os.path.join(d, "inputs.json")):
            rc, so, se = sh([a.rmteach, "exp", "bench", "init", "--config", cfg, "--out", d, "--batch", str(a.batch),
                             "--prompt-len", str(a.prompt_len), "--response-len", str(a.response_len)])
            if rc != 0:
                sys.exit(f"bench init {cfg} failed: {se.strip()}")
        cfg_params = 0  # this config's parameter count (from its first rmteach report)
        for dtype in dtypes:
            for t in threads:
                env = dict(os.environ, RAYON_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
                groups = [[w] for w in workloads] if a.per_workload_process else [workloads]
                ours, theirs, peaks = {}, {}, {}
                for g in groups:
                    tag = f"{name}-{dtype}-t{t}-{'+'.join(g)}"
                    common = ["--dir", d, "--workloads", ",".join(g), "--reps", str(a.reps),
                              "--new-tokens", str(a.new_tokens), "--device", a.device, "--dtype", dtype]
                    o_path, t_path = os.path.join(a.work, f"ours-{tag}.json"), os.path.join(a.work, f"torch-{tag}.json")
                    if a.reuse and os.path.exists(o_path) and os.path.exists(t_path):
                        print(f"{tag}: reusing {o_path} and {t_path}", file=sys.stderr)
                        with open(o_path) as f:
                            o, oerr, opeak = json.load(f), "", 0.0
                        with open(t_path) as f:
                            th, terr, tpeak = json.load(f), "", 0.0
                    else:
                        for p in (o_path, t_path):
                            if os.path.exists(p):
                                os.remove(p)
                        print(f"[{datetime.datetime.now():%H:%M:%S}] {tag}: rmteach", file=sys.stderr, flush=True)
                        o, oerr, opeak = run_json([a.rmteach, "exp", "bench", "run", *common, "--out", o_path], env, o_path, gpu, a.timeout)
                        print(f"[{datetime.datetime.now():%H:%M:%S}] {tag}: torch", file=sys.stderr, flush=True)
                        th, terr, tpeak = run_json([py, os.path.join(HERE, "torch_peer.py"), *common, "--threads", str(t), "--out", t_path],
                                                   env, t_path, gpu, a.timeout)
                    for w in g:
                        ours[w] = (o or {}).get("workloads", {}).get(w) or {"error": oerr or "no result"}
                        theirs[w] = (th or {}).get("workloads", {}).get(w) or {"error": terr or "no result"}
                        peaks[w] = (opeak, tpeak)
                    if o:
                        versions.setdefault("ours", o)
                        cfg_params = cfg_params or o.get("params", 0)
                    if th:
                        versions.setdefault("torch", th)
                params = cfg_params
                for w in workloads:
                    ow, tw = ours[w], theirs[w]
                    if ow.get("error") or tw.get("error"):
                        agree = "error: " + "; ".join(f"{k} {v['error']}" for k, v in (("rmteach", ow), ("torch", tw)) if v.get("error"))[:300]
                        good = False
                    else:
                        good, agree = agreement(ow["check"], tw["check"], dtype)
                    ok_all &= good
                    om, tm = ow.get("median_s") or 0.0, tw.get("median_s") or 0.0
                    ratio = tm / om if om and tm else None
                    row = {"model": name, "params": params, "dtype": dtype, "threads": t, "workload": w,
                           "rmteach_s": om, "torch_s": tm, "ratio": ratio,
                           "rmteach_tok_s": ow.get("tokens_per_s"), "torch_tok_s": tw.get("tokens_per_s"),
                           "agree": agree, "ok": good}
                    if gpu:
                        row["rmteach_peak_mib"], row["torch_peak_mib"] = peaks[w]
                        row["torch_alloc_mib"] = tw.get("peak_alloc_mib")
                    rows.append(row)
                    results.append({"row": row, "rmteach": ow, "torch": tw})

    ours_v, torch_v = versions.get("ours", {}), versions.get("torch", {})
    head = [f"### {a.title}", "",
            f"Generated by `python3 benches/lm/run.py {' '.join(sys.argv[1:])}` on {datetime.date.today()}: "
            f"{machine(a.device)}; device {a.device}; {torch_v.get('framework', 'torch')}. "
            f"Batch {a.batch}, training sequence {a.prompt_len}+{a.response_len} tokens, sampling {a.prompt_len}+{a.new_tokens} "
            f"tokens (k = 2 samples of {a.batch // 2} prompts in the RLOO update); median of {a.reps} repetitions after a warm-up; "
            f"threads = RAYON_NUM_THREADS for rmteach and torch.set_num_threads for torch. "
            f"Ratio = torch / rmteach time: above 1 means rmteach is faster. "
            f"\"agree\" compares the warm-up's logits, losses, gradient norms and rewards on the identical saved weights "
            f"(largest difference shown; f32 tolerance 1e-4, gradient norm 1e-3 relative).", ""]
    cols = ["model", "params", "dtype", "threads", "workload", "rmteach", "torch", "ratio", "rmteach tok/s", "torch tok/s"]
    if gpu:
        cols += ["rmteach peak MiB", "torch peak MiB"]
    cols.append("agree")
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" if c in ("model", "dtype", "workload", "agree") else "---:" for c in cols) + " |"]
    for r in rows:
        cells = [r["model"], f"{r['params'] / 1e6:.1f}M", r["dtype"], str(r["threads"]), r["workload"],
                 fmt_s(r["rmteach_s"]), fmt_s(r["torch_s"]), f"{r['ratio']:.2f}" if r["ratio"] else "-",
                 f"{r['rmteach_tok_s']:.0f}" if r["rmteach_tok_s"] else "-", f"{r['torch_tok_s']:.0f}" if r["torch_tok_s"] else "-"]
        if gpu:
            cells += [f"{r['rmteach_peak_mib']:.0f}", f"{r['torch_peak_mib']:.0f}"]
        cells.append(r["agree"])
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(head + lines) + "\n"
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "machine": machine(a.device), "rows": rows, "raw": results,
                   "rmteach_threads_seen": ours_v.get("threads")}, f, indent=2)
    if a.readme:
        write_readme(a.readme, table)
    print(table)
    if not ok_all:
        print("some workloads failed or disagree (see the agree column)", file=sys.stderr)
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
