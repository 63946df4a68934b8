//! `rmteach reproduce`: the main job. Verifies the theory, runs the toy Section 4.1
//! and 4.2 experiments (built-in presets, no downloads) and writes one report that
//! links their tables and figures. The report is assembled from data: the theory's
//! summary table, each experiment report's blocks ([`Document`], read from the
//! `report.json` / `report_policies.json` written beside its markdown) placed two
//! heading levels down with their links prefixed, and the teacher section.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rmteach::report::write_atomic;
use rmteach::report::{Document, Placement};

use crate::evidence;
use crate::exp::{run_config, ConfigSource};
use crate::jobs::{all_cores, JobsArgs};
use crate::theory::{levers, verify, SolverArgs};
use rmteach_experiments::pipeline::run::RunOptions;
use rmteach_experiments::runtime::DeviceSpec;

/// The built-in toy Section 4.1 preset (experiments/configs/toy-4.1.toml).
const TOY_41: &str = include_str!("../../experiments/configs/toy-4.1.toml");
/// The built-in toy Section 4.2 preset (experiments/configs/toy-4.2.toml).
const TOY_42: &str = include_str!("../../experiments/configs/toy-4.2.toml");

/// Flags of `rmteach reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Directory for everything: theory/, runs/, report.md.
    #[arg(long, default_value = "runs/reproduce")]
    out: PathBuf,
    /// Run the experiments on this device (cpu, cuda, cuda:N).
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Only the theory verification and the theory levers (seconds).
    #[arg(long)]
    theory_only: bool,
    /// Only the part "Beyond the paper: levers on reward variance (theory)" (seconds).
    #[arg(long, conflicts_with = "theory_only")]
    levers_only: bool,
    /// Only the part "Beyond the paper: levers on reward variance (experiments)" (the
    /// toy levers experiment, about two minutes on 2 cores).
    #[arg(long, conflicts_with_all = ["theory_only", "levers_only"])]
    levers_experiments_only: bool,
    /// The theory checks at the small sizes the tests use.
    #[arg(long)]
    quick: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Units side by side (default here: --jobs = every core).
    #[command(flatten)]
    jobs: JobsArgs,
    #[command(flatten)]
    solver: SolverArgs,
}

/// Runs the main job; the exit code is 1 when a theory check fails.
pub fn reproduce(args: &ReproduceArgs) -> Result<i32> {
    let start = Instant::now();
    let out = &args.out;
    // --jobs and --devices are checked (every device opened) before anything runs.
    let parallel = args.jobs.parallelism(all_cores())?;
    crate::out_dir::create_out_dir("--out", out)?;
    let mut md = String::from(
        "# rmteach: what makes a reward model a good teacher for RLHF?\n\n\
         Produced by `rmteach reproduce`: the theory verification and the toy \
         Section 4.1 and 4.2 experiments (synthetic world, tiny models, CPU).\n\n",
    );
    let mut times = Vec::new();
    let theory_dir = out.join("theory");
    if args.levers_only {
        levers_section(&mut md, &mut times, args, &theory_dir)?;
        return finish(md, &times, start, out).map(|()| 0);
    }
    if args.levers_experiments_only {
        levers_experiments_section(&mut md, &mut times, args, out)?;
        return finish(md, &times, start, out).map(|()| 0);
    }
    let t = Instant::now();
    let verified = verify(
        args.quick,
        rmteach_theory::checks::DEFAULT_SEED,
        &theory_dir,
        args.solver.config(),
    )?;
    let code = verified.code;
    times.push(("theory verify", t.elapsed().as_secs_f64()));
    let verdict = if code == 0 {
        "every check passed"
    } else {
        "SOME CHECKS FAILED (see the table)"
    };
    let _ = writeln!(
        md,
        "## Theory: Theorems 1-6, Propositions 1-4 ({verdict})\n"
    );
    md.push_str(&verified.table.to_markdown());
    md.push_str(
        "\nEvery instance outcome: [theory/verify-details.json](theory/verify-details.json).\n\n",
    );
    levers_section(&mut md, &mut times, args, &theory_dir)?;
    if !args.theory_only {
        let runs = out.join("runs");
        let here = Path::new(".");
        for (title, text, file) in [
            (
                "Section 4.1: reward models of one policy",
                TOY_41,
                "toy-4.1.toml",
            ),
            (
                "Section 4.2: reward models across policies",
                TOY_42,
                "toy-4.2.toml",
            ),
        ] {
            let t = Instant::now();
            let source = ConfigSource {
                text,
                file: &format!("<built-in {file}>"),
                dir: here,
            };
            let report = run_config(
                &source,
                &runs,
                args.device,
                args.quiet,
                &parallel,
                crate::exp::DryRun::Off,
            )?;
            times.push((file, t.elapsed().as_secs_f64()));
            let _ = writeln!(md, "## {title} (experiments/configs/{file})\n");
            md.push_str(&embed_reports(&report, out)?);
        }
        type Section = fn(&Path, &Path, bool) -> Result<String>;
        let sections: [(&str, Section, &str, &str); 2] = [
            (
                "Does the teacher score predict the Section 4.1 outcome?",
                evidence::section_41,
                "toy-4.1",
                "teacher on toy-4.1",
            ),
            (
                "Does the teacher score name each Section 4.2 policy's best RM?",
                evidence::section_42,
                "toy-4.2",
                "teacher on toy-4.2",
            ),
        ];
        for (title, section, run, step) in sections {
            let t = Instant::now();
            let _ = writeln!(md, "## {title} (`rmteach teacher`)\n");
            md.push_str(&section(&runs.join(run), out, args.quiet)?);
            times.push((step, t.elapsed().as_secs_f64()));
        }
        levers_experiments_section(&mut md, &mut times, args, out)?;
    }
    finish(md, &times, start, out)?;
    Ok(code)
}

/// Runs `rmteach theory levers` into `theory_dir/levers` and appends its report's
/// blocks as one section (headings one level down, links made relative to the report).
fn levers_section(
    md: &mut String,
    times: &mut Vec<(&str, f64)>,
    args: &ReproduceArgs,
    theory_dir: &Path,
) -> Result<()> {
    let t = Instant::now();
    let doc = levers(
        &theory_dir.join("levers"),
        args.quick,
        rmteach_theory::checks::DEFAULT_SEED,
        args.solver.config(),
        false,
    )?;
    times.push(("theory levers", t.elapsed().as_secs_f64()));
    md.push_str(&doc.render(Placement {
        heading_offset: 1,
        link_prefix: Some("theory/levers"),
    }));
    md.push('\n');
    Ok(())
}

/// Runs the toy levers experiment under `out/runs/levers/` and appends its report
/// (headings one level down, links relative to the report).
fn levers_experiments_section(
    md: &mut String,
    times: &mut Vec<(&str, f64)>,
    args: &ReproduceArgs,
    out: &Path,
) -> Result<()> {
    let t = Instant::now();
    let opts = RunOptions {
        progress: !args.quiet,
        ..RunOptions::default()
    };
    let report = rmteach_experiments::levers::run(&out.join("runs"), args.device, &opts)
        .context("the levers experiment")?;
    times.push(("levers experiments", t.elapsed().as_secs_f64()));
    let doc = Document::read(&report.join("report.json"))?;
    let rel = report
        .strip_prefix(out)
        .unwrap_or(&report)
        .display()
        .to_string();
    md.push_str(&doc.render(Placement {
        heading_offset: 1,
        link_prefix: Some(&rel),
    }));
    md.push('\n');
    Ok(())
}

/// Appends the wall-time table and writes `out/report.md`.
fn finish(mut md: String, times: &[(&str, f64)], start: Instant, out: &Path) -> Result<()> {
    md.push_str("## Wall time\n\n| step | seconds |\n|---|---|\n");
    for (step, s) in times {
        let _ = writeln!(md, "| {step} | {s:.1} |");
    }
    let _ = writeln!(md, "| total | {:.1} |", start.elapsed().as_secs_f64());
    let path = out.join("report.md");
    write_atomic(&path, md.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nreport: {} ({:.0} s in all)",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The reports under `report_dir` (its `report.json`, or one `report_policies.json`
/// per algorithm sub-directory), each rendered two heading levels down with its links
/// made relative to `root`, after a line linking its markdown.
fn embed_reports(report_dir: &Path, root: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    if report_dir.join("report.json").exists() {
        files.push(report_dir.join("report.json"));
    } else {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(report_dir)
            .with_context(|| format!("reading {}", report_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("report_policies.json").exists())
            .collect();
        subs.sort();
        files.extend(subs.into_iter().map(|p| p.join("report_policies.json")));
    }
    let mut md = String::new();
    for f in files {
        let dir = f.parent().unwrap_or(root);
        let rel = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        let doc = Document::read(&f)?;
        let _ = writeln!(
            md,
            "From [{0}]({0}):\n",
            Path::new(&rel)
                .join(f.with_extension("md").file_name().unwrap_or_default())
                .display()
        );
        md.push_str(&doc.render(Placement {
            heading_offset: 2,
            link_prefix: Some(&rel),
        }));
        md.push('\n');
    }
    Ok(md)
}
