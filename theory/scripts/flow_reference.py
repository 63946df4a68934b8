#!/usr/bin/env python3
"""Independent reference for `rmteach theory flow`: SciPy's solve_ivp on the same
tabular KL-regularised flow (Lemma 7, logit space), t_gamma by SciPy's own event
location. Prints JSON with t_gamma_g and t_gamma_rm.

    python3 theory/scripts/flow_reference.py INSTANCE.json [--method DOP853|RK45] [--rtol 1e-12] [--atol 1e-14]

Needs numpy and scipy (pip install numpy scipy). Not used by the test suite.
"""
import argparse
import decimal
import json
import sys

import numpy as np
from scipy.integrate import solve_ivp


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def short(v):
    """`v` as `rmteach theory flow` writes a horizon: the shorter of the plain and the
    scientific shortest round-trip forms, plain on a tie (400, 0.01, 1e5, 1e-5)."""
    d = decimal.Decimal(repr(float(v)))
    plain = format(d.normalize(), "f") if d != d.to_integral_value() else str(int(d))
    sign, digits, exp = d.normalize().as_tuple()
    m = "".join(map(str, digits))
    sci = ("-" if sign else "") + m[0] + ("." + m[1:] if len(m) > 1 else "") + "e" + str(exp + len(m) - 1)
    return sci if len(sci) < len(plain) else plain


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instance")
    ap.add_argument("--method", default="DOP853")
    ap.add_argument("--rtol", type=float, default=1e-12)
    ap.add_argument("--atol", type=float, default=1e-14)
    a = ap.parse_args()
    inst = json.load(open(a.instance))
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
    out = {}
    for name, r in (("t_gamma_g", r_g), ("t_gamma_rm", r_rm)):
        level = p0 @ r + gamma
        ev = lambda _t, th, r=r, level=level: softmax(th) @ r - level
        ev.terminal, ev.direction = True, 1
        sol = solve_ivp(rhs, (0.0, horizon), theta0, method=a.method, rtol=a.rtol, atol=a.atol, events=ev)
        out[name] = float(sol.t_events[0][0]) if len(sol.t_events[0]) else f"> horizon {short(horizon)}"
        out[name + "_nfev"] = int(sol.nfev)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
