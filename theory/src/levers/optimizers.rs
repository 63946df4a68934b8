//! The algorithms people run, set beside the flow across the variance sweep: SGD and
//! Adam, with exact gradients or `k` samples per prompt (RLOO).

use super::family::instance;
use super::sweep::Sweep;
use super::LeversConfig;
use crate::discrete::{self, DiscreteConfig, DiscreteOutcome, Estimate, Optimizer, Stop};
use crate::instance::TabularInstance;
use crate::Result;

/// A discrete run stops at this many times the flow's `t_gamma` (flow time) at the
/// latest; a run that has not crossed by then counts as not reached.
pub const HORIZON_FACTOR: f64 = 10.0;

/// The discrete methods measured: a name, the optimizer and the estimate.
pub fn methods(ks: &[usize], adam_k: usize) -> Vec<(String, Optimizer, Estimate)> {
    let mut m = vec![("SGD, exact".to_string(), Optimizer::Sgd, Estimate::Exact)];
    for &k in ks {
        m.push((
            format!("SGD, k = {k}"),
            Optimizer::Sgd,
            Estimate::Rloo { k },
        ));
    }
    m.push(("Adam, exact".to_string(), Optimizer::Adam, Estimate::Exact));
    m.push((
        format!("Adam, k = {adam_k}"),
        Optimizer::Adam,
        Estimate::Rloo { k: adam_k },
    ));
    m
}

/// One discrete run of `inst` by `method` (optimizer, estimate) at the sweep's
/// learning rate, without entropy bonus, seeded by `cfg.seed` and the run's `stream`
/// (distinct streams, distinct draws): the one set-up of every lever's discrete runs.
pub fn run_method(
    cfg: &LeversConfig,
    inst: &TabularInstance,
    (optimizer, estimate): (Optimizer, Estimate),
    stream: usize,
    stop: Stop,
) -> Result<DiscreteOutcome> {
    discrete::run(
        inst,
        &DiscreteConfig {
            lr: cfg.lr,
            optimizer,
            estimate,
            entropy: 0.0,
            seed: cfg.seed ^ (stream as u64).wrapping_mul(0x9E37_79B9),
            stop,
        },
    )
}

/// Every discrete method across the sweep, each run's horizon set from `flow` (the
/// gradient flow's sweep on the same instances).
pub fn optimizer_sweeps(cfg: &LeversConfig, flow: &Sweep) -> Result<Vec<Sweep>> {
    methods(&cfg.ks, cfg.adam_k)
        .into_iter()
        .map(|(name, optimizer, estimate)| {
            Sweep::measure(&name, cfg.instances, |i, beta| {
                let horizon = HORIZON_FACTOR * flow.t(i, beta).unwrap_or(1e3);
                let inst = instance(cfg.seed, i, beta, 1.0, horizon);
                let var0 = rmteach::metrics::reward_variance(&inst.initial_probs(), &inst.r_g)?;
                let out = run_method(cfg, &inst, (optimizer, estimate), i, Stop::Both)?;
                Ok((var0, out.t_gamma_g.time()))
            })
        })
        .collect()
}
