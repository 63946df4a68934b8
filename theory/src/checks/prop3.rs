//! Proposition 3: for tabular policies, `t_gamma >= 2|S|(1 - e^(-gamma/2)) / sqrt(Var_{pi_0}[r_RM])`
//! for any reward (we measure both `r_G` and `r_RM`), and `t_gamma ~ Var^(-1/2)` under
//! reward scaling.

use rayon::prelude::*;

use super::{CheckConfig, CheckReport, Slope, Tally};
use crate::instance::TabularInstance;
use crate::measure::sample::{logits, pick, rewards, rng};

/// Runs the check.
pub fn run(cfg: &CheckConfig) -> CheckReport {
    let mut tally = Tally::new(
        "Proposition 3",
        "tabular: t_gamma >= 2|S|(1-e^(-gamma/2)) / sqrt(Var_pi0[r_RM])",
    );
    let mut rng = rng(cfg.seed, 3);
    let instances: Vec<TabularInstance> = (0..cfg.size(24, 400))
        .map(|_| {
            let n = pick(&mut rng, &[2, 3, 5, 10, 20]);
            let spread = pick(&mut rng, &[1.0, 0.3, 0.03]);
            let r_rm = rewards(&mut rng, n, -spread, spread);
            let r_g = rewards(&mut rng, n, -1.0, 1.0);
            let scale = pick(&mut rng, &[0.3, 1.0, 3.0]);
            TabularInstance {
                num_prompts: pick(&mut rng, &[1, 3, 10]),
                lambda: pick(&mut rng, &[0.0, 0.01, 0.1, 1.0]),
                gamma: pick(&mut rng, &[0.01, 0.1, 0.3, 0.6]) * spread,
                logits: Some(logits(&mut rng, n, scale)),
                probs: None,
                r_rm,
                r_g,
                horizon: 0.0,
            }
        })
        .map(|mut inst| {
            // A horizon well past the bound, so a crossing beyond it still certifies it.
            inst.horizon = 4.0 * inst.prop3_bound().expect("valid instance").max(1.0);
            inst
        })
        .collect();
    let results: Vec<_> = instances
        .par_iter()
        .map(|inst| (inst, inst.run(&cfg.solver, false)))
        .collect();
    let mut beyond = 0;
    for (i, (inst, res)) in results.into_iter().enumerate() {
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                tally.require(false, || format!("#{i}: integration failed: {e}: {inst:?}"));
                continue;
            }
        };
        for (name, c, bound) in [
            ("r_G", res.t_gamma_g, res.prop3_bound_g),
            ("r_RM", res.t_gamma_rm, res.prop3_bound_rm),
        ] {
            beyond += usize::from(c.time().is_none());
            tally.lower(c.lower_bound(), bound, || {
                format!(
                    "#{i} ({name}, t_gamma {c}): {}",
                    serde_json::to_string(inst).unwrap_or_default()
                )
            });
        }
    }
    tally.note(format!(
        "{beyond} of the t_gamma were beyond the horizon (4x the bound): counted as t_gamma >= horizon >= bound"
    ));
    scaling_law(cfg, &mut tally);
    tally.finish()
}

fn scaling_law(cfg: &CheckConfig, tally: &mut Tally) {
    let (mut vars, mut times) = (Vec::new(), Vec::new());
    for (k, p) in crate::measure::scaling::scaling_sweep(cfg.seed, cfg.size(3, 8), &cfg.solver)
        .into_iter()
        .enumerate()
    {
        match p {
            Ok(p) => {
                tally.lower(p.t_gamma.lower_bound(), p.bound, || {
                    format!("scaling sweep c = {}", p.c)
                });
                match p.t_gamma.time() {
                    Some(t) => {
                        vars.push(p.var);
                        times.push(t);
                    }
                    None => tally.require(false, || {
                        format!(
                            "scaling sweep c = {}: t_gamma(r_G) {} even after growing the horizon {}x \
                             (the lambda = 0 flow converges to argmax r_G, so the crossing exists)",
                            p.c,
                            p.t_gamma,
                            crate::measure::horizon::GROWTH.powi(crate::measure::horizon::MAX_GROWTHS as i32)
                        )
                    }),
                }
            }
            Err(e) => tally.require(false, || format!("scaling sweep point {k}: {e}")),
        }
    }
    tally.slope(Slope::fit(
        "integrator sanity check (an identity: r_RM = c r_G at lambda = 0 rescales time by 1/c): \
         log t_gamma(r_G) vs log Var",
        &vars,
        &times,
        -0.5,
        Some(0.01),
    ));
}
