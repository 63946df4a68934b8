//! The main job's check of `rmteach teacher`: on finished toy runs, does the teacher
//! score, computed on a run's initial (SFT) policy before any RLHF, predict the
//! ground-truth increase that the run then measured?
//!
//! Section 4.1 (one policy, its RMs): the Spearman correlation across RMs. Section 4.2
//! (one run per policy, the same RMs): per policy, does the teacher score name the RM
//! that raised the ground truth most, and if not, is the gap resolved by the seeds?
//! Written before the 4.2 outcome was looked at: the score max(0, 2 acc - 1) sqrt(var)
//! puts an RM at or below chance on the policy last, whatever its variance.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use rmteach_experiments::analysis::bootstrap::BOOTSTRAP_REPLICATES;
use rmteach_experiments::analysis::{load_run, RunData};
use rmteach_experiments::pipeline::RunConfig;
use rmteach_experiments::rundir::{read_json, RunDir};
use rmteach_experiments::stages::evaluate::EvalOptions;
use rmteach_experiments::stages::prefdata::rlhf_pairs;
use rmteach_experiments::teacher::evidence::{teacher_vs_increase, Evidence};
use rmteach_experiments::teacher::{run_teacher, RewardSource, SampleCache, TeacherInputs};

/// Seed of the main job's teacher samples (not the normalisation stage's, so that they
/// are a fresh draw from the same policy).
const EVIDENCE_SAMPLE_SEED: u64 = 0x7EAC;

/// Samples per prompt, as the normalisation stage draws them.
const SAMPLES: usize = 10;

/// A finished run's teacher evidence: the teacher run on its SFT policy and, per epoch
/// with increases, the correlations (or why they could not be computed).
struct RunEvidence {
    /// The RMs (teacher names = the run's reward names), in the run's order.
    rms: Vec<String>,
    /// RLHF prompt rows sampled.
    prompts: usize,
    /// The teacher's output directory.
    out: PathBuf,
    /// Per epoch > 0: the evidence or the reason it is missing.
    epochs: Vec<(u32, std::result::Result<Evidence, String>)>,
}

/// Runs `teacher` on the SFT policy of the finished run `run_dir` with the RMs `rms`
/// (name, directory), the run's toy ground truth and its RLHF prompts (also the
/// off-policy pairs), sampled as the normalisation stage samples (10 per prompt, 16
/// tokens, top-k 50, another seed); then correlates with the run's increases.
fn run_evidence(run_dir: &Path, rms: Vec<(String, PathBuf)>, quiet: bool) -> Result<RunEvidence> {
    let rlhf = rlhf_pairs(&RunDir::open(run_dir)?.stage("prefdata")?)?;
    let out = run_dir.join("teacher");
    let inputs = TeacherInputs {
        policies: vec![run_dir.join("sft")],
        rms: rms
            .iter()
            .map(|(n, d)| (n.clone(), RewardSource::Dir(d.clone())))
            .collect(),
        gt: Some(RewardSource::Toy(run_dir.join("world"))),
        prompts: rlhf.iter().map(|l| l.pair.prompt.clone()).collect(),
        prefs: rlhf.into_iter().map(|l| l.pair).collect(),
        sampling: EvalOptions {
            samples_per_prompt: SAMPLES,
            max_new_tokens: 16,
            seed: EVIDENCE_SAMPLE_SEED,
            ..EvalOptions::default()
        },
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::F32,
        out: out.clone(),
        progress: !quiet,
    };
    run_teacher(&inputs)?;
    let data: RunData =
        load_run(run_dir).with_context(|| format!("reading the run {}", run_dir.display()))?;
    let cache = SampleCache::open(&out, &inputs.settings())?;
    let policy = inputs.policy_name(&inputs.policies[0]);
    let lines = cache.policy_lines(&policy);
    let names: Vec<String> = rms.into_iter().map(|x| x.0).collect();
    let mut epochs: Vec<u32> = data
        .seeds
        .iter()
        .flatten()
        .flat_map(|s| s.records.iter().map(|r| r.epoch))
        .filter(|&e| e > 0)
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    Ok(RunEvidence {
        prompts: inputs.prompts.len(),
        out,
        epochs: epochs
            .into_iter()
            .map(|e| {
                let ev = teacher_vs_increase(&data, &lines, &names, SAMPLES, e);
                (e, ev.map_err(|x| x.to_string()))
            })
            .collect(),
        rms: names,
    })
}

/// `path` relative to `root` for a report link.
fn rel(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The Section 4.1 evidence on the finished run `run_dir` (its RMs: `rms/rm-*`), as a
/// report section (markdown; links relative to `root`).
pub fn section_41(run_dir: &Path, root: &Path, quiet: bool) -> Result<String> {
    let rms_dir = run_dir.join("rms");
    let mut rms: Vec<(String, PathBuf)> = std::fs::read_dir(&rms_dir)
        .with_context(|| format!("reading {}", rms_dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("config.json").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    rms.sort();
    let ev = run_evidence(run_dir, rms, quiet)?;
    let r = rel(&ev.out, root);
    let n = ev.rms.len();
    let mut md = format!(
        "`rmteach teacher` on the run's SFT policy, its {n} RMs and the toy ground truth, \
         with a fresh draw of {SAMPLES} samples for each of the {} RLHF prompt rows \
         ([{r}/teacher.md]({r}/teacher.md), [{r}/teacher.png]({r}/teacher.png)). \
         Does its ranking predict the ground-truth increase the run measured? Spearman \
         across the RMs; the 95% intervals resample the teacher's prompts and the run's \
         seeds together ({BOOTSTRAP_REPLICATES} replicates). With {n} RMs a rank \
         correlation is coarse: read the interval.\n\n",
        ev.prompts
    );
    for (epoch, e) in &ev.epochs {
        match e {
            Ok(e) => {
                md.push_str(&e.markdown());
                md.push_str(&pick_sentence(e, *epoch));
            }
            Err(why) => {
                let _ = writeln!(md, "Epoch {epoch}: not computed ({why}).\n");
            }
        }
    }
    Ok(md)
}

/// One sentence: the teacher's pick against the measured best after `epoch`.
fn pick_sentence(e: &Evidence, epoch: u32) -> String {
    match e.pick_vs_best() {
        Some(p) => format!(
            "After epoch {epoch} the teacher score's top RM is {}, the largest ground-truth \
             increase is {}'s: {}{}.\n\n",
            e.rms[p.pick],
            e.rms[p.best],
            p.reading(),
            match (p.other, p.interval) {
                (Some(o), Some(i)) => format!(
                    " ({} - {}: {:+.4}, 95% {})",
                    e.rms[p.best],
                    e.rms[o],
                    p.gap,
                    i.text()
                ),
                _ => String::new(),
            }
        ),
        None => format!("After epoch {epoch}: no RM has a finite score and increase.\n\n"),
    }
}

/// The RMs a policy run of an experiment trained with: its `pg.rewards` that name
/// `rm.external` entries of its `config.json` (name, directory; `from_run` entries are
/// relative to the experiment's directory, where its runs run).
fn policy_run_rms(run_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let path = run_dir.join("config.json");
    let config: RunConfig = read_json(&path)?;
    let exp_dir = run_dir.parent().unwrap_or(Path::new("."));
    let rms: Vec<(String, PathBuf)> = config
        .pg
        .rewards
        .iter()
        .flatten()
        .filter_map(|name| {
            config
                .rm
                .external
                .iter()
                .find(|e| &e.name == name)
                .map(|e| (name.clone(), e.resolve(exp_dir)))
        })
        .collect();
    if rms.is_empty() {
        anyhow::bail!(
            "{}: no pg.rewards entry names an rm.external reward model",
            path.display()
        );
    }
    Ok(rms)
}

/// The Section 4.2 evidence on the finished experiment `exp_dir` (one sub-directory
/// per policy run, each trained with the same RMs), as a report section.
pub fn section_42(exp_dir: &Path, root: &Path, quiet: bool) -> Result<String> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(exp_dir)
        .with_context(|| format!("reading {}", exp_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file() && p.join("pg").is_dir())
        .collect();
    runs.sort();
    let mut md = format!(
        "`rmteach teacher` on each policy run's SFT policy, with the RMs that run trained \
         with and its toy ground truth ({SAMPLES} fresh samples per RLHF prompt row). Per \
         policy and epoch: the teacher score's top RM against the RM that raised the \
         ground truth most, and the gap in ground-truth increase between the best and the \
         other RM compared (the pick when it is not the best, else the runner-up) with a \
         95% bootstrap interval over the run's seeds (paired). The per-RM tables and \
         Spearman correlations follow the summary (with 3 RMs a rank correlation is very \
         coarse).\n\n\
         | policy run | epoch | teacher's pick | largest GT increase | compared with | gap | 95% interval | reading |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    let mut details = String::new();
    for run in &runs {
        let name = run
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let ev = run_evidence(run, policy_run_rms(run)?, quiet)?;
        let r = rel(&ev.out, root);
        let _ = writeln!(
            details,
            "#### {name}\n\n[{r}/teacher.md]({r}/teacher.md), [{r}/teacher.png]({r}/teacher.png)\n"
        );
        for (epoch, e) in &ev.epochs {
            match e.as_ref().map(|e| (e, e.pick_vs_best())) {
                Ok((e, Some(p))) => {
                    let _ = writeln!(
                        md,
                        "| {name} | {epoch} | {} | {} | {} | {:+.4} | {} | {} |",
                        e.rms[p.pick],
                        e.rms[p.best],
                        p.other.map_or("-", |o| e.rms[o].as_str()),
                        p.gap,
                        p.interval.map_or_else(|| "-".into(), |i| i.text()),
                        p.reading()
                    );
                    details.push_str(&e.markdown());
                }
                Ok((_, None)) => {
                    let _ = writeln!(
                        md,
                        "| {name} | {epoch} | - | - | - | - | - | no finite values |"
                    );
                }
                Err(why) => {
                    let _ = writeln!(
                        md,
                        "| {name} | {epoch} | - | - | - | - | - | not computed: {why} |"
                    );
                }
            }
        }
    }
    md.push('\n');
    md.push_str(&details);
    Ok(md)
}
