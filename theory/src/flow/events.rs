//! First crossings of observed scalars, located to the solver's tolerance.
//!
//! During integration every accepted step is observed; when an observable first
//! reaches its level inside a step, the crossing is located on that step's dense
//! output (Illinois regula falsi), as SciPy's `solve_ivp` does: the interpolant has the
//! integration's accuracy (order 7 for Dop853, 4 for Dopri5) and costs no
//! re-integration (Dop853 pays three evaluations per located crossing).

use serde::{Serialize, Serializer};

use super::kernels::on_worker;
use super::solver::{SolverConfig, Stepper};
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

/// Serialises as a number, or as the string `"> horizon H"` (H in
/// [`crate::json::short`] form: `> horizon 400`, `> horizon 1e5`).
impl Serialize for Crossing {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Crossing::At(t) => crate::json::f64(t, s),
            Crossing::BeyondHorizon(h) => {
                s.serialize_str(&format!("> horizon {}", crate::json::short(*h)))
            }
        }
    }
}

/// Observations at the accepted steps of an integration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trajectory {
    /// Step times, starting at 0.
    #[serde(serialize_with = "crate::json::f64s")]
    pub times: Vec<f64>,
    /// `observations[k]` = `observe(y(times[k]))`.
    #[serde(serialize_with = "crate::json::f64_rows")]
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
    /// Right-hand-side evaluations, the dense-output stages of located crossings included.
    pub rhs_evals: u64,
}

/// The observation function: state to scalars.
pub type Observe<'a> = &'a (dyn Fn(&[f64]) -> Vec<f64> + Sync);

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
    on_worker(field.dim(), || {
        integrate_here(field, y0, horizon, observe, thresholds, record, cfg)
    })
}

/// [`integrate_with_events`] on the calling thread.
fn integrate_here(
    field: &dyn VectorField,
    y0: &[f64],
    horizon: f64,
    observe: Observe<'_>,
    thresholds: &[Threshold],
    record: bool,
    cfg: &SolverConfig,
) -> Result<FlowOutcome> {
    cfg.validate()?;
    let obs0 = observe(y0);
    let mut crossings: Vec<Option<Crossing>> = thresholds
        .iter()
        .map(|th| (obs0[th.observable] >= th.level).then_some(Crossing::At(0.0)))
        .collect();
    let mut trajectory = Trajectory::default();
    if record {
        trajectory.times.push(0.0);
        trajectory.observations.push(obs0.clone());
    }
    let all_found = |c: &[Option<Crossing>]| c.iter().all(Option::is_some);
    if !record && all_found(&crossings) {
        return Ok(FlowOutcome {
            crossings: crossings.into_iter().flatten().collect(),
            t_end: 0.0,
            y_end: y0.to_vec(),
            trajectory,
            rhs_evals: 0,
        });
    }
    let mut st = Stepper::new(field, 0.0, horizon, y0, cfg)?;
    let mut prev = obs0;
    let mut scratch = Vec::new();
    {
        loop {
            let more = st.step()?;
            let obs = observe(st.y());
            for (k, th) in thresholds.iter().enumerate() {
                if crossings[k].is_none() && obs[th.observable] >= th.level {
                    let g0 = prev[th.observable] - th.level;
                    let g1 = obs[th.observable] - th.level;
                    let t = locate(&mut st, observe, *th, g0, g1, &mut scratch);
                    crossings[k] = Some(Crossing::At(t));
                }
            }
            if record {
                trajectory.times.push(st.t());
                trajectory.observations.push(obs.clone());
            }
            prev = obs;
            if !more || (!record && all_found(&crossings)) {
                break;
            }
        }
    }
    let crossings = crossings
        .into_iter()
        .map(|c| c.unwrap_or(Crossing::BeyondHorizon(horizon)))
        .collect();
    let t_end = st.t();
    let run = st.into_run();
    Ok(FlowOutcome {
        crossings,
        t_end,
        y_end: run.y,
        trajectory,
        rhs_evals: run.rhs_evals,
    })
}

/// Locates the crossing inside the stepper's last step, where `g = observe - level`
/// goes from `g0 < 0` (step start) to `g1 >= 0` (step end), by Illinois regula falsi
/// on the dense output.
fn locate(
    st: &mut Stepper<'_>,
    observe: Observe<'_>,
    th: Threshold,
    g0: f64,
    g1: f64,
    scratch: &mut Vec<f64>,
) -> f64 {
    scratch.resize(st.y().len(), 0.0);
    let (mut a, mut fa) = (st.t_old(), g0);
    let (mut c, mut fc) = (st.t(), g1);
    if fc == 0.0 {
        return c;
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
        st.dense_at(m, scratch);
        let fm = observe(scratch)[th.observable] - th.level;
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
    best
}
