//! `levers.md`: one table per lever, the prediction written before the runs, and one
//! sentence of what the numbers show (worded from the intervals, never fixed), built
//! as a [`Document`] so that `rmteach reproduce` renders it in its own report.

use std::fmt::Write as _;

use rmteach::report::{Document, Inline};

use super::family::{BETAS, GAMMA, OUTPUTS};
use super::scaling::{ScaleSweep, BASE_SCALE, BETA as SCALING_BETA};
use super::stats::Interval;
use super::sweep::Sweep;
use super::Levers;

/// How close (in decades) a discrete method's `t_gamma` must stay to the flow's, at
/// both ends of the sweep, to count as following it: a factor of 10^0.05 (12%).
const CLOSE: f64 = 0.05;

/// `10^mean [10^lo, 10^hi]` of a `log10` ratio.
fn factor(i: Option<Interval>) -> String {
    i.map_or_else(
        || "n/a".to_string(),
        |r| {
            format!(
                "{:.2} [{:.2}, {:.2}]",
                10f64.powf(r.mean),
                10f64.powf(r.lo),
                10f64.powf(r.hi)
            )
        },
    )
}

fn show(i: Option<Interval>, digits: usize) -> String {
    i.map_or_else(|| "n/a".to_string(), |i| i.show(digits))
}

/// Whether interval `a` lies wholly below `b`.
fn below(a: Option<Interval>, b: Option<Interval>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.hi < b.lo)
}

/// Whether `value` lies inside `i`.
fn covers(i: Option<Interval>, value: f64) -> bool {
    i.is_some_and(|i| i.lo <= value && value <= i.hi)
}

/// How far (in slope units) a fitted slope's interval may miss a predicted slope and
/// still be called "like" it: the discrete crossing step alone moves a slope by a few
/// hundredths.
const SLOPE_SLACK: f64 = 0.05;

/// Whether `i`, widened by [`SLOPE_SLACK`], holds `value`.
fn near(i: Option<Interval>, value: f64) -> bool {
    i.is_some_and(|i| i.lo - SLOPE_SLACK <= value && value <= i.hi + SLOPE_SLACK)
}

/// The report.
pub(super) fn document(l: &Levers) -> Document {
    let cfg = &l.config;
    let low = *BETAS.last().expect("betas");
    let mut doc = Document::default();
    doc.heading(1, "Beyond the paper: levers on reward variance (theory)");
    doc.paragraph(vec![
        Inline::text(format!(
            "Tabular policies, one prompt, |Y| = {OUTPUTS}, a perfect proxy (r_RM = r_G = r), \
             lambda = 0, gamma = {GAMMA}. Reward variance under pi_0 is lowered by moving \
             pi_0's mass onto the worst output (logits z - beta r, beta in {BETAS:?}); the \
             reward is unchanged. {} instances (seed {}); every interval is a 95% Student-t \
             interval over instances. Discrete runs: step {}, t_gamma in flow time (steps x \
             lr), stopped at {}x the flow's t_gamma. Predictions were written \
             (theory/src/levers/mod.rs) before the runs. Every run: ",
            cfg.instances,
            cfg.seed,
            cfg.lr,
            super::optimizers::HORIZON_FACTOR
        )),
        Inline::link("levers.json", "levers.json"),
        Inline::text("."),
    ]);
    flows_section(&mut doc, l, low);
    optimizers_section(&mut doc, l, low);
    scaling_section(&mut doc, &l.scaling);
    doc
}

/// A paragraph that is one image of the report's `file`.
fn image(doc: &mut Document, alt: &str, file: &str) {
    doc.paragraph(vec![Inline::image(alt, file)]);
}

fn sweep_row(md: &mut String, s: &Sweep, reference: &Sweep, low: f64, instances: usize) {
    let level = s.levels.iter().find(|v| v.beta == low);
    let _ = write!(
        md,
        "\n| {} | {} | {} | {} | {} |",
        s.method,
        show(s.slope, 2),
        show(level.and_then(|v| v.log10_t), 2),
        show(s.log10_ratio(reference, low, instances), 2),
        level.map_or("n/a".into(), |v| format!("{}/{}", v.reached, v.total)),
    );
}

fn table_head(md: &mut String, reference: &str) {
    let _ = write!(
        md,
        "| method | slope of log t_gamma vs log Var | log10 t_gamma at the lowest variance | \
         log10 (t / t of {reference}) there | reached there |\n|---|---|---|---|---|"
    );
}

fn flows_section(doc: &mut Document, l: &Levers, low: f64) {
    let n = l.config.instances;
    let (pg, npg) = (&l.flows[0], &l.flows[1]);
    let low_var = pg
        .levels
        .iter()
        .find(|v| v.beta == low)
        .and_then(|v| v.log10_var);
    doc.heading(2, "Natural gradient and entropy bonus (flows)");
    doc.text(format!(
        "Predicted: the gradient flow's slope near -1 (at most -1/2, Proposition 3), the \
         natural gradient's near 0 (t_gamma ~ ln(1/Var)) and below Proposition 3's bound \
         at low variance; an entropy bonus a few-fold speed-up at low variance at most, \
         the slope staying steep. Lowest variance: beta = {low}, mean log10 Var = {}.",
        show(low_var, 2)
    ));
    let mut table = String::new();
    table_head(&mut table, "PG flow");
    for s in &l.flows {
        sweep_row(&mut table, s, pg, low, n);
    }
    doc.text(table);
    let bound = |var: f64| 2.0 * (1.0 - (-GAMMA / 2.0_f64).exp()) / var.sqrt();
    let (below_bound, total) =
        npg.runs
            .iter()
            .filter(|r| r.beta == low)
            .fold((0, 0), |(b, t), r| {
                let under = r.t_gamma.is_some_and(|tg| tg < bound(r.var0));
                (b + usize::from(under), t + 1)
            });
    let ratio = npg.log10_ratio(pg, low, n);
    doc.text(format!(
        "Natural gradient: its slope is {} against the gradient flow's {} ({}; the \
         predicted slope near 0 {}); at the lowest variance it reaches the level {} decades sooner, below Proposition 3's \
         bound (which binds the gradient flow only) in {below_bound} of {total} instances.",
        show(npg.slope, 2),
        show(pg.slope, 2),
        if below(pg.slope, npg.slope) {
            "the variance penalty is much weaker: the lever appears"
        } else {
            "the intervals overlap: no difference shown"
        },
        if near(npg.slope, 0.0) {
            "appears"
        } else {
            "does not appear"
        },
        ratio.map_or("n/a".into(), |r| format!("{:.2} [{:.2}, {:.2}]", -r.mean, -r.hi, -r.lo)),
    ));
    image(
        doc,
        "t_gamma against variance: PG and NPG flows, entropy bonus",
        "levers_flows.png",
    );
    for s in &l.flows[2..] {
        let r = s.log10_ratio(pg, low, n);
        doc.text(format!(
            "{}: t_gamma at the lowest variance is {} times the gradient flow's; slope {} \
             ({}).",
            s.method,
            factor(r),
            show(s.slope, 2),
            if below(pg.slope, s.slope) {
                "shallower than the gradient flow's"
            } else {
                "not distinguishable from the gradient flow's"
            }
        ));
    }
}

fn optimizers_section(doc: &mut Document, l: &Levers, low: f64) {
    let n = l.config.instances;
    let pg = &l.flows[0];
    doc.heading(
        2,
        "The algorithms people run: SGD and Adam, exact and k-sample (RLOO) gradients",
    );
    doc.text(
        "Predicted: exact SGD = the flow up to O(lr); RLOO SGD near the flow, its spread \
         shrinking with k; exact Adam a slope near 0 (each logit moves about lr per step); \
         sampled Adam slower than exact Adam at low variance (no slope predicted).",
    );
    let mut table = String::new();
    table_head(&mut table, "PG flow");
    sweep_row(&mut table, pg, pg, low, n);
    for s in &l.optimizers {
        sweep_row(&mut table, s, pg, low, n);
    }
    doc.text(table);
    image(
        doc,
        "t_gamma against variance: flow, SGD, Adam",
        "levers_optimizers.png",
    );
    let mut items = Vec::new();
    for s in &l.optimizers {
        let r0 = s.log10_ratio(pg, BETAS[0], n);
        let rl = s.log10_ratio(pg, low, n);
        let within = |r: Option<Interval>| r.is_some_and(|r| r.lo > -CLOSE && r.hi < CLOSE);
        let verdict = if within(r0) && within(rl) {
            "the flow's prediction holds (within 10^0.05, 12%, at both ends)".to_string()
        } else if below(s.slope, pg.slope) || below(pg.slope, s.slope) {
            format!(
                "the flow's variance dependence does not carry over (slope {} vs the flow's {})",
                show(s.slope, 2),
                show(pg.slope, 2)
            )
        } else if covers(r0, 0.0) && covers(rl, 0.0) {
            "consistent with the flow's prediction (ratio 1 inside both intervals), to within \
             the seed-to-seed spread"
                .to_string()
        } else {
            "its times differ from the flow's by a factor, its variance dependence not \
             distinguishably"
                .to_string()
        };
        items.push(format!(
            "{}: t_gamma is {} times the flow's at the highest variance, {} at the lowest: \
             {verdict}.",
            s.method,
            factor(r0),
            factor(rl)
        ));
    }
    doc.list(items);
}

fn scaling_section(doc: &mut Document, sweeps: &[ScaleSweep]) {
    doc.heading(2, "Reward scaling: exact against sampled gradients");
    doc.text(format!(
        "r_RM = c r / {} at beta = {SCALING_BETA}, t_gamma of r_G = r counted in steps. \
         Predicted: SGD's steps fall like 1/c (slope -1) for exact and sampled gradients \
         alike; the seed-to-seed spread of sampled runs grows like sqrt(c) (slope +1/2) and \
         falls with k; Adam's steps do not depend on c (slope 0).",
        1.0 / BASE_SCALE
    ));
    let mut table = String::from(
        "| method | slope of steps vs c | slope of spread vs c | log10 steps, c = 1 | \
         log10 steps, c = 16 | spread, c = 1 | spread, c = 16 | reached |\n\
         |---|---|---|---|---|---|---|---|",
    );
    for s in sweeps {
        let (first, last) = (s.points.first(), s.points.last());
        let _ = write!(
            table,
            "\n| {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            s.method,
            show(s.steps_slope, 2),
            show(s.spread_slope, 2),
            show(first.and_then(|p| p.log10_steps), 2),
            show(last.and_then(|p| p.log10_steps), 2),
            show(first.and_then(|p| p.spread), 3),
            show(last.and_then(|p| p.spread), 3),
            s.points.iter().map(|p| p.reached).sum::<usize>(),
            s.points.iter().map(|p| p.total).sum::<usize>(),
        );
    }
    doc.text(table);
    image(
        doc,
        "steps and their spread against the reward scale",
        "levers_scaling.png",
    );
    let mut items = Vec::new();
    for s in sweeps {
        let sampled = s.spread_slope.is_some();
        let steps = if near(s.steps_slope, -1.0) {
            "steps fall like 1/c"
        } else if near(s.steps_slope, 0.0) {
            "steps do not depend on c"
        } else {
            "steps depend on c, neither like 1/c nor not at all"
        };
        let spread = if !sampled {
            String::new()
        } else if below(
            Some(Interval {
                mean: 0.0,
                lo: 0.0,
                hi: 0.0,
                n: 1,
            }),
            s.spread_slope,
        ) {
            format!(
                "; the spread grows with c (slope {})",
                show(s.spread_slope, 2)
            )
        } else {
            format!(
                "; no growth of the spread with c shown (slope {})",
                show(s.spread_slope, 2)
            )
        };
        items.push(format!("{}: {steps}{spread}.", s.method));
    }
    doc.list(items);
}
