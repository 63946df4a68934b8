#!/usr/bin/env python3
"""SciPy peer for the theory benchmark: solves a batch of tabular instances (the JSON
that `rmteach theory flow --instance` reads, object or array) with solve_ivp on the same
KL-regularised logit flow (Lemma 7) and locates t_gamma for r_G and r_RM with SciPy's
events. Prints JSON: {"seconds": wall time of the solves, "results": [...]}."""
import json
import os
import sys
import time

# One thread (before numpy loads its BLAS): the comparison is single-threaded SciPy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def solve(inst, method, rtol, atol):
    s = inst.get("num_prompts", 1)
    lam, gamma, horizon = inst["lambda"], inst["gamma"], inst["horizon"]
    r_rm, r_g = np.array(inst["r_rm"], float), np.array(inst["r_g"], float)
    theta0 = np.array(inst["logits"], float) if "logits" in inst else np.log(np.array(inst["probs"], float))
    logp0 = np.log(softmax(theta0))

    def rhs(_t, theta):
        p = softmax(theta)
        rkl = r_rm - lam * (np.log(p) - logp0)
        return p * (rkl - p @ rkl) / s

    p0 = softmax(theta0)
    events = []
    for r in (r_g, r_rm):
        level = p0 @ r + gamma
        ev = lambda _t, th, r=r, level=level: softmax(th) @ r - level
        ev.terminal, ev.direction = False, 1
        events.append(ev)
    sol = solve_ivp(rhs, (0.0, horizon), theta0, method=method, rtol=rtol, atol=atol, events=events)
    first = [float(t[0]) if len(t) else None for t in sol.t_events]
    return {"t_gamma_g": first[0], "t_gamma_rm": first[1], "nfev": int(sol.nfev)}


def main():
    path, method, rtol, atol = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    data = json.load(open(path))
    batch = data if isinstance(data, list) else [data]
    start = time.perf_counter()
    results = [solve(i, method, rtol, atol) for i in batch]
    json.dump({"seconds": time.perf_counter() - start, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
