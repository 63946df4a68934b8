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
use rmteach_theory::instance::TabularInstance;

/// Solver flags shared by the theory subcommands.
#[derive(Args, Debug, Clone)]
pub struct SolverArgs {
    /// Runge-Kutta pair: dop853 (8th order) or dopri5 (5th order).
    #[arg(long, default_value = "dop853")]
    method: Method,
    /// Relative tolerance of every integration.
    #[arg(long, default_value_t = 1e-10)]
    rtol: f64,
    /// Absolute tolerance of every integration.
    #[arg(long, default_value_t = 1e-12)]
    atol: f64,
}

impl SolverArgs {
    pub(crate) fn config(&self) -> SolverConfig {
        SolverConfig {
            method: self.method,
            rtol: self.rtol,
            atol: self.atol,
            ..Default::default()
        }
    }
}

/// The theory subcommands.
#[derive(Subcommand, Debug)]
pub enum TheoryCommand {
    /// Run every check (Propositions 1-4, Lemmas 8 and 10, Theorems 4-6) and print one
    /// table: check, instances, PASS/FAIL, worst margin, the paper's constant beside the
    /// tightest one an adversarial search found, fitted vs predicted slope. Writes it as
    /// markdown, CSV and JSON (with every failing instance) under --out. Exits non-zero
    /// if any check fails.
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
        #[arg(long, default_value_t = 20250319)]
        seed: u64,
        /// Directory for verify.md, verify.csv, verify.json.
        #[arg(long, default_value = "runs/theory")]
        out: PathBuf,
        #[command(flatten)]
        solver: SolverArgs,
    },
    /// Integrate one prompt of a tabular policy given as JSON and report t_gamma for the
    /// ground truth and the proxy reward, the Proposition 3 bound and end values.
    ///
    /// Input keys: num_prompts (default 1), lambda, gamma, logits or probs, r_rm, r_g,
    /// horizon. Rewards lie in [-1, 1]. A JSON array of such objects is a batch: they are
    /// integrated in parallel and `result` is an array in the same order.
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
        ),
        TheoryCommand::Flow {
            instance,
            out,
            trajectory,
            solver,
        } => flow(&instance, out.as_deref(), trajectory, solver.config()),
        TheoryCommand::Figures { out, solver } => figures(&out, solver.config()),
    }
}

/// Runs every check, prints the table and writes it under `out`; 1 when a check fails
/// (the default settings; used by `reproduce`).
#[cfg(feature = "lm")]
pub fn verify(quick: bool, seed: u64, out: &Path, solver: SolverConfig) -> Result<i32> {
    let cfg = CheckConfig {
        quick,
        seed,
        solver,
        ..Default::default()
    };
    verify_with(&cfg, out, false)
}

/// [`verify`] with every setting of `cfg`, and the negative controls when `negative`.
pub fn verify_with(cfg: &CheckConfig, out: &Path, negative: bool) -> Result<i32> {
    cfg.solver.validate()?;
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
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
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
    Ok(if failed.is_empty() && controls_ok {
        0
    } else {
        1
    })
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

fn flow(path: &Path, out: Option<&Path>, trajectory: bool, solver: SolverConfig) -> Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // One instance (an object) or a batch (an array of objects, integrated in parallel).
    let batch = text.trim_start().starts_with('[');
    let checked = match parse_instances(&text, batch) {
        Some(instances) => instances
            .into_iter()
            .enumerate()
            .map(|(i, inst)| validated(path, batch, i, inst))
            .collect::<Result<Vec<_>>>()?,
        None => parse_instances_value(path, &text)?,
    };
    // The text's memory goes back to the allocator for the integration to reuse.
    drop(text);
    let results = checked
        .par_iter()
        .map(|(at, inst)| inst.run(&solver, trajectory).with_context(|| at.clone()))
        .collect::<Result<Vec<_>>>()?;
    let result = if batch {
        serde_json::to_value(&results)?
    } else {
        serde_json::to_value(&results[0])?
    };
    let json = serde_json::json!({
        "instance": path.display().to_string(),
        "method": solver.method,
        "rtol": solver.rtol,
        "atol": solver.atol,
        "result": result,
    });
    // Sized up front (a pretty-printed number takes at most 40 bytes with its line):
    // the document is written once, without regrowing (and re-faulting) the buffer.
    let numbers: usize = results
        .iter()
        .map(|r| r.probs_end.len() + r.trajectory.as_ref().map_or(0, |t| 4 * t.times.len()))
        .sum();
    let mut text = Vec::with_capacity(40 * numbers + 1024 * (results.len() + 1));
    serde_json::to_writer_pretty(&mut text, &json)?;
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
    Ok(0)
}

/// The instances of a well-formed input, deserialised straight from the text (no
/// intermediate `serde_json::Value`, which costs more than the parse itself for large
/// vectors); `None` on any error, which [`parse_instances_value`] then reports.
fn parse_instances(text: &str, batch: bool) -> Option<Vec<TabularInstance>> {
    if batch {
        serde_json::from_str::<Vec<TabularInstance>>(text).ok()
    } else {
        serde_json::from_str::<TabularInstance>(text)
            .ok()
            .map(|v| vec![v])
    }
}

/// Instance `i` of the input at `path`, validated, with its name for error messages.
fn validated(
    path: &Path,
    batch: bool,
    i: usize,
    inst: TabularInstance,
) -> Result<(String, TabularInstance)> {
    let at = instance_name(path, batch, i);
    inst.validate().with_context(|| at.clone())?;
    Ok((at, inst))
}

/// Where an instance came from, for error messages.
fn instance_name(path: &Path, batch: bool, i: usize) -> String {
    if batch {
        format!("{} [instance {i}]", path.display())
    } else {
        path.display().to_string()
    }
}

/// The validated instances through a `serde_json::Value`: the slow path, whose errors
/// name the file and, in a batch, the item (the first item that fails to deserialise or
/// to validate, in order). An array is a batch, as `batch` (the text starts with `[`)
/// says for any text that parses.
fn parse_instances_value(path: &Path, text: &str) -> Result<Vec<(String, TabularInstance)>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{}: not a valid instance (JSON syntax)", path.display()))?;
    let (batch, items) = match value {
        serde_json::Value::Array(items) => (true, items),
        other => (false, vec![other]),
    };
    let mut instances = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let inst: TabularInstance = serde_json::from_value(item)
            .with_context(|| format!("{}: not a valid instance", instance_name(path, batch, i)))?;
        instances.push(validated(path, batch, i, inst)?);
    }
    Ok(instances)
}

fn figures(out: &Path, solver: SolverConfig) -> Result<i32> {
    solver.validate()?;
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
