//! `rmteach reproduce`: the main job. Verifies the theory, runs the toy Section 4.1
//! and 4.2 experiments (built-in presets, no downloads) and writes one report that
//! links their tables and figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rmteach::report::write_atomic;

use crate::exp::{run_config, ConfigSource};
use crate::teacher::evidence_section as teacher_section;
use crate::theory::{verify, SolverArgs};
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
    /// Only the theory verification (seconds).
    #[arg(long)]
    theory_only: bool,
    /// The theory checks at the small sizes the tests use.
    #[arg(long)]
    quick: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    solver: SolverArgs,
}

/// Runs the main job; the exit code is 1 when a theory check fails.
pub fn reproduce(args: &ReproduceArgs) -> Result<i32> {
    let start = Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut md = String::from(
        "# rmteach: what makes a reward model a good teacher for RLHF?\n\n\
         Produced by `rmteach reproduce`: the theory verification and the toy \
         Section 4.1 and 4.2 experiments (synthetic world, tiny models, CPU).\n\n",
    );
    let mut times = Vec::new();
    let t = Instant::now();
    let theory_dir = out.join("theory");
    let code = verify(
        args.quick,
        rmteach_theory::checks::DEFAULT_SEED,
        &theory_dir,
        args.solver.config(),
    )?;
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
    md.push_str(&read_or_note(&theory_dir.join("verify.md")));
    md.push_str(
        "\nEvery instance outcome: [theory/verify-details.json](theory/verify-details.json).\n\n",
    );
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
            let report = run_config(&source, &runs, args.device, args.quiet)?;
            times.push((file, t.elapsed().as_secs_f64()));
            let _ = writeln!(md, "## {title} (experiments/configs/{file})\n");
            md.push_str(&embed_reports(&report, out)?);
        }
        let t = Instant::now();
        md.push_str(
            "## Does the teacher score predict the Section 4.1 outcome? (`rmteach teacher`)\n\n",
        );
        md.push_str(&teacher_section(&runs.join("toy-4.1"), out, args.quiet)?);
        times.push(("teacher on toy-4.1", t.elapsed().as_secs_f64()));
    }
    md.push_str("## Wall time\n\n| step | seconds |\n|---|---|\n");
    for (step, s) in &times {
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
    Ok(code)
}

/// The markdown reports under `report_dir` (its `report.md`, or one
/// `report_policies.md` per algorithm sub-directory), headings demoted and links made
/// relative to `root`.
fn embed_reports(report_dir: &Path, root: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    if report_dir.join("report.md").exists() {
        files.push(report_dir.join("report.md"));
    } else {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(report_dir)
            .with_context(|| format!("reading {}", report_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("report_policies.md").exists())
            .collect();
        subs.sort();
        files.extend(subs.into_iter().map(|p| p.join("report_policies.md")));
    }
    let mut md = String::new();
    for f in files {
        let dir = f.parent().unwrap_or(root);
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        let text = read_or_note(&f);
        let _ = writeln!(
            md,
            "From [{0}]({0}):\n",
            rel.join(f.file_name().unwrap_or_default()).display()
        );
        for line in text.lines() {
            let line = if line.starts_with('#') {
                format!("##{line}")
            } else {
                line.to_string()
            };
            md.push_str(&relink(&line, &rel.display().to_string()));
            md.push('\n');
        }
        md.push('\n');
    }
    Ok(md)
}

/// Prefixes the relative targets of markdown links in `line` with `prefix/`.
fn relink(line: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let absolute = rest.starts_with("http") || rest.starts_with('/') || rest.starts_with('#');
        if !absolute {
            out.push_str(prefix);
            out.push('/');
        }
    }
    out.push_str(rest);
    out
}

/// The file's text, or a note that it is missing.
fn read_or_note(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("({} not readable: {e})\n", path.display()))
}

#[cfg(test)]
mod tests {
    use super::relink;

    #[test]
    fn relink_prefixes_relative_targets_only() {
        assert_eq!(
            relink("![a](x.png) and [b](https://e.org) [c](/abs)", "runs/r"),
            "![a](runs/r/x.png) and [b](https://e.org) [c](/abs)"
        );
    }
}
