//! A fine fixed-step reference for the tabular flow: classical RK4 on the
//! probability-space form (Lemma 9), independent of the adaptive solvers, their dense
//! output and their event location.

#![allow(dead_code)]

use rmteach_theory::flow::{ProbabilityFlow, VectorField};

/// `sum_y p(y) r(y)`.
pub fn dot(p: &[f64], r: &[f64]) -> f64 {
    p.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// One RK4 step of size `h` from `y`.
pub fn rk4_step(flow: &ProbabilityFlow, y: &[f64], h: f64) -> Vec<f64> {
    let n = y.len();
    let mut k = vec![vec![0.0; n]; 4];
    flow.eval(y, &mut k[0]);
    let y1: Vec<f64> = y.iter().zip(&k[0]).map(|(a, b)| a + 0.5 * h * b).collect();
    flow.eval(&y1, &mut k[1]);
    let y2: Vec<f64> = y.iter().zip(&k[1]).map(|(a, b)| a + 0.5 * h * b).collect();
    flow.eval(&y2, &mut k[2]);
    let y3: Vec<f64> = y.iter().zip(&k[2]).map(|(a, b)| a + h * b).collect();
    flow.eval(&y3, &mut k[3]);
    (0..n)
        .map(|i| y[i] + h / 6.0 * (k[0][i] + 2.0 * k[1][i] + 2.0 * k[2][i] + k[3][i]))
        .collect()
}

/// `E_pi r` along the flow from `pi0` up to `horizon` with RK4 steps of `h`: per step
/// its value and exact slope `sum_y r(y) d pi(y)/dt` at the step's start, and the last.
pub struct Reference {
    /// Step size.
    pub h: f64,
    /// `(E r, d/dt E r)` at `t = k h`.
    pub points: Vec<(f64, f64)>,
}

impl Reference {
    /// Integrates `flow` from `pi0` and records `E r` for reward `r`.
    pub fn new(flow: &ProbabilityFlow, pi0: &[f64], r: &[f64], horizon: f64, h: f64) -> Self {
        let steps = (horizon / h).ceil() as usize;
        let mut y = pi0.to_vec();
        let mut dy = vec![0.0; y.len()];
        let mut points = Vec::with_capacity(steps + 1);
        for k in 0..=steps {
            flow.eval(&y, &mut dy);
            points.push((dot(&y, r), dot(&dy, r)));
            if k < steps {
                y = rk4_step(flow, &y, h);
            }
        }
        Self { h, points }
    }

    /// The cubic Hermite interpolant inside step `k` at fraction `s in [0, 1]`.
    fn hermite(&self, k: usize, s: f64) -> f64 {
        let ((g0, d0), (g1, d1)) = (self.points[k], self.points[k + 1]);
        let (d0, d1) = (d0 * self.h, d1 * self.h);
        let (s2, s3) = (s * s, s * s * s);
        (2.0 * s3 - 3.0 * s2 + 1.0) * g0
            + (s3 - 2.0 * s2 + s) * d0
            + (-2.0 * s3 + 3.0 * s2) * g1
            + (s3 - s2) * d1
    }

    /// The largest `E r` and its time (each step's interpolant sampled finely).
    pub fn peak(&self) -> (f64, f64) {
        let mut best = (f64::NEG_INFINITY, 0.0);
        for k in 0..self.points.len() - 1 {
            for i in 0..=64 {
                let s = i as f64 / 64.0;
                let v = self.hermite(k, s);
                if v > best.0 {
                    best = (v, (k as f64 + s) * self.h);
                }
            }
        }
        best
    }

    /// The first time `E r >= level` (bisection on the step's interpolant), if any.
    pub fn first_crossing(&self, level: f64) -> Option<f64> {
        if self.points[0].0 >= level {
            return Some(0.0);
        }
        for k in 0..self.points.len() - 1 {
            // Sample the step (a rise and fall inside one fine step is caught too).
            let mut prev = 0.0;
            for i in 1..=16 {
                let s = i as f64 / 16.0;
                if self.hermite(k, s) >= level {
                    let (mut a, mut b) = (prev, s);
                    for _ in 0..60 {
                        let m = 0.5 * (a + b);
                        if self.hermite(k, m) >= level {
                            b = m;
                        } else {
                            a = m;
                        }
                    }
                    return Some((k as f64 + b) * self.h);
                }
                prev = s;
            }
        }
        None
    }
}
