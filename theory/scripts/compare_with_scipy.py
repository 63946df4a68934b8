#!/usr/bin/env python3
"""Compares `rmteach theory flow` with SciPy's solve_ivp (flow_reference.py) on random
tabular instances at tight tolerances; prints the largest relative t_gamma difference.

    python3 theory/scripts/compare_with_scipy.py [--n 20] [--bin target/release/rmteach]
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=20)
ap.add_argument("--bin", default="target/release/rmteach")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
worst = 0.0
for k in range(a.n):
    m = int(rng.integers(3, 16))
    inst = {"num_prompts": int(rng.integers(1, 5)), "lambda": float(rng.choice([0.0, 0.01, 0.1])),
            "gamma": float(rng.uniform(0.05, 0.3)), "logits": rng.normal(0, 1, m).tolist(),
            "r_rm": rng.uniform(-1, 1, m).tolist(), "r_g": rng.uniform(-1, 1, m).tolist(), "horizon": 1e4}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(inst, f)
    for ours_m, theirs_m in (("dop853", "DOP853"), ("dopri5", "RK45")):
        ours = json.loads(subprocess.check_output([a.bin, "theory", "flow", "--instance", f.name, "--method", ours_m,
                                                   "--rtol", "1e-12", "--atol", "1e-14"]))["result"]
        ref = json.loads(subprocess.check_output([sys.executable, os.path.join(here, "flow_reference.py"), f.name,
                                                  "--method", theirs_m]))
        for key in ("t_gamma_g", "t_gamma_rm"):
            o, r = ours[key], ref[key]
            if isinstance(o, str) or isinstance(r, str):
                assert isinstance(o, str) and isinstance(r, str), (k, key, o, r)
                continue
            d = abs(o - r) / r
            worst = max(worst, d)
            print(f"#{k} {ours_m:6} {key:10} ours {o:.12e} scipy {r:.12e} rel {d:.1e}")
    os.unlink(f.name)
print(f"largest relative difference: {worst:.2e}")
