//! First crossings of observed scalars, located to the solver's tolerance.
//!
//! During integration every accepted step is observed; when an observable first
//! reaches its level between two steps, the bracket is kept and the crossing is then
//! refined by re-integrating from the bracket's left end (Illinois regula falsi),
//! so the reported time is as accurate as the integration itself.

use serde::{Serialize, Serializer};

use super::solver::{integrate_to, run, SolverConfig};
use super::VectorField;
use crate::Result;

/// "The first time `observe(y)[observable] >= level`".
#[derive(Debug, Clone, Copy)]
pub struct Threshold {
    /// Index into the observation vector.
    pub observable: usize,
    /// The level to reach.
    pub level: f64,
}

/// When a threshold was first reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossing {
    /// At this time.
    At(f64),
    /// Not before the horizon.
    BeyondHorizon(f64),
}

impl Crossing {
    /// The time, if the threshold was reached.
    pub fn time(&self) -> Option<f64> {
        match self {
            Crossing::At(t) => Some(*t),
            Crossing::BeyondHorizon(_) => None,
        }
    }
    /// A lower bound on the crossing time: the time itself, or the horizon.
    pub fn lower_bound(&self) -> f64 {
        match self {
            Crossing::At(t) | Crossing::BeyondHorizon(t) => *t,
        }
    }
}

impl std::fmt::Display for Crossing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Crossing::At(t) => write!(f, "{t:.6e}"),
            Crossing::BeyondHorizon(h) => write!(f, "> {h:.3e} (horizon)"),
        }
    }
}

/// Serialises as a number, or as the string `"> horizon H"`.
impl Serialize for Crossing {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Crossing::At(t) => s.serialize_f64(*t),
            Crossing::BeyondHorizon(h) => s.serialize_str(&format!("> horizon {h}")),
        }
    }
}

/// Observations at the accepted steps of an integration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trajectory {
    /// Step times, starting at 0.
    pub times: Vec<f64>,
    /// `observations[k]` = `observe(y(times[k]))`.
    pub observations: Vec<Vec<f64>>,
}

impl Trajectory {
    /// The series of one observable.
    pub fn series(&self, observable: usize) -> Vec<f64> {
        self.observations.iter().map(|o| o[observable]).collect()
    }
}

/// What an integration with events produced.
#[derive(Debug, Clone)]
pub struct FlowOutcome {
    /// One entry per threshold, in order.
    pub crossings: Vec<Crossing>,
    /// The time integration stopped.
    pub t_end: f64,
    /// The state there.
    pub y_end: Vec<f64>,
    /// Observations along the way (empty unless recording was asked for).
    pub trajectory: Trajectory,
    /// Right-hand-side evaluations, refinement included.
    pub rhs_evals: u64,
}

/// The observation function: state to scalars.
pub type Observe<'a> = &'a (dyn Fn(&[f64]) -> Vec<f64> + Sync);

/// A bracketed crossing awaiting refinement.
struct Bracket {
    t_a: f64,
    y_a: Vec<f64>,
    t_b: f64,
}

/// Integrates `field` from `y0` at `t = 0` up to `horizon`, locating the first time
/// each threshold is reached. Stops early once all are reached unless `record` asks
/// for the whole trajectory up to the horizon.
pub fn integrate_with_events(
    field: &dyn VectorField,
    y0: &[f64],
    horizon: f64,
    observe: Observe<'_>,
    thresholds: &[Threshold],
    record: bool,
    cfg: &SolverConfig,
) -> Result<FlowOutcome> {
    let obs0 = observe(y0);
    let mut brackets: Vec<Option<Bracket>> = thresholds.iter().map(|_| None).collect();
    let mut at_start: Vec<bool> = thresholds
        .iter()
        .map(|th| obs0[th.observable] >= th.level)
        .collect();
    let mut trajectory = Trajectory::default();
    if record {
        trajectory.times.push(0.0);
        trajectory.observations.push(obs0.clone());
    }
    let (mut t_prev, mut y_prev) = (0.0, y0.to_vec());
    let mut hook = |t: f64, y: &[f64]| -> bool {
        let obs = observe(y);
        let mut all = true;
        for (k, th) in thresholds.iter().enumerate() {
            if !at_start[k] && brackets[k].is_none() && obs[th.observable] >= th.level {
                brackets[k] = Some(Bracket {
                    t_a: t_prev,
                    y_a: y_prev.clone(),
                    t_b: t,
                });
            }
            all &= at_start[k] || brackets[k].is_some();
        }
        if record {
            trajectory.times.push(t);
            trajectory.observations.push(obs);
        }
        t_prev = t;
        y_prev.copy_from_slice(y);
        all && !record
    };
    let all_at_start = at_start.iter().all(|b| *b);
    let main = if all_at_start && !record {
        super::solver::SolverRun {
            t: 0.0,
            y: y0.to_vec(),
            rhs_evals: 0,
        }
    } else {
        run(field, Some(&mut hook), 0.0, horizon, y0, cfg)?
    };
    let mut rhs_evals = main.rhs_evals;
    let mut crossings = Vec::with_capacity(thresholds.len());
    for (k, th) in thresholds.iter().enumerate() {
        let c = if std::mem::take(&mut at_start[k]) {
            Crossing::At(0.0)
        } else if let Some(b) = brackets[k].take() {
            let (t, evals) = refine(field, observe, *th, &b, cfg)?;
            rhs_evals += evals;
            Crossing::At(t)
        } else {
            Crossing::BeyondHorizon(horizon)
        };
        crossings.push(c);
    }
    Ok(FlowOutcome {
        crossings,
        t_end: main.t,
        y_end: main.y,
        trajectory,
        rhs_evals,
    })
}

/// Locates the crossing inside a bracket by Illinois regula falsi, each trial point
/// evaluated by integrating from the bracket's left end.
fn refine(
    field: &dyn VectorField,
    observe: Observe<'_>,
    th: Threshold,
    b: &Bracket,
    cfg: &SolverConfig,
) -> Result<(f64, u64)> {
    let mut evals = 0;
    let mut g = |t: f64| -> Result<f64> {
        let (y, n) = integrate_to(field, b.t_a, t, &b.y_a, cfg)?;
        evals += n;
        Ok(observe(&y)[th.observable] - th.level)
    };
    let (mut a, mut fa) = (b.t_a, g(b.t_a)?);
    let (mut c, mut fc) = (b.t_b, g(b.t_b)?);
    if fc < 0.0 {
        // Re-integration puts the crossing a hair past the step: within tolerance of t_b.
        return Ok((b.t_b, evals));
    }
    let tol = 1e-13 * c.abs().max(1.0);
    let mut side = 0i8;
    let mut best = c;
    for _ in 0..200 {
        if (c - a).abs() <= tol {
            break;
        }
        let mut m = (a * fc - c * fa) / (fc - fa);
        if !(m > a && m < c) {
            m = 0.5 * (a + c);
        }
        let fm = g(m)?;
        best = m;
        if fm == 0.0 {
            break;
        }
        if fm > 0.0 {
            c = m;
            fc = fm;
            if side == 1 {
                fa *= 0.5;
            }
            side = 1;
        } else {
            a = m;
            fa = fm;
            if side == -1 {
                fc *= 0.5;
            }
            side = -1;
        }
    }
    Ok((best, evals))
}
