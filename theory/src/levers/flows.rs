//! Levers of the flow itself: the natural gradient and the entropy bonus, across the
//! variance sweep.

use super::family::instance;
use super::sweep::Sweep;
use super::LeversConfig;
use crate::flow::SolverConfig;
use crate::instance::Dynamics;
use crate::objective::Update;
use crate::Result;

/// A horizon no flow of the family needs (integration stops at the crossing; at
/// `lambda = 0` the flow converges to the best output, so the level is reached).
const HORIZON: f64 = 1e7;

/// The flow under `dynamics` across the sweep.
pub fn flow_sweep(
    method: &str,
    dynamics: Dynamics,
    cfg: &LeversConfig,
    solver: &SolverConfig,
) -> Result<Sweep> {
    Sweep::measure(method, cfg.instances, |i, beta| {
        let res = instance(cfg.seed, i, beta, 1.0, HORIZON).run_with(solver, false, &dynamics)?;
        Ok((res.var_g0, res.t_gamma_g.time()))
    })
}

/// The gradient flow (the paper's), the natural-gradient flow, and the gradient flow
/// with each entropy bonus of `cfg`.
pub fn flow_sweeps(cfg: &LeversConfig, solver: &SolverConfig) -> Result<Vec<Sweep>> {
    let mut out = vec![
        flow_sweep("PG flow", Dynamics::default(), cfg, solver)?,
        flow_sweep(
            "NPG flow",
            Dynamics {
                update: Update::Npg,
                entropy: 0.0,
            },
            cfg,
            solver,
        )?,
    ];
    for &tau in &cfg.entropies {
        out.push(flow_sweep(
            &format!("PG flow, entropy {tau}"),
            Dynamics {
                update: Update::Pg,
                entropy: tau,
            },
            cfg,
            solver,
        )?);
    }
    Ok(out)
}
