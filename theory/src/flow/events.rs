//! First crossings of observed scalars, located to the solver's tolerance.
//!
//! During integration every accepted step is observed, with each observable's exact
//! time derivative at the step's end (from the field value the step already computed:
//! for a softmax policy `d/dt E_pi r = Cov_pi(r, d theta/dt)`, one pass). A crossing is
//! located on the step's dense output (order 7 for Dop853, 4 for Dopri5; no
//! re-integration; Dop853 pays three evaluations for it), as SciPy's `solve_ivp` does.
//!
//! Unlike a test of the step ends alone (SciPy's too), a level that the observable
//! reaches and leaves again inside one step is not missed (the reward-hacking regime,
//! where `E[r_G]` rises and falls): with `g = observable - level`, values `g0 < 0`,
//! `g1` and slopes `s0`, `s1` at the step's ends, the step may hold a maximum when
//! - `s0 > 0 > s1` (the slope changes sign: an interior maximum), or
//! - the cubic Hermite interpolant of `(g0, s0, g1, s1)` has an interior local maximum
//!   within a margin `|g1 - g0| + h max(|s0|, |s1|)` (the step's own first-order
//!   variation) of the level: this covers a maximum and a minimum both inside, with
//!   slopes of one sign at the ends.
//!
//! Such a step is scanned: `g` is sampled on the dense output at [`SAMPLES`] interior
//! points and maximised (Brent) around every local maximum of the samples and of the end
//! slopes, in time order, and the first point where `g >= 0` is located by Illinois
//! regula falsi. A step without such a maximum that ends with `g1 >= 0` holds one
//! crossing, located directly. What is left out: a maximum that the step's end values
//! and slopes do not show at all (their cubic has none inside, or one more than a margin
//! below the level). An accepted step resolves the state, so `g` (a smooth function of
//! it) differs from that cubic by `O(h^4 g'''')`, far below its first-order variation;
//! the crate's property tests compare with a fine fixed-step reference on random
//! rise-and-fall instances.

use serde::{Serialize, Serializer};

use super::kernels::on_worker;
use super::solver::{SolverConfig, Stepper};
use super::VectorField;
use crate::{Result, TheoryError};

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
    /// Times `ode_solvers`' stiffness test fired (a diagnostic: see [`super::solver`]).
    pub stiffness_warnings: u32,
    /// Steps whose interior was scanned for a crossing on the dense output.
    pub scanned_steps: u32,
    /// When a [`Settled`] rule stopped the integration before the horizon.
    pub settled_at: Option<f64>,
}

/// Scalar observables of the state and their time derivatives along the flow.
///
/// Any closure `Fn(&[f64]) -> Vec<f64>` is an observer whose rates are central
/// differences along the field (relative accuracy about `1e-10`); implement the trait
/// (or use [`WithRates`]) to give exact ones.
pub trait Observer: Sync {
    /// The observables at `y`.
    fn observe(&self, y: &[f64]) -> Vec<f64>;
    /// The observables at `y` and their derivatives `d/dt observe(y(t))` where
    /// `dy/dt = f` (`f` is the field at `y`); the rates of the observables a
    /// threshold watches are read, the others may be anything.
    fn observe_with_rates(&self, y: &[f64], f: &[f64]) -> (Vec<f64>, Vec<f64>);
}

impl<F: Fn(&[f64]) -> Vec<f64> + Sync> Observer for F {
    fn observe(&self, y: &[f64]) -> Vec<f64> {
        self(y)
    }
    fn observe_with_rates(&self, y: &[f64], f: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let values = self(y);
        let big = f.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if big == 0.0 {
            return (values.clone(), vec![0.0; values.len()]);
        }
        // Moves every coordinate by at most 1e-5 (times its scale): truncation error
        // ~1e-10 relative, rounding ~1e-11.
        let scale = y.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let eps = 1e-5 * scale / big;
        let at = |sign: f64| -> Vec<f64> {
            let z: Vec<f64> = y.iter().zip(f).map(|(y, f)| y + sign * eps * f).collect();
            self(&z)
        };
        let (plus, minus) = (at(1.0), at(-1.0));
        let rates = plus
            .iter()
            .zip(&minus)
            .map(|(p, m)| (p - m) / (2.0 * eps))
            .collect();
        (values, rates)
    }
}

/// An observer from two closures: the observables, and the observables with their exact
/// rates (`(y, f) -> (values, rates)`, see [`Observer::observe_with_rates`]).
pub struct WithRates<V, R>(pub V, pub R);

impl<V, R> Observer for WithRates<V, R>
where
    V: Fn(&[f64]) -> Vec<f64> + Sync,
    R: Fn(&[f64], &[f64]) -> (Vec<f64>, Vec<f64>) + Sync,
{
    fn observe(&self, y: &[f64]) -> Vec<f64> {
        (self.0)(y)
    }
    fn observe_with_rates(&self, y: &[f64], f: &[f64]) -> (Vec<f64>, Vec<f64>) {
        (self.1)(y, f)
    }
}

/// The observer of an integration.
pub type Observe<'a> = &'a dyn Observer;

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
    integrate_with_events_until(field, y0, horizon, observe, thresholds, record, cfg, None)
}

/// A stated, checked reason to stop before the horizon: given the time, the state and
/// which thresholds were crossed, whether nothing the caller reports can change by more
/// than the bound it states (e.g. a flow certified to sit at its fixed point).
pub type Settled<'a> = &'a (dyn Fn(f64, &[f64], &[bool]) -> bool + Sync);

/// Accepted steps between two checks of a [`Settled`] rule.
pub const SETTLED_EVERY: u32 = 32;

/// [`integrate_with_events`] that also stops once `settled` holds (checked every
/// [`SETTLED_EVERY`] accepted steps; never while recording a trajectory, which asks for
/// the whole of it); [`FlowOutcome::settled_at`] says when.
#[allow(clippy::too_many_arguments)]
pub fn integrate_with_events_until(
    field: &dyn VectorField,
    y0: &[f64],
    horizon: f64,
    observe: Observe<'_>,
    thresholds: &[Threshold],
    record: bool,
    cfg: &SolverConfig,
    settled: Option<Settled<'_>>,
) -> Result<FlowOutcome> {
    on_worker(field.dim(), || {
        integrate_here(
            field, y0, horizon, observe, thresholds, record, cfg, settled,
        )
    })
}

/// [`integrate_with_events_until`] on the calling thread.
#[allow(clippy::too_many_arguments)]
fn integrate_here(
    field: &dyn VectorField,
    y0: &[f64],
    horizon: f64,
    observe: Observe<'_>,
    thresholds: &[Threshold],
    record: bool,
    cfg: &SolverConfig,
    settled: Option<Settled<'_>>,
) -> Result<FlowOutcome> {
    cfg.validate()?;
    let obs0 = observe.observe(y0);
    if let Some(th) = thresholds.iter().find(|th| th.observable >= obs0.len()) {
        return Err(TheoryError::invalid(
            "threshold",
            format!("watches observable {} of {}", th.observable, obs0.len()),
        ));
    }
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
            stiffness_warnings: 0,
            scanned_steps: 0,
            settled_at: None,
        });
    }
    let mut st = Stepper::new(field, 0.0, horizon, y0, cfg)?;
    let watching = !thresholds.is_empty();
    // Values and slopes at the last step's end (slopes only while thresholds watch).
    let mut prev = if watching {
        observed(observe, &st, thresholds)?
    } else {
        (obs0, Vec::new())
    };
    let mut scratch = Vec::new();
    let mut scanned_steps = 0;
    let (mut steps, mut settled_at) = (0u32, None);
    loop {
        let more = st.step()?;
        steps += 1;
        let now = if watching && !all_found(&crossings) {
            observed(observe, &st, thresholds)?
        } else {
            (observe.observe(st.y()), Vec::new())
        };
        for (k, th) in thresholds.iter().enumerate() {
            if crossings[k].is_some() {
                continue;
            }
            let o = th.observable;
            let ends = Ends {
                g0: prev.0[o] - th.level,
                s0: prev.1[o],
                g1: now.0[o] - th.level,
                s1: now.1[o],
            };
            let g = |st: &mut Stepper<'_>, t: f64, scratch: &mut Vec<f64>| {
                st.dense_at(t, scratch);
                observe.observe(scratch)[o] - th.level
            };
            match ends.action(st.t() - st.t_old()) {
                Action::Skip => {}
                Action::Locate => {
                    scratch.resize(st.y().len(), 0.0);
                    let (a, c) = ((st.t_old(), ends.g0), (st.t(), ends.g1));
                    crossings[k] = Some(Crossing::At(locate(&mut st, &g, a, c, &mut scratch)));
                }
                Action::Scan => {
                    scanned_steps += 1;
                    if let Some(t) = first_crossing(&mut st, ends, &g, &mut scratch) {
                        crossings[k] = Some(Crossing::At(t));
                    }
                }
            }
        }
        if record {
            trajectory.times.push(st.t());
            trajectory.observations.push(now.0.clone());
        }
        prev = now;
        if !more || (!record && all_found(&crossings)) {
            break;
        }
        if let Some(rule) = settled.filter(|_| !record && steps % SETTLED_EVERY == 0) {
            let crossed: Vec<bool> = crossings.iter().map(Option::is_some).collect();
            if rule(st.t(), st.y(), &crossed) {
                settled_at = Some(st.t());
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
        stiffness_warnings: run.stiffness_warnings,
        scanned_steps,
        settled_at,
    })
}

/// The observables and their rates at the stepper's point, the rates checked to cover
/// every watched observable.
fn observed(
    observe: Observe<'_>,
    st: &Stepper<'_>,
    thresholds: &[Threshold],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (values, rates) = observe.observe_with_rates(st.y(), st.f());
    if let Some(th) = thresholds
        .iter()
        .find(|th| th.observable >= values.len().min(rates.len()))
    {
        return Err(TheoryError::invalid(
            "observer",
            format!(
                "gives {} values and {} rates, threshold watches observable {}",
                values.len(),
                rates.len(),
                th.observable
            ),
        ));
    }
    Ok((values, rates))
}

/// Interior points sampled on the dense output of a scanned step.
pub const SAMPLES: usize = 7;

/// `g = observable - level` and its slope at the two ends of a step.
#[derive(Debug, Clone, Copy)]
struct Ends {
    g0: f64,
    s0: f64,
    g1: f64,
    s1: f64,
}

/// What a step calls for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    /// Nothing: the step stays below the level.
    Skip,
    /// It ends above the level with no maximum inside: locate the one crossing.
    Locate,
    /// It may have a maximum inside: scan its dense output.
    Scan,
}

impl Ends {
    /// What the step of size `h` calls for (see the module documentation).
    fn action(&self, h: f64) -> Action {
        let Ends { g0, s0, g1, s1 } = *self;
        let margin = (g1 - g0).abs() + h * s0.abs().max(s1.abs());
        let bump = (s0 > 0.0 && s1 < 0.0)
            || hermite_interior_max(g0, h * s0, g1, h * s1).is_some_and(|m| m >= -margin);
        if bump {
            Action::Scan
        } else if g1 >= 0.0 {
            Action::Locate
        } else {
            Action::Skip
        }
    }
}

/// The largest value at an interior local maximum in `(0, 1)` of the cubic with values
/// `g0`, `g1` and derivatives `d0`, `d1` (per unit of the normalised time) at 0 and 1;
/// `None` when it has none.
fn hermite_interior_max(g0: f64, d0: f64, g1: f64, d1: f64) -> Option<f64> {
    // H(s) = g0 + d0 s + a s^2 + b s^3.
    let a = 3.0 * (g1 - g0) - 2.0 * d0 - d1;
    let b = 2.0 * (g0 - g1) + d0 + d1;
    let h = |s: f64| g0 + s * (d0 + s * (a + s * b));
    let mut best: Option<f64> = None;
    // H'(s) = d0 + 2 a s + 3 b s^2.
    let (qa, qb, qc) = (3.0 * b, 2.0 * a, d0);
    let mut roots = [f64::NAN; 2];
    if qa.abs() <= 1e-14 * (qb.abs() + qc.abs()) {
        if qb != 0.0 {
            roots[0] = -qc / qb;
        }
    } else {
        let disc = qb * qb - 4.0 * qa * qc;
        if disc >= 0.0 {
            let q = -0.5 * (qb + qb.signum() * disc.sqrt());
            roots = [q / qa, if q != 0.0 { qc / q } else { f64::NAN }];
        }
    }
    for s in roots {
        // A maximum where H''(s) = 2 a + 6 b s < 0.
        if s > 0.0 && s < 1.0 && 2.0 * a + 6.0 * b * s < 0.0 {
            best = Some(best.map_or(h(s), |m| m.max(h(s))));
        }
    }
    best
}

/// `g` at a time of the stepper's last step, on its dense output.
type DenseG<'a> = dyn Fn(&mut Stepper<'_>, f64, &mut Vec<f64>) -> f64 + 'a;

/// The first time in the stepper's last step `[t0, t1]` with `g >= 0`, given `g(t0) < 0`
/// (see the module documentation), or `None`.
fn first_crossing(
    st: &mut Stepper<'_>,
    ends: Ends,
    g: &DenseG<'_>,
    scratch: &mut Vec<f64>,
) -> Option<f64> {
    scratch.resize(st.y().len(), 0.0);
    let (t0, t1) = (st.t_old(), st.t());
    let h = t1 - t0;
    let last = SAMPLES + 1;
    let mut ts = [0.0; SAMPLES + 2];
    let mut gs = [0.0; SAMPLES + 2];
    for (i, (t, v)) in ts.iter_mut().zip(gs.iter_mut()).enumerate() {
        *t = if i == last {
            t1
        } else {
            t0 + h * i as f64 / last as f64
        };
        *v = match i {
            0 => ends.g0,
            i if i == last => ends.g1,
            _ => g(st, *t, scratch),
        };
    }
    for j in 1..=last {
        if gs[j] >= 0.0 {
            return Some(locate(
                st,
                g,
                (ts[j - 1], gs[j - 1]),
                (ts[j], gs[j]),
                scratch,
            ));
        }
        // A maximum inside (t_{j-1}, t_{j+1}) (or the end intervals, by their slopes).
        let bracket = if j == 1 && ends.s0 > 0.0 && gs[1] <= gs[0] {
            Some((ts[0], ts[1]))
        } else if j < last && gs[j] >= gs[j - 1] && gs[j] >= gs[j + 1] {
            Some((ts[j - 1], ts[j + 1]))
        } else if j == last && ends.s1 < 0.0 && gs[last - 1] <= gs[last] {
            Some((ts[last - 1], ts[last]))
        } else {
            None
        };
        if let Some((a, b)) = bracket {
            if let Some((tm, gm)) = maximise_to_level(st, g, a, b, scratch) {
                return Some(locate(st, g, (ts[j - 1], gs[j - 1]), (tm, gm), scratch));
            }
        }
    }
    None
}

/// Brent's minimisation of `-g` on `[a, b]`, stopped as soon as a point with `g >= 0`
/// turns up: that point, or `None` when the maximum (to `sqrt(eps)` relative in time)
/// stays below the level.
fn maximise_to_level(
    st: &mut Stepper<'_>,
    g: &DenseG<'_>,
    mut a: f64,
    mut b: f64,
    scratch: &mut Vec<f64>,
) -> Option<(f64, f64)> {
    const GOLD: f64 = 0.381_966_011_250_105_1;
    let tol_rel = f64::EPSILON.sqrt();
    let width = b - a;
    let mut f = |t: f64, st: &mut Stepper<'_>| -g(st, t, scratch);
    let mut x = a + GOLD * (b - a);
    let (mut w, mut v) = (x, x);
    let mut fx = f(x, st);
    if fx <= 0.0 {
        return Some((x, -fx));
    }
    let (mut fw, mut fv) = (fx, fx);
    let (mut d, mut e) = (0.0f64, 0.0f64);
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        let tol = tol_rel * (x.abs() + width);
        let t2 = 2.0 * tol;
        if (x - m).abs() <= t2 - 0.5 * (b - a) {
            break;
        }
        let mut golden = true;
        if e.abs() > tol {
            // Parabola through x, w, v.
            let r = (x - w) * (fx - fv);
            let mut q = (x - v) * (fx - fw);
            let mut p = (x - v) * q - (x - w) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            let etemp = e;
            e = d;
            if p.abs() < (0.5 * q * etemp).abs() && p > q * (a - x) && p < q * (b - x) {
                d = p / q;
                let u = x + d;
                if u - a < t2 || b - u < t2 {
                    d = if m >= x { tol } else { -tol };
                }
                golden = false;
            }
        }
        if golden {
            e = if x >= m { a - x } else { b - x };
            d = GOLD * e;
        }
        let u = if d.abs() >= tol {
            x + d
        } else {
            x + tol * d.signum()
        };
        let fu = f(u, st);
        if fu <= 0.0 {
            return Some((u, -fu));
        }
        if fu <= fx {
            if u >= x {
                a = x;
            } else {
                b = x;
            }
            (v, fv, w, fw, x, fx) = (w, fw, x, fx, u, fu);
        } else {
            if u < x {
                a = u;
            } else {
                b = u;
            }
            if fu <= fw || w == x {
                (v, fv, w, fw) = (w, fw, u, fu);
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu);
            }
        }
    }
    None
}

/// Locates the crossing in `[a, c]` inside the stepper's last step, where
/// `g` goes from `g(a) < 0` to `g(c) >= 0`, by Illinois regula falsi on the dense output.
fn locate(
    st: &mut Stepper<'_>,
    g: &DenseG<'_>,
    (mut a, mut fa): (f64, f64),
    (mut c, mut fc): (f64, f64),
    scratch: &mut Vec<f64>,
) -> f64 {
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
        let fm = g(st, m, scratch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Method;

    #[test]
    fn the_cubic_shows_a_maximum_between_slopes_of_one_sign() {
        // p(s) = -2 - s + 6 s^2 - 4 s^3: slopes -1 at both ends, a minimum near 0.092
        // and a maximum near 0.908.
        let p = |s: f64| -2.0 - s + 6.0 * s * s - 4.0 * s * s * s;
        let s_max = (12.0 + 96f64.sqrt()) / 24.0;
        let m = hermite_interior_max(-2.0, -1.0, -1.0, -1.0).expect("a maximum inside");
        assert!((m - p(s_max)).abs() < 1e-12, "{m} vs {}", p(s_max));
        // Monotone cubics have none.
        assert_eq!(hermite_interior_max(-1.0, 0.5, -0.5, 0.5), None);
        assert_eq!(hermite_interior_max(-1.0, -0.5, -1.5, -0.5), None);
        let ends = Ends {
            g0: -2.0,
            s0: -1.0,
            g1: -1.0,
            s1: -1.0,
        };
        assert_eq!(ends.action(1.0), Action::Scan);
        let far = Ends {
            g0: -20.0,
            g1: -19.0,
            ..ends
        };
        assert_eq!(far.action(1.0), Action::Skip);
        let up = Ends {
            g0: -1.0,
            s0: 0.5,
            g1: 0.5,
            s1: 2.0,
        };
        assert_eq!(up.action(1.0), Action::Locate);
    }

    /// A field the solver integrates exactly (`y' = 1`), so its steps grow without bound,
    /// and an observable with a narrow bump `exp(-(y - 5)^2)` that no step end sees: the
    /// level 1/2 is first reached at `5 - sqrt(ln 2)`.
    #[test]
    fn a_bump_inside_one_long_step_is_found() {
        struct Drift;
        impl VectorField for Drift {
            fn dim(&self) -> usize {
                1
            }
            fn eval(&self, _y: &[f64], dy: &mut [f64]) {
                dy[0] = 1.0;
            }
        }
        let bump = |y: &[f64]| vec![(-(y[0] - 5.0).powi(2)).exp()];
        let exact = |y: &[f64], f: &[f64]| (bump(y), vec![-2.0 * (y[0] - 5.0) * bump(y)[0] * f[0]]);
        let want = 5.0 - 2f64.ln().sqrt();
        for method in [Method::Dop853, Method::Dopri5] {
            let cfg = SolverConfig {
                method,
                ..Default::default()
            };
            let th = [Threshold {
                observable: 0,
                level: 0.5,
            }];
            let out = integrate_with_events(
                &Drift,
                &[0.0],
                10.0,
                &WithRates(bump, exact),
                &th,
                true,
                &cfg,
            )
            .unwrap();
            let ends = &out.trajectory.times;
            // No step ends near the bump: the step-end test alone would miss it.
            assert!(
                !ends.iter().any(|t| (t - 5.0).abs() < 1.2),
                "{method:?}: steps {ends:?}"
            );
            let t = out.crossings[0].time().expect("found");
            assert!((t - want).abs() < 1e-9, "{method:?}: {t} vs {want}");
            assert!(out.scanned_steps >= 1);
        }
    }
}
