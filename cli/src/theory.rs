//! `rmteach theory ...`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rayon::prelude::*;

use indicatif::{ProgressBar, ProgressStyle};
use rmteach::report::write_atomic;
use rmteach_theory::checks::{run_all_with, summary_table, CheckConfig, CheckReport};
use rmteach_theory::flow::{Method, SolverConfig};
use rmteach_theory::instance::{Dynamics, InstanceFile, TabularFlowResult, TabularInstance};
use rmteach_theory::levers::LeversConfig;
use rmteach_theory::objective::Update;
use serde::Serialize;

/// Solver flags shared by the theory subcommands.
#[derive(Args, Debug, Clone)]
pub struct SolverArgs {
    /// Runge-Kutta pair: dop853 (8th order) or dopri5 (5th order).
    #[arg(long, default_value = "dop853")]
    method: Method,
    /// Relative tolerance of every integration, in (0, 1).
    #[arg(long, default_value = "1e-10", value_parser = tolerance, allow_hyphen_values = true)]
    rtol: f64,
    /// Absolute tolerance of every integration, in (0, 1).
    #[arg(long, default_value = "1e-12", value_parser = tolerance, allow_hyphen_values = true)]
    atol: f64,
    /// Most steps one integration may take before it gives up (raise it for long horizons).
    #[arg(
        long,
        default_value_t = SolverConfig::default().max_steps,
        value_parser = clap::value_parser!(u32).range(1..),
        allow_negative_numbers = true
    )]
    max_steps: u32,
}

/// The value of `--rtol` / `--atol`: a number in (0, 1) (clap names the flag in the
/// error). The flags take values with a leading hyphen (`--rtol -1e-12`), so that a
/// negative value gets this range error rather than clap's "unexpected argument".
fn tolerance(text: &str) -> std::result::Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number: give a tolerance in (0, 1), e.g. 1e-10".to_string())?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 1), got {v}"))
    }
}

/// The value of `--entropy`: a finite number >= 0.
fn entropy_bonus(text: &str) -> std::result::Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number: give the entropy bonus TAU >= 0, e.g. 0.05".to_string())?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, got {v}"))
    }
}

impl SolverArgs {
    pub(crate) fn config(&self) -> SolverConfig {
        SolverConfig {
            method: self.method,
            max_steps: self.max_steps,
            ..Default::default()
        }
        .with_tol(self.rtol, self.atol)
    }
}

/// The theory subcommands.
#[derive(Subcommand, Debug)]
pub enum TheoryCommand {
    /// Run every check (Propositions 1-4, Lemmas 8-11, Theorems 4-6, and Theorem 4's KL
    /// branch) and print one table: check, instances, PASS/FAIL, worst margin, the
    /// paper's constant beside the tightest one an adversarial search found, fitted vs
    /// predicted slope. Writes it as markdown, CSV and JSON (with every failing
    /// instance) under --out. Exits non-zero if any check fails.
    Verify {
        /// Small instance counts (seconds; for tests).
        #[arg(long)]
        quick: bool,
        /// Then rerun every check with its bound tightened past the tightest margin found
        /// (required margin = tightest x (1 + 1e-6); slope predictions moved past their
        /// slack): every rerun must FAIL. Prints "negative controls: N of N checks fail as
        /// they must" and exits 0 only then (and only if the normal run passed).
        #[arg(long)]
        negative_controls: bool,
        /// Multiplies the restarts of every bound's adversarial search (1 = default).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        search_scale: u32,
        /// Seed of every random instance.
        #[arg(long, default_value_t = rmteach_theory::checks::DEFAULT_SEED)]
        seed: u64,
        /// Directory for verify.md, verify.csv, verify.json.
        #[arg(long, default_value = "runs/theory")]
        out: PathBuf,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// Integrate one prompt of your own tabular policy (or a batch of them) trained on
    /// r_RM and report, as JSON, t_gamma for the ground truth and the proxy reward,
    /// Proposition 3's lower bound and the values at the end.
    ///
    /// The flow is the KL-regularised gradient flow of Lemma 7 in logit space, one
    /// prompt of |S| (columns evolve independently; time scales with |S|). A JSON array
    /// of instances is a batch: they are integrated in parallel and `result` is an array
    /// in the same order.
    #[command(
        after_help = "--help lists the input keys (with their ranges), the output keys and the exit status.",
        after_long_help = FLOW_HELP
    )]
    Flow {
        /// The instance (JSON).
        #[arg(long)]
        instance: PathBuf,
        /// Also write the result (JSON) here; it is always printed.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Record E[r_G], E[r_RM] and KL at every accepted step (in the output JSON).
        #[arg(long)]
        trajectory: bool,
        /// The flow: pg, the gradient flow of Lemma 7 (the paper's), or npg, the natural
        /// policy gradient flow theta' = r_KL - E_pi[r_KL] for the prompt (the Fisher
        /// averages over prompts as the gradient does, so there is no 1/|S| and npg's time
        /// does not scale with num_prompts). Tabular policies only (the only kind this
        /// command takes).
        #[arg(long, default_value = "pg")]
        update: Update,
        /// Entropy bonus TAU >= 0 on top of the KL penalty: the flow of
        /// E r_RM - lambda KL(pi || pi_0) + TAU H(pi), i.e. the reward
        /// r_RM - lambda ln(pi/pi_0) - TAU ln pi; its fixed point is
        /// pi* ∝ (pi_0^lambda exp(r_RM))^(1/(lambda+TAU)).
        #[arg(long, default_value_t = 0.0, value_parser = entropy_bonus, allow_hyphen_values = true)]
        entropy: f64,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// Beyond the paper: measure the levers on reward variance on tabular policies
    /// (natural gradient, entropy bonus, SGD vs Adam with exact or k-sample RLOO
    /// gradients, reward scaling exact vs sampled) and write levers.md, levers.json and
    /// the figures levers_{flows,optimizers,scaling}.{png,svg} under --out.
    Levers {
        /// Directory for levers.md, levers.json and the figures.
        #[arg(long, default_value = "runs/theory/levers")]
        out: PathBuf,
        /// Small sizes (seconds; for tests).
        #[arg(long)]
        quick: bool,
        /// Seed of every instance and sampler.
        #[arg(long, default_value_t = rmteach_theory::checks::DEFAULT_SEED)]
        seed: u64,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// Draw the theory figures (PNG and SVG): objective landscape (Figure 1 style),
    /// t_gamma vs reward variance with the bounds of Proposition 3 and Theorem 4,
    /// E[r_G](t) under the two teachers of Theorems 5 and 6, Best-of-N vs N.
    Figures {
        /// Output directory.
        #[arg(long, default_value = "figures")]
        out: PathBuf,
        #[command(flatten)]
        solver: SolverArgs,
    },
}

/// The input keys, output keys and exit status of `theory flow` (its `--help`).
const FLOW_HELP: &str = "\
Input (--instance FILE): one JSON object with these keys, or a non-empty JSON array
of them (a batch). Unknown and repeated keys are errors; |Y| is the length of r_g.
  num_prompts  whole number >= 1; default 1. |S|, the number of prompts
  lambda       number >= 0; required. The KL coefficient
  gamma        number > 0; required. The reward increase that defines t_gamma
  logits       array of |Y| finite numbers. The initial policy's logits, or
  probs        array of |Y| numbers > 0 summing to 1 (within 1e-9): give exactly one
  r_rm         array of |Y| numbers in [-1, 1]; required. The reward trained on
  r_g          array of |Y| >= 2 numbers in [-1, 1]; required. The ground truth
  horizon      number > 0; required. Integration stops there at the latest
  name         string; optional. A label, repeated in the instance's result

Output (printed; also written to --out): one JSON object
  instance, method, rtol, atol   the input file and the solver settings
  update, entropy        the flow, written only when not the default (pg, 0)
  result       the figures: an object, or for a batch an array in input order
Each result object (after the instance's name, if it has one):
  t_gamma_g, t_gamma_rm   first time E[r_G] (E[r_RM]) reaches its value at t = 0
                          plus gamma: a number, or \"> horizon H\" if not by H
  var_g0, var_rm0         Var[r_G], Var[r_RM] under pi_0
  prop3_bound_g, prop3_bound_rm
                          Proposition 3's lower bound on each t_gamma,
                          2|S|(1 - e^(-gamma/2)) / sqrt(Var[r_RM]) (the same for both);
                          a bound for the gradient flow (--update pg) only: under
                          npg it is reported for comparison and need not hold
  v_g0, v_rm0             E[r_G], E[r_RM] under pi_0
  v_g_end, v_rm_end, kl_end
                          E[r_G], E[r_RM] and KL(pi || pi_0) at t_end
  t_end                   where the figures hold: the horizon, or (without
                          --trajectory) where both levels were reached
  settled                 only when integration stopped early because the flow was
                          certified to sit at its fixed point pi* (with --entropy
                          TAU, pi* ∝ (pi_0^lambda exp(r_RM))^(1/(lambda+TAU))): {\"at\" (where it
                          stopped), \"kl_to_fixed_point\", \"bound\"}; no level is
                          reached after \"at\", and the *_end figures (pi*'s) are
                          the horizon's within bound (<= 1e-10)
  rhs_evals               right-hand-side evaluations
  stiffness_warnings      times the solver's stiffness test fired (integration
                          goes on: a flow settling at its fixed point, not an error)
  probs_end               the policy at t_end
  trajectory              with --trajectory: {\"times\": [...], \"observations\":
                          [[E[r_G], E[r_RM], KL], ...]} at every accepted step
An infinite number is the string \"inf\" (\"-inf\"), e.g. the bound when
Var[r_RM] = 0; no number is ever null.

In a batch, an instance whose integration fails is written as the entry
{\"index\": i, \"name\": ..., \"error\": \"...\"} (name only if given) and every
other result is still written.

Exit status: 0 every instance integrated; 1 a batch was written with at least
one failed entry; 2 bad input or flags, or a single instance failed (nothing
written).";

/// Runs a theory subcommand; returns the process exit code.
pub fn run(cmd: TheoryCommand) -> Result<i32> {
    match cmd {
        TheoryCommand::Verify {
            quick,
            negative_controls,
            search_scale,
            seed,
            out,
            solver,
        } => verify_with(
            &CheckConfig {
                quick,
                seed,
                solver: solver.config(),
                search_scale: search_scale as usize,
                ..Default::default()
            },
            &out,
            negative_controls,
        )
        .map(|v| v.code),
        TheoryCommand::Flow {
            instance,
            out,
            trajectory,
            update,
            entropy,
            solver,
        } => flow(
            &instance,
            out.as_deref(),
            trajectory,
            &Dynamics { update, entropy },
            solver.config(),
        ),
        TheoryCommand::Figures { out, solver } => figures(&out, solver.config()),
        TheoryCommand::Levers {
            out,
            quick,
            seed,
            solver,
        } => {
            levers(&out, quick, seed, solver.config(), true)?;
            Ok(0)
        }
    }
}

/// Measures the levers and writes them under `out` (listing the files when `list`);
/// returns the report's blocks (used by `reproduce`).
pub fn levers(
    out: &Path,
    quick: bool,
    seed: u64,
    solver: SolverConfig,
    list: bool,
) -> Result<rmteach::report::Document> {
    solver.validate()?;
    crate::out_dir::create_out_dir("--out", out)?;
    let start = Instant::now();
    let cfg = LeversConfig {
        seed,
        ..if quick {
            LeversConfig::quick()
        } else {
            LeversConfig::default()
        }
    };
    let levers = rmteach_theory::levers::run(&cfg, &solver).context("measuring the levers")?;
    let files = levers
        .write(out)
        .with_context(|| format!("writing the levers under {}", out.display()))?;
    if list {
        for f in &files {
            println!("{}", f.display());
        }
    }
    eprintln!(
        "levers: {} files in {:.1} s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(levers.document())
}

/// Runs every check, prints the table and writes it under `out`; returns the table
/// and the exit code (1 when a check fails) (the default settings; used by `reproduce`).
#[cfg(feature = "lm")]
pub fn verify(quick: bool, seed: u64, out: &Path, solver: SolverConfig) -> Result<Verified> {
    let cfg = CheckConfig {
        quick,
        seed,
        solver,
        ..Default::default()
    };
    verify_with(&cfg, out, false)
}

/// What [`verify_with`] found.
pub struct Verified {
    /// The exit code: 0 when every check (and every negative control asked for)
    /// came out as it should, else 1.
    pub code: i32,
    /// The summary table (also `verify.{md,csv,json}`).
    pub table: rmteach::report::Table,
}

/// [`verify`] with every setting of `cfg`, and the negative controls when `negative`.
pub fn verify_with(cfg: &CheckConfig, out: &Path, negative: bool) -> Result<Verified> {
    cfg.solver.validate()?;
    crate::out_dir::create_out_dir("--out", out)?;
    let cfg = cfg.clone();
    let start = Instant::now();
    let n = rmteach_theory::checks::all_checks().len();
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} checks done {msg}",
        )
        .expect("valid template"),
    );
    bar.set_message(format!("({} threads)", rayon::current_num_threads()));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let reports = run_all_with(&cfg, &|r| {
        bar.println(format!(
            "{} {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.check
        ));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let table = summary_table(&reports, &cfg);
    println!("{}", table.to_markdown());
    for r in &reports {
        for n in &r.notes {
            println!("- {}: {n}", r.check);
        }
        for t in &r.tightness {
            println!(
                "- {}: tightest instance of {} (margin {:.6e}; searched: {}): {}",
                r.check, t.bound, t.margin, t.scope, t.instance
            );
        }
    }
    let failed: Vec<_> = reports.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        println!(
            "\nFAIL {} — {} failing instance(s):",
            r.check,
            r.failures.len()
        );
        for f in r.failures.iter().take(10) {
            println!("  {f}");
        }
    }
    table
        .write_all(out, "verify")
        .with_context(|| format!("writing tables under {}", out.display()))?;
    let details = serde_json::json!({ "config": cfg, "reports": reports, "seconds": start.elapsed().as_secs_f64() });
    let path = out.join("verify-details.json");
    write_atomic(&path, serde_json::to_string_pretty(&details)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\n{} of {} checks passed in {:.1} s; tables in {}/verify.{{md,csv,json}}, every instance outcome in {}",
        reports.len() - failed.len(),
        reports.len(),
        start.elapsed().as_secs_f64(),
        out.display(),
        path.display()
    );
    let controls_ok = !negative || negative_controls(&cfg, &reports, out)?;
    let code = if failed.is_empty() && controls_ok {
        0
    } else {
        1
    };
    Ok(Verified { code, table })
}

/// Reruns every check tightened past its tightest margin, prints each outcome and
/// writes them to `out/negative-controls.json`; true when every rerun failed.
fn negative_controls(cfg: &CheckConfig, reports: &[CheckReport], out: &Path) -> Result<bool> {
    let start = Instant::now();
    let controls = rmteach_theory::tightness::negative_controls(cfg, reports);
    println!("\nnegative controls (each check rerun with its bound tightened past the tightest margin found):");
    for c in &controls {
        println!(
            "- {}: {} (worst margin {:.6e}, required {:.6e}: margin {}; {} of {} judged slope claims fail with the \
             prediction moved by {:.3e})",
            c.check,
            if c.failed_as_required { "FAILS as it must" } else { "DID NOT FAIL" },
            c.worst_margin,
            c.required_margin,
            if c.margin_failed { "short" } else { "met" },
            c.slopes_failed,
            c.slopes_judged,
            c.slope_shift
        );
    }
    let path = out.join("negative-controls.json");
    write_atomic(&path, serde_json::to_string_pretty(&controls)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let failing = controls.iter().filter(|c| c.failed_as_required).count();
    if failing == controls.len() {
        println!(
            "negative controls: {failing} of {} checks fail as they must ({:.1} s)",
            controls.len(),
            start.elapsed().as_secs_f64()
        );
        Ok(true)
    } else {
        let names: Vec<&str> = controls
            .iter()
            .filter(|c| !c.failed_as_required)
            .map(|c| c.check.as_str())
            .collect();
        println!(
            "negative controls: only {failing} of {} checks fail as they must; still passing: {}",
            controls.len(),
            names.join(", ")
        );
        Ok(false)
    }
}

/// The document `theory flow` prints.
#[derive(Serialize)]
struct FlowReport<'a> {
    instance: String,
    /// Written only when not the paper's gradient flow.
    #[serde(skip_serializing_if = "is_pg")]
    update: Update,
    /// Written only when positive.
    #[serde(skip_serializing_if = "is_zero")]
    entropy: f64,
    method: Method,
    rtol: f64,
    atol: f64,
    result: FlowResults<'a>,
}

fn is_pg(u: &Update) -> bool {
    *u == Update::Pg
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// One result, or a batch's entries in input order.
#[derive(Serialize)]
#[serde(untagged)]
enum FlowResults<'a> {
    One(Named<'a>),
    Batch(Vec<BatchEntry<'a>>),
}

/// A result, after the instance's name if it has one.
#[derive(Serialize)]
struct Named<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(flatten)]
    result: &'a TabularFlowResult,
}

/// A batch entry: the result, or which instance failed and why.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchEntry<'a> {
    Done(Named<'a>),
    Failed {
        index: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        error: String,
    },
}

fn flow(
    path: &Path,
    out: Option<&Path>,
    trajectory: bool,
    dynamics: &Dynamics,
    solver: SolverConfig,
) -> Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file = InstanceFile::parse(&text).with_context(|| path.display().to_string())?;
    // The text's memory goes back to the allocator for the integration to reuse.
    drop(text);
    let outcomes = run_each(file.instances(), |inst| {
        inst.run_with(&solver, trajectory, dynamics)
    });
    let (result, failed) = if file.is_batch() {
        let entries = batch_entries(&outcomes, |i| file.name(i));
        let failed = entries
            .iter()
            .filter(|e| matches!(e, BatchEntry::Failed { .. }))
            .count();
        (FlowResults::Batch(entries), failed)
    } else {
        match &outcomes[0] {
            Ok(r) => (
                FlowResults::One(Named {
                    name: file.name(0),
                    result: r,
                }),
                0,
            ),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        }
    };
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Err(e) = outcome {
            let name = file
                .name(i)
                .map(|n| format!(" ({n:?})"))
                .unwrap_or_default();
            eprintln!("error: {} [{i}]{name}: {e}", path.display());
        }
    }
    let report = FlowReport {
        instance: path.display().to_string(),
        update: dynamics.update,
        entropy: dynamics.entropy,
        method: solver.method,
        rtol: solver.rtol,
        atol: solver.atol,
        result,
    };
    let mut text = to_json(&report, &outcomes)
        .with_context(|| format!("{}: writing the result", path.display()))?;
    text.push(b'\n');
    {
        // One write of the whole document (as `println!` of it did).
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&text)?;
        stdout.flush()?;
    }
    if let Some(p) = out {
        write_atomic(p, &text[..text.len() - 1])
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} instances failed (their entries hold the error)",
            outcomes.len()
        );
        return Ok(1);
    }
    Ok(0)
}

/// The pretty-printed document; an error names the field that cannot be written (a
/// NaN).
fn to_json<E>(
    report: &FlowReport<'_>,
    outcomes: &[std::result::Result<TabularFlowResult, E>],
) -> Result<Vec<u8>> {
    // Sized up front (a pretty-printed number takes at most 40 bytes with its line):
    // the document is written once, without regrowing (and re-faulting) the buffer.
    let numbers: usize = outcomes
        .iter()
        .flatten()
        .map(|r| r.probs_end.len() + r.trajectory.as_ref().map_or(0, |t| 4 * t.times.len()))
        .sum();
    let mut text = Vec::with_capacity(40 * numbers + 1024 * (outcomes.len() + 1));
    if let Err(e) = serde_json::to_writer_pretty(&mut text, report) {
        // Once more with the path tracked, to name the field.
        let named = serde_path_to_error::serialize(
            report,
            &mut serde_json::Serializer::pretty(std::io::sink()),
        )
        .err()
        .map_or_else(|| e.to_string(), |e| e.to_string());
        anyhow::bail!("{named}");
    }
    Ok(text)
}

/// `run` on every instance, in parallel; one outcome per instance, in order (a failure
/// stops nothing else).
fn run_each<T: Send, E: Send>(
    instances: &[TabularInstance],
    run: impl Fn(&TabularInstance) -> std::result::Result<T, E> + Sync + Send,
) -> Vec<std::result::Result<T, E>> {
    instances.par_iter().map(run).collect()
}

/// A batch's entries: each result, or the failed instance's index, name and error.
fn batch_entries<'a, E: std::fmt::Display>(
    outcomes: &'a [std::result::Result<TabularFlowResult, E>],
    name: impl Fn(usize) -> Option<&'a str>,
) -> Vec<BatchEntry<'a>> {
    outcomes
        .iter()
        .enumerate()
        .map(|(index, o)| match o {
            Ok(result) => BatchEntry::Done(Named {
                name: name(index),
                result,
            }),
            Err(e) => BatchEntry::Failed {
                index,
                name: name(index),
                error: e.to_string(),
            },
        })
        .collect()
}

fn figures(out: &Path, solver: SolverConfig) -> Result<i32> {
    solver.validate()?;
    crate::out_dir::create_out_dir("--out", out)?;
    let start = Instant::now();
    let files = rmteach_theory::figures::render_all(out, &solver)
        .with_context(|| format!("drawing figures into {}", out.display()))?;
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!(
        "{} files in {:.1} s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_becomes_an_entry_and_the_rest_are_kept() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../theory/examples/instance.json"
        ))
        .unwrap();
        let good = InstanceFile::parse(&text).unwrap().instances()[0].clone();
        let mut odd = good.clone();
        odd.horizon = 7.0;
        let instances = vec![good.clone(), odd, good];
        let solver = SolverConfig::default();
        let outcomes = run_each(&instances, |inst| {
            if inst.horizon == 7.0 {
                Err("the solver gave up")
            } else {
                inst.run(&solver, false).map_err(|_| "unexpected")
            }
        });
        let entries = batch_entries(&outcomes, |_| None);
        let v = serde_json::to_value(&entries).unwrap();
        assert_eq!(
            v[1],
            serde_json::json!({"index": 1, "error": "the solver gave up"})
        );
        for i in [0, 2] {
            assert!(v[i]["t_gamma_g"].is_number(), "{}", v[i]);
            assert!(v[i].get("name").is_none());
        }
        let names = ["a", "b", "c"];
        let entries = batch_entries(&outcomes, |i| Some(names[i]));
        let v = serde_json::to_value(&entries).unwrap();
        assert_eq!(
            v[1],
            serde_json::json!({"index": 1, "name": "b", "error": "the solver gave up"})
        );
        assert_eq!(v[2]["name"], "c");
    }

    #[test]
    fn a_nan_is_never_written_and_its_field_is_named() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../theory/examples/instance.json"
        ))
        .unwrap();
        let inst = InstanceFile::parse(&text).unwrap().instances()[0].clone();
        let mut r = inst.run(&SolverConfig::default(), false).unwrap();
        r.prop3_bound_g = f64::INFINITY;
        fn report(r: &TabularFlowResult) -> FlowReport<'_> {
            FlowReport {
                instance: "i.json".into(),
                update: Update::Pg,
                entropy: 0.0,
                method: Method::Dop853,
                rtol: 1e-10,
                atol: 1e-12,
                result: FlowResults::Batch(vec![BatchEntry::Done(Named {
                    name: Some("x"),
                    result: r,
                })]),
            }
        }
        let ok = [Ok::<_, ()>(r.clone())];
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(&report(&r), &ok).unwrap()).unwrap();
        assert_eq!(v["result"][0]["prop3_bound_g"], "inf");
        r.v_g_end = f64::NAN;
        let err = to_json(&report(&r), &ok).unwrap_err().to_string();
        assert!(err.starts_with("result[0].v_g_end: is NaN"), "{err}");
    }

    #[test]
    fn tolerances_lie_in_the_open_unit_interval() {
        assert_eq!(tolerance("1e-10"), Ok(1e-10));
        assert_eq!(tolerance(" 0.5 "), Ok(0.5));
        for bad in ["0", "1", "-1", "inf", "NaN"] {
            assert!(tolerance(bad).unwrap_err().contains("(0, 1)"), "{bad}");
        }
        assert!(tolerance("x").unwrap_err().starts_with("not a number"));
    }
}
