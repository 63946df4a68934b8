//! The Dormand-Prince drivers: `ode_solvers`' Dopri5 and Dop853, stepped by our own loop.
//!
//! [`Stepper`] takes one step at a time exactly as `ode_solvers::{Dopri5, Dop853}::integrate`
//! does (their Butcher tableaux, copied in [`super::tableau`]; their step-size
//! [`Controller`]; the same initial step, error norms, stiffness test and stopping
//! rule), so it takes the same steps up to rounding. One intended deviation: where
//! `ode_solvers` stops with "The problem seems to become stiff", we go on and count the
//! detection (`stiffness_warnings` of [`super::FlowOutcome`]). Its test (Hairer's: the step size sits at
//! the explicit method's stability limit, 15 times in a row) fires on every
//! KL-regularised flow that settles at its fixed point for long (large `lambda` or
//! horizon). Such a flow is not a failure: SciPy's DOP853, which has no such test,
//! integrates it, and so do we (the step-size controller keeps the integration stable,
//! at the price of more steps); the step-count limit and step-size underflow still stop
//! it, with advice. It drives them differently in three ways, each measured to matter
//! (see `benches/theory/`):
//! - no allocation per step: stages live in preallocated buffers and each stage's state
//!   `y + h sum_j a_ij k_j` is one blocked pass (`ode_solvers` builds it from a fresh
//!   temporary vector per term: 66 per Dop853 step, most of the time at |Y| = 10^5),
//!   or, for a field that can ([`VectorField::eval_combined`], the tabular one), is
//!   formed block by block inside the right-hand side's kernel and never stored;
//! - no stored trajectory: `ode_solvers` keeps every accepted state, we keep one;
//! - the dense output of the last step on demand (order 7 for Dop853, 4 for Dopri5),
//!   which `ode_solvers` does not expose for Dop853: event times are located on it
//!   instead of by re-integrating (as SciPy's `solve_ivp` does).
//!
//! The module's tests check the loop against `ode_solvers`' own `integrate()`.

use ode_solvers::controller::Controller;
use serde::{Deserialize, Serialize};

use super::kernels::{combine, finish_step, on_worker};
use super::tableau::{dopri54, dopri853};
use super::VectorField;
use crate::{Result, TheoryError};

/// The explicit Runge-Kutta pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Dormand-Prince 5(4).
    Dopri5,
    /// Dormand-Prince 8(5,3).
    #[default]
    Dop853,
}

impl std::str::FromStr for Method {
    type Err = TheoryError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "dopri5" | "rk45" => Ok(Method::Dopri5),
            "dop853" => Ok(Method::Dop853),
            other => Err(TheoryError::invalid(
                "method",
                format!("unknown method `{other}`: use dopri5 or dop853"),
            )),
        }
    }
}

/// Method and tolerances of one integration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SolverConfig {
    /// The Runge-Kutta pair.
    pub method: Method,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Largest number of steps before giving up.
    pub max_steps: u32,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            method: Method::Dop853,
            rtol: 1e-10,
            atol: 1e-12,
            max_steps: 1_000_000,
        }
    }
}

impl SolverConfig {
    /// The same method with other tolerances.
    pub fn with_tol(self, rtol: f64, atol: f64) -> Self {
        Self { rtol, atol, ..self }
    }

    /// Checks the tolerances.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(TheoryError::invalid(
                    name,
                    format!("must be in (0, 1), got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Which of the tableau's columns a stage combines, with their coefficients (1-based
/// column `j` lives in buffer slot `j - 1`).
type Row = Vec<(usize, f64)>;

fn row(coefs: impl IntoIterator<Item = (usize, f64)>) -> Row {
    coefs.into_iter().filter(|(_, a)| *a != 0.0).collect()
}

/// How a pair turns its error sums into the error norm the controller judges.
#[derive(Debug, Clone, Copy)]
enum ErrorNorm {
    /// `sqrt(sum (h e_j k_j / sc)^2 / n)` (Dopri5).
    Single,
    /// Hairer's blend of the 5th- and 3rd-order estimates (Dop853):
    /// `|h| err / sqrt(n (err + 0.01 err2))`.
    Blend53,
}

/// The step-size controller's parameters (`ode_solvers`' [`Controller`]).
#[derive(Debug, Clone, Copy)]
struct ControllerParams {
    alpha: f64,
    beta: f64,
    fac_max: f64,
    fac_min: f64,
    safety: f64,
}

/// A method as data: its Butcher tableau read once into stage rows, its error estimate,
/// dense output, stiffness test and controller parameters. The [`Stepper`] is generic
/// over it and never asks which method it runs.
struct Tableau {
    /// Order of the propagated solution (sets the initial step).
    order: f64,
    /// Stage rows `a(s, .)` for `s = 2..=last_stage`, then the dense stages (index
    /// `last_stage - 1` onwards).
    a: Vec<Row>,
    /// The last stage of a trial step (its evaluations: `last_stage - 1`).
    last_stage: usize,
    /// Dense-output stages evaluated only when an event is located: `(row, stage)`.
    dense_stages: Vec<(usize, usize)>,
    /// The step's end: per column `j`, the solution weight `b_j`, the error weight
    /// `e_j` and (Dop853) the second error estimate's weight `b_j - bhh_j`.
    fin: Vec<(usize, f64, f64, f64)>,
    /// How the error sums become the error norm the controller judges.
    error: ErrorNorm,
    /// Slot of `F` at the new point (first same as last).
    fsal: usize,
    /// Whether `F` at the new point is evaluated after acceptance (Dop853's column 13)
    /// rather than being the last stage's (Dopri5's stage 7).
    fsal_after_accept: bool,
    /// Stage slots (incl. the new point's and dense stages).
    slots: usize,
    /// Dense-output rows: Dopri5 one (`d`), Dop853 four (`d(4..=7, .)`); the dense
    /// coefficients are three fixed ones plus one per row.
    d: Vec<Row>,
    /// The stiffness test: slots `(f_a, f_b)` whose difference it measures (against
    /// the states they were evaluated at) and the threshold of `h lambda`.
    stiffness: (usize, usize, f64),
    controller: ControllerParams,
}

impl Tableau {
    fn new(method: Method) -> Self {
        match method {
            Method::Dopri5 => Self {
                order: 5.0,
                a: (2..=7)
                    .map(|s| row((1..s).map(|j| (j, dopri54::a(s, j)))))
                    .collect(),
                last_stage: 7,
                dense_stages: Vec::new(),
                fin: (1..=7)
                    .map(|j| {
                        let b = if j < 7 { dopri54::a(7, j) } else { 0.0 };
                        (j, b, dopri54::e(j), 0.0)
                    })
                    .filter(|(_, b, e, _)| *b != 0.0 || *e != 0.0)
                    .collect(),
                error: ErrorNorm::Single,
                fsal: 6,
                fsal_after_accept: false,
                slots: 7,
                d: vec![row((1..=7).map(|j| (j, dopri54::d(j))))],
                stiffness: (6, 5, 3.25),
                // alpha = 0.2 - 0.75 beta, beta 0.04, fac_max 10, fac_min 0.2, safety 0.9.
                controller: ControllerParams {
                    alpha: 0.2 - 0.04 * 0.75,
                    beta: 0.04,
                    fac_max: 10.0,
                    fac_min: 0.2,
                    safety: 0.9,
                },
            },
            Method::Dop853 => Self {
                order: 8.0,
                a: (2..=12)
                    .chain(14..=16)
                    .map(|s| row((1..s).map(|j| (j, dopri853::a(s, j)))))
                    .collect(),
                last_stage: 12,
                dense_stages: (14..=16).map(|s| (s - 3, s)).collect(),
                fin: (1..=12)
                    .map(|j| {
                        let b = dopri853::b(j);
                        // err_bhh = sum b k - bhh1 k1 - bhh2 k9 - bhh3 k12.
                        let bhh = match j {
                            1 => dopri853::bhh(1),
                            9 => dopri853::bhh(2),
                            12 => dopri853::bhh(3),
                            _ => 0.0,
                        };
                        (j, b, dopri853::e(j), b - bhh)
                    })
                    .filter(|(_, b, e, g)| *b != 0.0 || *e != 0.0 || *g != 0.0)
                    .collect(),
                error: ErrorNorm::Blend53,
                fsal: 12,
                fsal_after_accept: true,
                slots: 16,
                d: (4..=7)
                    .map(|i| row((1..=16).map(|j| (j, dopri853::d(i, j)))))
                    .collect(),
                stiffness: (12, 11, 6.1),
                // alpha = 1/8 - 0.2 beta, beta 0, fac_max 6, fac_min 0.333, safety 0.9.
                controller: ControllerParams {
                    alpha: 1.0 / 8.0,
                    beta: 0.0,
                    fac_max: 6.0,
                    fac_min: 0.333,
                    safety: 0.9,
                },
            },
        }
    }

    /// The controller for a run whose largest step is `h_max` in direction `posneg`.
    fn controller(&self, h_max: f64, posneg: f64) -> Controller<f64> {
        let c = self.controller;
        Controller::new(
            c.alpha, c.beta, c.fac_max, c.fac_min, h_max, c.safety, posneg,
        )
    }
}

/// `ode_solvers`' defaults for `n_stiff` and the stiffness thresholds.
const N_STIFF: u32 = 1000;
const MAX_STIFF_ITERATIONS: u32 = 15;
const NON_STIFF_RESET_COUNT: u32 = 6;

/// One Dormand-Prince integration, advanced a step at a time.
///
/// Between steps it holds the last accepted step: `(t_old, y_old)` to `(t, y)`, with
/// its stages, so [`Stepper::dense_at`] can interpolate inside it.
pub(crate) struct Stepper<'f> {
    field: &'f dyn VectorField,
    tableau: Tableau,
    rtol: f64,
    atol: f64,
    max_steps: u32,
    controller: Controller<f64>,
    t_end: f64,
    posneg: f64,
    /// Start and end of the last accepted step (equal before the first).
    t_old: f64,
    t: f64,
    /// Its size.
    h_old: f64,
    /// The next step size to try.
    h: f64,
    y_old: Vec<f64>,
    y: Vec<f64>,
    /// Stage derivatives: slot `j - 1` holds column `j` of the tableau. Dop853: 12
    /// stages, `f(t, y)` of the new point (column 13) and dense stages 14-16; Dopri5: 7
    /// stages, the 7th being `f(t, y)` of the new point.
    k: Vec<Vec<f64>>,
    /// A stage's state (unfused fields), the fused kernel's scratch otherwise; the
    /// stiffness test forms the state it needs here again.
    y_stage: Vec<f64>,
    /// Dense coefficients of the last step and whether they are current.
    rcont: Vec<Vec<f64>>,
    dense_ready: bool,
    /// Whether the FSAL swap (new point becomes the base) is pending.
    advanced: bool,
    finished: bool,
    n_step: u32,
    accepted: u32,
    iasti: u32,
    non_stiff: u32,
    /// Times `ode_solvers`' stiffness test fired (where it would have stopped).
    stiffness_warnings: u32,
    /// Right-hand-side evaluations so far.
    pub rhs_evals: u64,
}

impl<'f> Stepper<'f> {
    /// Starts at `(t0, y0)` towards `t1 > t0`; computes the initial step as `ode_solvers` does.
    pub fn new(
        field: &'f dyn VectorField,
        t0: f64,
        t1: f64,
        y0: &[f64],
        cfg: &SolverConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let n = y0.len();
        let tableau = Tableau::new(cfg.method);
        let h_max = t1 - t0;
        let posneg = if h_max > 0.0 { 1.0 } else { -1.0 };
        let (slots, dense) = (tableau.slots, 3 + tableau.d.len());
        let controller = tableau.controller(h_max, posneg);
        let mut s = Self {
            field,
            tableau,
            rtol: cfg.rtol,
            atol: cfg.atol,
            max_steps: cfg.max_steps,
            controller,
            t_end: t1,
            posneg,
            t_old: t0,
            t: t0,
            h_old: 0.0,
            h: 0.0,
            y_old: y0.to_vec(),
            y: y0.to_vec(),
            // One zeroed allocation per buffer (not `vec![v; slots]`, which clones one,
            // writing every page): a buffer costs its page faults only once used, and
            // the dense slots and coefficients are used only where an event is located.
            k: (0..slots).map(|_| vec![0.0; n]).collect(),
            y_stage: vec![0.0; n],
            rcont: (0..dense).map(|_| vec![0.0; n]).collect(),
            dense_ready: false,
            advanced: false,
            finished: t1 == t0,
            n_step: 0,
            accepted: 0,
            iasti: 0,
            non_stiff: 0,
            stiffness_warnings: 0,
            rhs_evals: 0,
        };
        if !s.finished {
            s.h = s.initial_step();
        }
        Ok(s)
    }

    /// `ode_solvers`' `hinit` (Hairer's), leaving `f(t0, y0)` in slot 0. Two evaluations.
    fn initial_step(&mut self) -> f64 {
        let (rtol, atol) = (self.rtol, self.atol);
        let [f0, f1, ..] = &mut self.k[..] else {
            unreachable!("at least two stage slots")
        };
        self.field.eval(&self.y, f0);
        let (mut d0, mut d1) = (0.0, 0.0);
        for (y, f) in self.y.iter().zip(f0.iter()) {
            let sc = atol + y.abs() * rtol;
            d0 += (y / sc) * (y / sc);
            d1 += (f / sc) * (f / sc);
        }
        let mut h0 = if d0 < 1e-10 || d1 < 1e-10 {
            1e-6
        } else {
            0.01 * (d0 / d1).sqrt()
        };
        h0 = h0.min(self.controller.h_max()) * self.posneg;
        let terms: [(f64, &[f64]); 1] = [(1.0, f0)];
        if !self
            .field
            .eval_combined(&self.y, h0, &terms, &mut self.y_stage, f1)
        {
            combine(&mut self.y_stage, Some(&self.y), h0, &terms);
            self.field.eval(&self.y_stage, f1);
        }
        self.rhs_evals += 2;
        let mut d2 = 0.0;
        for ((y, a), b) in self.y.iter().zip(f0.iter()).zip(f1.iter()) {
            let sc = atol + y.abs() * rtol;
            d2 += ((b - a) / sc) * ((b - a) / sc);
        }
        d2 = d2.sqrt() / h0;
        let order = self.tableau.order;
        let h1 = if d1.sqrt().max(d2.abs()) <= 1e-15 {
            1e-6f64.max(h0.abs() * 1e-3)
        } else {
            (0.01 / d1.sqrt().max(d2)).powf(1.0 / order)
        };
        (100.0 * h0.abs()).min(h1.min(self.controller.h_max())) * self.posneg
    }

    /// The time reached.
    pub fn t(&self) -> f64 {
        self.t
    }
    /// The state there.
    pub fn y(&self) -> &[f64] {
        &self.y
    }
    /// The start of the last accepted step.
    pub fn t_old(&self) -> f64 {
        self.t_old
    }
    /// `F(y)` at the time reached: the field the last step already evaluated there (its
    /// first-same-as-last stage; before the first step, `F(y0)` of the initial-step
    /// computation). Costs nothing.
    pub fn f(&self) -> &[f64] {
        if self.advanced {
            &self.k[self.tableau.fsal]
        } else {
            &self.k[0]
        }
    }
    /// Consumes the stepper: final state and evaluations.
    pub fn into_run(self) -> SolverRun {
        SolverRun {
            y: self.y,
            rhs_evals: self.rhs_evals,
            stiffness_warnings: self.stiffness_warnings,
        }
    }

    /// `out = base + h sum_j coef_j k_j` over one row of coefficients.
    fn combine_row(
        k: &[Vec<f64>],
        out: &mut [f64],
        base: Option<&[f64]>,
        h: f64,
        row: &[(usize, f64)],
    ) {
        let mut terms: [(f64, &[f64]); 16] = [(0.0, &[]); 16];
        for (t, (j, a)) in terms.iter_mut().zip(row) {
            *t = (*a, &k[j - 1][..]);
        }
        combine(out, base, h, &terms[..row.len()]);
    }

    /// Evaluates stage `s` (1-based; its row is `a[r]`) of a step of size `h` into slot
    /// `s - 1`: fused with the state's combination where the field can
    /// ([`VectorField::eval_combined`]; `y_stage` is then its scratch), else the state
    /// into `y_stage` and [`VectorField::eval`] on it.
    fn stage(&mut self, r: usize, s: usize, h: f64) {
        let row = &self.tableau.a[r];
        // The row reads columns j < s (slots below s - 1) and writes slot s - 1.
        let (done, rest) = self.k.split_at_mut(s - 1);
        let mut terms: [(f64, &[f64]); 16] = [(0.0, &[]); 16];
        for (t, (j, a)) in terms.iter_mut().zip(row) {
            *t = (*a, &done[j - 1][..]);
        }
        let (terms, dy) = (&terms[..row.len()], &mut rest[0]);
        if !self
            .field
            .eval_combined(&self.y_old, h, terms, &mut self.y_stage, dy)
        {
            combine(&mut self.y_stage, Some(&self.y_old), h, terms);
            self.field.eval(&self.y_stage, dy);
        }
    }

    /// `y = y_old + h sum b_j k_j` and the two error sums of the step (see [`finish_step`]).
    fn finish(&mut self, h: f64, eh: f64) -> (f64, f64) {
        let mut terms: [(f64, f64, f64, &[f64]); 16] = [(0.0, 0.0, 0.0, &[]); 16];
        let fin = &self.tableau.fin;
        for (t, (j, b, e, g)) in terms.iter_mut().zip(fin) {
            *t = (*b, *e, *g, &self.k[j - 1][..]);
        }
        finish_step(
            &mut self.y,
            &self.y_old,
            h,
            eh,
            &terms[..fin.len()],
            (self.rtol, self.atol),
        )
    }

    /// One trial step of size `h`: the stages after the first (Dopri5's last one is the
    /// new point, whose state `finish` then writes into `y` by the same sums in the same
    /// order: `b_j = a_7j`, the extra `b_7 = 0` term adds exactly 0); the error norm.
    fn try_step(&mut self, h: f64) -> f64 {
        let last = self.tableau.last_stage;
        for s in 2..=last {
            self.stage(s - 2, s, h);
        }
        self.rhs_evals += (last - 1) as u64;
        let n = self.y.len() as f64;
        match self.tableau.error {
            ErrorNorm::Single => {
                let (e, _) = self.finish(h, h);
                (e / n).sqrt()
            }
            ErrorNorm::Blend53 => {
                let (err, err2) = self.finish(h, 1.0);
                let mut deno = err + 0.01 * err2;
                if deno <= 0.0 {
                    deno = 1.0;
                }
                h.abs() * err * (1.0 / (deno * n)).sqrt()
            }
        }
    }

    /// `ode_solvers`' stiffness test after an accepted step (every `N_STIFF` steps, and
    /// every step while it suspects stiffness). Where `ode_solvers` stops, this counts a
    /// warning and starts the count again.
    fn stiffness_check(&mut self, h: f64) {
        if !(self.accepted % N_STIFF == 0 || self.iasti > 0) {
            return;
        }
        // (f_new - f_prev_stage) against (y_new - y_prev_stage).
        let (fa, fb, threshold) = self.tableau.stiffness;
        // The state of stage fb + 1 (row fb - 1), which the fused stages never write:
        // formed again from the step's stages (the same bits `stage` would form).
        Self::combine_row(
            &self.k,
            &mut self.y_stage,
            Some(&self.y_old),
            h,
            &self.tableau.a[fb - 1],
        );
        let num: f64 = self.k[fa]
            .iter()
            .zip(&self.k[fb])
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let den: f64 = self
            .y
            .iter()
            .zip(&self.y_stage)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let h_lamb = if den > 0.0 {
            h * (num / den).sqrt()
        } else {
            0.0
        };
        if h_lamb > threshold {
            self.non_stiff = 0;
            self.iasti += 1;
            if self.iasti == MAX_STIFF_ITERATIONS {
                self.stiffness_warnings += 1;
                self.iasti = 0;
            }
        } else {
            self.non_stiff += 1;
            if self.non_stiff == NON_STIFF_RESET_COUNT {
                self.iasti = 0;
            }
        }
    }

    /// Takes one accepted step (retrying rejected ones); returns `Ok(true)` while not finished.
    pub fn step(&mut self) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        if self.advanced {
            // First same as last: the new point's derivative becomes stage 1, the new
            // point the base.
            self.k.swap(0, self.tableau.fsal);
            std::mem::swap(&mut self.y_old, &mut self.y);
            self.advanced = false;
        } else {
            // The first step: slot 0 holds f(t0, y0) from the initial-step computation.
            self.y_old.copy_from_slice(&self.y);
        }
        let mut last = false;
        loop {
            if self.n_step >= self.max_steps {
                return Err(TheoryError::Integration(format!(
                    "stopped at t = {} of {}: more than {} steps were needed (the step size \
                     is limited by stability or accuracy here); give a shorter horizon or \
                     looser tolerances (--rtol/--atol), or raise the limit (--max-steps)",
                    self.t, self.t_end, self.n_step
                )));
            }
            if 0.1 * self.h.abs() <= f64::EPSILON * self.t.abs() {
                return Err(TheoryError::Integration(format!(
                    "stopped at t = {}: the step size underflowed (below 10 ulp of t; the \
                     flow is too fast there for the tolerances); loosen --rtol/--atol or \
                     check the instance's scale",
                    self.t
                )));
            }
            if (self.t + 1.01 * self.h - self.t_end) * self.posneg > 0.0 {
                self.h = self.t_end - self.t;
                last = true;
            }
            self.n_step += 1;
            let h = self.h;
            let err = self.try_step(h);
            let mut h_new = 0.0;
            if !self.controller.accept(err, h, &mut h_new) {
                last = false;
                self.h = h_new;
                continue;
            }
            self.accepted += 1;
            if self.tableau.fsal_after_accept {
                // The new point's derivative (Dop853's column 13).
                self.field.eval(&self.y, &mut self.k[self.tableau.fsal]);
                self.rhs_evals += 1;
            }
            self.stiffness_check(h);
            self.t_old = self.t;
            self.t += h;
            self.h_old = h;
            self.h = h_new;
            self.advanced = true;
            self.dense_ready = false;
            self.finished = last;
            if self.y.iter().any(|v| !v.is_finite()) {
                return Err(TheoryError::Integration(format!(
                    "state became non-finite at t = {}",
                    self.t
                )));
            }
            return Ok(!self.finished);
        }
    }

    /// Prepares the dense output of the last accepted step (Dop853: three more
    /// evaluations, as `ode_solvers`' and SciPy's do).
    fn prepare_dense(&mut self) {
        if self.dense_ready || !self.advanced {
            return;
        }
        let h = self.h_old;
        for i in 0..self.tableau.dense_stages.len() {
            let (r, s) = self.tableau.dense_stages[i];
            self.stage(r, s, h);
        }
        self.rhs_evals += self.tableau.dense_stages.len() as u64;
        let f_new = self.tableau.fsal;
        {
            let [r1, r2, r3, ..] = &mut self.rcont[..] else {
                unreachable!("at least four dense coefficients")
            };
            let (k1, kn) = (&self.k[0], &self.k[f_new]);
            for i in 0..self.y.len() {
                let ydiff = self.y[i] - self.y_old[i];
                let bspl = h * k1[i] - ydiff;
                r1[i] = ydiff;
                r2[i] = bspl;
                r3[i] = ydiff - h * kn[i] - bspl;
            }
        }
        for (r, d) in self.rcont[3..].iter_mut().zip(&self.tableau.d) {
            Self::combine_row(&self.k, r, None, h, d);
        }
        self.dense_ready = true;
    }

    /// The dense-output state at `t` inside the last accepted step, into `out`.
    pub fn dense_at(&mut self, t: f64, out: &mut [f64]) {
        self.prepare_dense();
        let th = (t - self.t_old) / self.h_old;
        let th1 = 1.0 - th;
        let r = &self.rcont;
        // Hairer's nested form: y_old + th (r0 + th1 (r1 + th (r2 + th1 inner))) with
        // inner = r3 + th (r4 + th1 (r5 + th (r6 ...))), factors alternating from r3 on.
        for i in 0..out.len() {
            let mut inner = r[r.len() - 1][i];
            for k in (3..r.len() - 1).rev() {
                let f = if (k - 3) % 2 == 0 { th } else { th1 };
                inner = r[k][i] + f * inner;
            }
            out[i] =
                self.y_old[i] + th * (r[0][i] + th1 * (r[1][i] + th * (r[2][i] + th1 * inner)));
        }
    }
}

/// What one solver run ended with.
pub(crate) struct SolverRun {
    pub y: Vec<f64>,
    pub rhs_evals: u64,
    pub stiffness_warnings: u32,
}

/// The state at `t1` of the flow started at `(t0, y0)`, with the number of
/// right-hand-side evaluations it took.
pub fn integrate_to(
    field: &dyn VectorField,
    t0: f64,
    t1: f64,
    y0: &[f64],
    cfg: &SolverConfig,
) -> Result<(Vec<f64>, u64)> {
    if t1 == t0 {
        return Ok((y0.to_vec(), 0));
    }
    on_worker(field.dim(), || {
        let mut st = Stepper::new(field, t0, t1, y0, cfg)?;
        while st.step()? {}
        let r = st.into_run();
        Ok((r.y, r.rhs_evals))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DVector;
    use ode_solvers::dop_shared::{OutputType, System};
    use ode_solvers::{Dop853, Dopri5};

    /// `ode_solvers`' own `integrate()`, as the drivers used it before: the reference.
    struct Sys<'f>(&'f dyn VectorField);
    impl System<f64, DVector<f64>> for Sys<'_> {
        fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
            self.0.eval(y.as_slice(), dy.as_mut_slice());
        }
    }

    fn reference(
        field: &dyn VectorField,
        t1: f64,
        y0: &[f64],
        cfg: &SolverConfig,
    ) -> (Vec<f64>, Vec<f64>) {
        let y0 = DVector::from_column_slice(y0);
        macro_rules! go {
            ($s:expr) => {{
                let mut s = $s;
                s.integrate().unwrap();
                (
                    s.x_out().clone(),
                    s.y_out().last().unwrap().as_slice().to_vec(),
                )
            }};
        }
        match cfg.method {
            Method::Dopri5 => go!(Dopri5::from_param(
                Sys(field),
                0.0,
                t1,
                t1,
                y0,
                cfg.rtol,
                cfg.atol,
                0.9,
                0.04,
                0.2,
                10.0,
                t1,
                0.0,
                cfg.max_steps,
                1000,
                OutputType::Sparse
            )),
            Method::Dop853 => go!(Dop853::from_param(
                Sys(field),
                0.0,
                t1,
                t1,
                y0,
                cfg.rtol,
                cfg.atol,
                0.9,
                0.0,
                0.333,
                6.0,
                t1,
                0.0,
                cfg.max_steps,
                1000,
                OutputType::Sparse
            )),
        }
    }

    /// A damped oscillator with a non-linear term.
    struct Osc;
    impl VectorField for Osc {
        fn dim(&self) -> usize {
            2
        }
        fn eval(&self, y: &[f64], dy: &mut [f64]) {
            dy[0] = y[1];
            dy[1] = -y[0] - 0.1 * y[1] + 0.3 * y[0].sin();
        }
    }

    #[test]
    fn steps_as_ode_solvers_does() {
        for method in [Method::Dopri5, Method::Dop853] {
            for (rtol, atol) in [(1e-6, 1e-8), (1e-10, 1e-12)] {
                let cfg = SolverConfig {
                    method,
                    rtol,
                    atol,
                    max_steps: 100_000,
                };
                let (times, y_ref) = reference(&Osc, 20.0, &[1.0, 0.0], &cfg);
                let mut st = Stepper::new(&Osc, 0.0, 20.0, &[1.0, 0.0], &cfg).unwrap();
                let mut ours = vec![0.0];
                while st.step().unwrap() {
                    ours.push(st.t());
                }
                ours.push(st.t());
                assert_eq!(ours.len(), times.len(), "{method:?} {rtol}: step counts");
                // The error estimates cancel heavily, so their rounding (FMA, order of
                // the sums) moves step sizes by ~1e-7 relative: the same steps, not the
                // same bits.
                for (a, b) in ours.iter().zip(&times) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "{method:?}: {a} vs {b}"
                    );
                }
                for (a, b) in st.y().iter().zip(&y_ref) {
                    assert!(
                        (a - b).abs() <= 1e-3 * rtol,
                        "{method:?} {rtol}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn dense_output_is_accurate_inside_a_step() {
        // y' = -y: the interpolant inside each step against exp(-t).
        struct Decay;
        impl VectorField for Decay {
            fn dim(&self) -> usize {
                1
            }
            fn eval(&self, y: &[f64], dy: &mut [f64]) {
                dy[0] = -y[0];
            }
        }
        for (method, tol) in [(Method::Dop853, 1e-9), (Method::Dopri5, 1e-6)] {
            let cfg = SolverConfig {
                method,
                rtol: 1e-10,
                atol: 1e-12,
                max_steps: 10_000,
            };
            let mut st = Stepper::new(&Decay, 0.0, 5.0, &[1.0], &cfg).unwrap();
            let mut out = [0.0];
            let mut steps = 0;
            loop {
                let more = st.step().unwrap();
                steps += 1;
                for f in [0.1, 0.5, 0.9] {
                    let t = st.t_old() + f * (st.t() - st.t_old());
                    st.dense_at(t, &mut out);
                    assert!(
                        (out[0] - (-t).exp()).abs() < tol,
                        "{method:?} t={t}: {}",
                        out[0]
                    );
                }
                st.dense_at(st.t(), &mut out);
                assert!((out[0] - st.y()[0]).abs() < 1e-15);
                if !more {
                    break;
                }
            }
            assert!(steps > 3);
        }
    }

    #[test]
    fn fused_stages_integrate_as_combine_then_eval() {
        use crate::flow::TabularKlField;
        /// The tabular field without its fused stage: the solver combines, then evaluates.
        struct Unfused<'a>(&'a TabularKlField);
        impl VectorField for Unfused<'_> {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn eval(&self, y: &[f64], dy: &mut [f64]) {
                self.0.eval(y, dy);
            }
        }
        // Two columns of 600 (three blocks each, the last partial).
        let (n, cols) = (600, 2);
        let rewards: Vec<Vec<f64>> = (0..cols)
            .map(|x| {
                (0..n)
                    .map(|y| (((x + 2) * (y * 7 + 3)) % 29) as f64 / 14.5 - 1.0)
                    .collect()
            })
            .collect();
        let theta0: Vec<f64> = (0..n * cols)
            .map(|i| ((i * 7919) % 61) as f64 / 20.0 + 0.002 * (i % n) as f64)
            .collect();
        let refs: Vec<Vec<f64>> = theta0
            .chunks(n)
            .map(|th| {
                let max = th.iter().copied().fold(f64::MIN, f64::max);
                let lse = max + th.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
                th.iter().map(|t| t - lse).collect()
            })
            .collect();
        let r: Vec<&[f64]> = rewards.iter().map(Vec::as_slice).collect();
        let l: Vec<&[f64]> = refs.iter().map(Vec::as_slice).collect();
        let field = TabularKlField::new(&r, &l, 0.05, 0.5);
        let unfused = Unfused(&field);
        for method in [Method::Dopri5, Method::Dop853] {
            let cfg = SolverConfig {
                method,
                rtol: 1e-10,
                atol: 1e-12,
                max_steps: 100_000,
            };
            let mut a = Stepper::new(&field, 0.0, 2000.0, &theta0, &cfg).unwrap();
            let mut b = Stepper::new(&unfused, 0.0, 2000.0, &theta0, &cfg).unwrap();
            let (mut da, mut db) = (vec![0.0; n * cols], vec![0.0; n * cols]);
            let mut steps = 0;
            loop {
                // Every step runs the stiffness test (which forms a stage state again).
                for st in [&mut a, &mut b] {
                    st.iasti = 1;
                    st.non_stiff = 0;
                }
                let (more_a, more_b) = (a.step().unwrap(), b.step().unwrap());
                assert_eq!(more_a, more_b);
                steps += 1;
                assert_eq!(a.t(), b.t(), "{method:?} step {steps}");
                for (x, y) in a.y().iter().zip(b.y()) {
                    assert!((x - y).abs() <= 1e-15 * y.abs(), "{method:?}: {x} vs {y}");
                }
                assert_eq!(
                    a.y_stage, b.y_stage,
                    "{method:?}: the stiffness test's state"
                );
                let t = a.t_old() + 0.3 * (a.t() - a.t_old());
                a.dense_at(t, &mut da);
                b.dense_at(t, &mut db);
                for (x, y) in da.iter().zip(&db) {
                    assert!((x - y).abs() <= 1e-15 * y.abs(), "{method:?}: {x} vs {y}");
                }
                if !more_a {
                    break;
                }
            }
            assert!(steps > 20, "{method:?}: {steps} steps");
            assert_eq!(a.rhs_evals, b.rhs_evals);
        }
    }
}
