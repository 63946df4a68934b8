//! `write_report`: every table and figure of one run directory, plus `report.md`;
//! `write_policies_report`: Section 4.2's Table 10 and bar plot over several runs.
//! Each report is built as a [`Document`] and written twice: rendered as markdown,
//! and as its blocks (`report.json`, `report_policies.json`) for reports that
//! include it.

use std::path::{Path, PathBuf};

use rmteach::report::{write_atomic, Table};

use super::error::{io_err, Result};
use super::figures::{gt_increase_bars, increase_vs_epoch, increase_vs_kl, PolicyIncrease};
use super::increase_table::increase_table;
use super::interaction::{contrast_section, PolicyContrast};
use super::summary::{summarize_run, SummarizedRun};
use super::table1::{low_variance_note, table1};
use super::table10::{default_table10_epoch, table10};
use super::table2::{table2, CombinedAccuracy, Table2Options};
use rmteach::report::{Block, Document, Placement};

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportFiles {
    /// Table files (`.md`, `.csv`, `.json` for each table).
    pub tables: Vec<PathBuf>,
    /// Figure files (`.png`, `.svg` for each figure).
    pub figures: Vec<PathBuf>,
    /// The stitched `report.md`.
    pub report_md: PathBuf,
    /// Its blocks (`report.json` beside it).
    pub document: Document,
    /// What was skipped and why (also written into `report.md`).
    pub notes: Vec<String>,
}

/// Writes one table (`.md`, `.csv`, `.json`) and appends it to the report.
fn emit(
    table: &Table,
    out_dir: &Path,
    stem: &str,
    md: &mut Document,
    files: &mut ReportFiles,
) -> Result<()> {
    files.tables.extend(table.write_all(out_dir, stem)?);
    md.table(table, stem);
    Ok(())
}

/// Links a written figure in the report.
fn link_figure(
    paths: Vec<PathBuf>,
    caption: &str,
    stem: &str,
    md: &mut Document,
    files: &mut ReportFiles,
) {
    files.figures.extend(paths);
    md.figure(caption, stem);
}

/// Writes `doc` as `<stem>.md` (rendered in place) and `<stem>.json` (its blocks)
/// into `out_dir`; returns the markdown's path.
fn write_document(doc: &Document, out_dir: &Path, stem: &str) -> Result<PathBuf> {
    let md = out_dir.join(format!("{stem}.md"));
    let text = doc.render(Placement::default());
    write_atomic(&md, text.as_bytes()).map_err(io_err(&md))?;
    doc.write(&out_dir.join(format!("{stem}.json")))?;
    Ok(md)
}

/// The seeds section: how many seeds each number averages.
fn seeds_section(run: &SummarizedRun, md: &mut Document) {
    md.heading(2, "Seeds");
    md.text("Every increase is the mean over seeds; ± is the sample standard deviation (divisor n - 1) over the same seeds.");
    let mut items = Vec::new();
    let rewards = run.data.rewards.iter().zip(&run.data.seeds);
    for ((r, seeds), summary) in rewards.zip(&run.summaries) {
        let ids: Vec<String> = seeds.iter().map(|s| s.seed.to_string()).collect();
        let epochs = summary
            .iter()
            .map(|e| format!("{}:{}", e.epoch, e.n_seeds))
            .collect::<Vec<_>>()
            .join(", ");
        items.push(format!(
            "`{}`: {} seed(s) [{}]; seeds per epoch (epoch:n) {}",
            r.name,
            seeds.len(),
            ids.join(", "),
            if epochs.is_empty() {
                "—".to_string()
            } else {
                epochs
            }
        ));
    }
    md.list(items);
}

/// What a dry run's report says first.
const DRY_RUN_NOTE: &str = "**This is a dry run.** Every model (policy, reward models, ground truth) is a \
    seeded random stand-in with the real architecture and format but shrunk sizes, and the data are \
    toy-world text written as UltraFeedback / AlpacaFarm parquet: the run checks that the paper's \
    config runs end to end. Its numbers say nothing about the paper.";

/// Whether `run_dir` is a dry run (its `world/` stage wrote the dry-run manifest).
fn is_dry_run(run_dir: &Path) -> bool {
    run_dir
        .join("world")
        .join(crate::records::DRY_RUN_FILE)
        .exists()
}

/// Reads `run_dir` (see [`crate::records`] for the file formats) and writes into
/// `out_dir` (normally `<run>/report/`): `table1`, `reward_increase`, `table2`,
/// `table10` (each `.md`, `.csv`, `.json`), figures `reward_increase_vs_epoch`,
/// `reward_increase_vs_kl`, `gt_increase_bars` (each `.png`, `.svg`), and
/// `report.md`. Pieces whose inputs are absent (no `pg/` runs yet) are skipped and
/// listed in [`ReportFiles::notes`].
///
/// # Errors
/// A missing `rm_eval/rm_eval.json` or a malformed input names the file; write failures
/// name the path.
pub fn write_report(run_dir: &Path, out_dir: &Path) -> Result<ReportFiles> {
    let run = summarize_run(run_dir)?;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut files = ReportFiles::default();
    let (data, summaries) = (&run.data, &run.summaries);
    let mut md = Document::default();
    let dry = is_dry_run(run_dir);
    md.heading(
        1,
        format!(
            "{}: {}",
            if dry { "Dry-run report" } else { "Report" },
            run_dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
    );
    if dry {
        md.text(DRY_RUN_NOTE);
    }
    md.text(format!(
        "Run directory: `{}`. Policy: {}.",
        run_dir.display(),
        data.policy
    ));
    seeds_section(&run, &mut md);
    emit(
        &table1(&data.rewards)?,
        out_dir,
        "table1",
        &mut md,
        &mut files,
    )?;
    if let Some(l) = &data.low_variance {
        md.text(low_variance_note(l, data.table1_prompts));
    }
    if summaries.iter().all(Vec::is_empty) {
        files.notes.push(format!(
            "no policy-gradient runs under {}: Tables 2 and 10 and all figures skipped",
            run_dir.join("pg").display()
        ));
    } else {
        emit(
            &increase_table(data, summaries)?,
            out_dir,
            "reward_increase",
            &mut md,
            &mut files,
        )?;
        let opts = Table2Options::default();
        let t2 = table2(data, summaries, opts)?;
        emit(&t2.table, out_dir, "table2", &mut md, &mut files)?;
        md.text(format!(
            "Correlated over: {}. Excluded: {}. \"Reward Variance & Acc.\" = (reward variance + {}) / 2, unstandardised; \"On- & Off-Policy Acc.\" = their mean. Increases are means over seeds {:?} (the seeds every reward model has) at epoch {}; intervals are 95% percentile bootstrap intervals ({} replicates) resampling the evaluation prompts, the seeds and the Table 1 prompts.",
            t2.rewards.join(", "),
            if t2.excluded.is_empty() { "none".to_string() } else { t2.excluded.join(", ") },
            match opts.combined_accuracy {
                CombinedAccuracy::OnPolicy => "on-policy accuracy",
                CombinedAccuracy::OnAndOffPolicy => "mean of on- and off-policy accuracy",
            },
            t2.seeds,
            opts.epoch,
            super::bootstrap::BOOTSTRAP_REPLICATES
        ));
        md.heading(2, "What this run shows");
        md.list(super::findings::single_run_findings(&run, &t2, opts.epoch));
        let t10_epoch = default_table10_epoch(data, summaries);
        if let Some(epoch) = t10_epoch {
            emit(
                &table10(data, summaries, epoch)?,
                out_dir,
                "table10",
                &mut md,
                &mut files,
            )?;
        }
        md.heading(2, "Figures");
        match t10_epoch {
            Some(epoch) => {
                let bars = gt_increase_bars(
                    &[PolicyIncrease::from_run(data, summaries, epoch)],
                    &out_dir.join("gt_increase_bars"),
                )?;
                link_figure(
                    bars,
                    "Ground-truth increase per reward model",
                    "gt_increase_bars",
                    &mut md,
                    &mut files,
                );
            }
            None => files.notes.push(
                "no reward model has policy-gradient runs: Table 10 and the bar plot skipped"
                    .into(),
            ),
        }
        let stem = "reward_increase_vs_epoch";
        let paths = increase_vs_epoch(data, summaries, &out_dir.join(stem))?;
        link_figure(paths, "Reward increase vs epoch", stem, &mut md, &mut files);
        let stem = "reward_increase_vs_kl";
        let paths = increase_vs_kl(data, summaries, &out_dir.join(stem))?;
        link_figure(paths, "Reward increase vs KL", stem, &mut md, &mut files);
        let stem = "reward_spread";
        match super::spread::reward_spread(data, &out_dir.join(stem))? {
            Some(paths) => link_figure(
                paths,
                "Reward spread during policy gradient (within-group std, zero-std groups, \
                 batch variance)",
                stem,
                &mut md,
                &mut files,
            ),
            // Logs written before the spread existed (or fixtures without them).
            None => {
                md.text("(No `metrics.jsonl` logged the reward spread: its figure is skipped.)");
            }
        }
    }
    for (r, seeds) in data.rewards.iter().zip(&data.seeds) {
        if seeds.is_empty() {
            files
                .notes
                .push(format!("reward `{}`: no runs under pg/{}/", r.name, r.name));
        }
    }
    if !files.notes.is_empty() {
        md.heading(2, "Notes");
        md.blocks.push(Block::List {
            items: files.notes.clone(),
            spaced: false,
        });
    }
    files.report_md = write_document(&md, out_dir, "report")?;
    files.document = md;
    Ok(files)
}

/// Section 4.2 across policies: one run directory per policy (same reward models).
/// Writes `table10_<i>` per policy (`i` = position in `run_dirs`), the bar plot
/// `gt_increase_bars_policies`, and `report_policies.md` into `out_dir`. Each policy's
/// increases are taken at `epoch`, or at its [`default_table10_epoch`].
///
/// # Errors
/// As [`write_report`]; also [`AnalysisError::NoPolicyGradient`](super::AnalysisError::NoPolicyGradient)
/// when a run has no policy-gradient data.
pub fn write_policies_report(
    run_dirs: &[PathBuf],
    epoch: Option<u32>,
    contrasts: &[PolicyContrast],
    out_dir: &Path,
) -> Result<ReportFiles> {
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut files = ReportFiles::default();
    let mut md = Document::default();
    if run_dirs.iter().any(|d| is_dry_run(d)) {
        md.heading(
            1,
            "Section 4.2 (dry run): reward models across language models",
        );
        md.text(DRY_RUN_NOTE);
    } else {
        md.heading(1, "Section 4.2: reward models across language models");
    }
    let mut groups = Vec::new();
    let mut runs = Vec::new();
    for (i, dir) in run_dirs.iter().enumerate() {
        let run = summarize_run(dir)?;
        let e = epoch
            .or_else(|| default_table10_epoch(&run.data, &run.summaries))
            .ok_or_else(|| super::AnalysisError::NoPolicyGradient { run: dir.clone() })?;
        let seeds: Vec<String> = run
            .data
            .rewards
            .iter()
            .zip(&run.data.seeds)
            .filter(|(r, _)| !r.ground_truth)
            .map(|(r, s)| format!("{} {}", r.name, s.len()))
            .collect();
        md.text(format!(
            "Run `{}`; seeds per reward model: {}.",
            dir.display(),
            seeds.join(", ")
        ));
        emit(
            &table10(&run.data, &run.summaries, e)?,
            out_dir,
            &format!("table10_{i}"),
            &mut md,
            &mut files,
        )?;
        groups.push(PolicyIncrease::from_run(&run.data, &run.summaries, e));
        runs.push(run);
    }
    md.heading(2, "What these runs show");
    md.list(super::findings::policies_findings(&runs));
    for c in contrasts {
        md.blocks.extend(contrast_section(&runs, c));
    }
    let stem = "gt_increase_bars_policies";
    let paths = gt_increase_bars(&groups, &out_dir.join(stem))?;
    link_figure(
        paths,
        "Ground-truth increase per reward model and policy",
        stem,
        &mut md,
        &mut files,
    );
    files.report_md = write_document(&md, out_dir, "report_policies")?;
    files.document = md;
    Ok(files)
}
