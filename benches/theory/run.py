#!/usr/bin/env python3
"""Theory benchmark: rmteach's gradient flow against SciPy's solve_ivp on identical work.

    python3 benches/theory/run.py [--reps 5] [--sweep 1000] [--large 100000] [--bin target/release/rmteach]

Installs numpy and scipy into .cache/bench-venv (from PyPI) on first use, runs
(a) a sweep of random instances with |Y| = 16 and lambda in [0, 0.1] and (b) one flow with
a large |Y|, both methods (DOP853 vs dop853, RK45 vs dopri5) at the same rtol/atol, checks
that t_gamma agrees to 1e-6 relative, and prints medians of --reps repetitions and ratios.
SciPy runs in one process, single-threaded; rmteach's threads are stated in the table.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, ".cache", "bench-venv")


def python_with_scipy():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "numpy", "scipy"])
    return py


def instances(n, size, seed, horizon):
    import random
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append({
            "num_prompts": 1,
            "lambda": rng.uniform(0.0, 0.1),
            "gamma": rng.uniform(0.05, 0.3),
            "logits": [rng.gauss(0, 1) for _ in range(size)],
            "r_rm": [rng.uniform(-1, 1) for _ in range(size)],
            "r_g": [rng.uniform(-1, 1) for _ in range(size)],
            "horizon": horizon,
        })
    return out


def ours(binary, path, method, rtol, atol, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    start = time.perf_counter()
    text = subprocess.check_output([binary, "theory", "flow", "--instance", path, "--method", method,
                                    "--rtol", str(rtol), "--atol", str(atol)], env=env)
    seconds = time.perf_counter() - start
    res = json.loads(text)["result"]
    return seconds, res if isinstance(res, list) else [res]


def theirs(py, path, method, rtol, atol):
    out = json.loads(subprocess.check_output([py, os.path.join(ROOT, "benches", "theory", "scipy_peer.py"),
                                              path, method, str(rtol), str(atol)]))
    return out["seconds"], out["results"]


def agree(a, b):
    worst = 0.0
    for x, y in zip(a, b):
        for k in ("t_gamma_g", "t_gamma_rm"):
            u, v = x[k], y[k]
            if isinstance(u, str) or v is None:
                if not (isinstance(u, str) and v is None):
                    return float("inf")
                continue
            worst = max(worst, abs(u - v) / abs(v))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sweep", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "rmteach"))
    ap.add_argument("--rtol", type=float, default=1e-10)
    ap.add_argument("--atol", type=float, default=1e-12)
    a = ap.parse_args()
    py = python_with_scipy()
    tmp = tempfile.mkdtemp()
    work = {
        f"(a) sweep {a.sweep} x |Y|=16": instances(a.sweep, 16, 1, 1e4),
        f"(b) one flow |Y|={a.large}": instances(1, a.large, 2, 1e4),
    }
    rows = []
    for name, batch in work.items():
        path = os.path.join(tmp, "batch.json")
        json.dump(batch, open(path, "w"))
        for ours_m, theirs_m in (("dop853", "DOP853"), ("dopri5", "RK45")):
            for threads in (1, os.cpu_count() or 1):
                t_ours, t_theirs, diff = [], [], 0.0
                for _ in range(a.reps):
                    s1, r1 = ours(a.bin, path, ours_m, a.rtol, a.atol, threads)
                    s2, r2 = theirs(py, path, theirs_m, a.rtol, a.atol)
                    t_ours.append(s1)
                    t_theirs.append(s2)
                    diff = max(diff, agree(r1, r2))
                mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
                rows.append((name, ours_m, threads, mo, mt, mt / mo, diff))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"rtol {a.rtol}, atol {a.atol}; medians of {a.reps}; SciPy single-threaded, times of its solves only; "
          "rmteach times are whole processes (start-up, JSON in and out)")
    print("| workload | method | rmteach threads | rmteach s | SciPy s | SciPy / rmteach | max rel. diff t_gamma |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.1f}x | {r[6]:.1e} |")


if __name__ == "__main__":
    main()
