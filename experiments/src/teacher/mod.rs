//! `rmteach teacher`: which reward model will teach *this* policy best? For each
//! policy, `S` responses per prompt are sampled once ([`cache`], resumable), scored by
//! every reward model and the ground truth ([`scoring`]), and summarised per
//! (policy, reward model) with the shared metrics core ([`stats`]): reward variance
//! under the policy, on- and off-policy accuracy, the share of prompts whose samples
//! the RM cannot tell apart, Proposition 3's relative time to raise the reward, and
//! the teacher score ([`TEACHER_SCORE_DEFINITION`]). [`output`] writes `teacher.json`,
//! `teacher.md`, `teacher.csv` and the figure; [`run`] ties the steps together.

pub mod cache;
pub mod evidence;
pub mod inputs;
pub mod output;
pub mod run;
pub mod scoring;
pub mod stats;

pub use cache::{SampleCache, SampleLine};
pub use inputs::{load_prompt_texts, RewardSource, TeacherInputs};
pub use output::{PolicyReport, TeacherReport};
pub use run::run_teacher;
pub use stats::{rank, rm_stats, RmStats, ZERO_STD_TOLERANCE};

/// The name of the ground truth in `samples.jsonl`'s `scores`.
pub const GROUND_TRUTH: &str = "gt";

/// What the teacher score is (stated in `--help`, `teacher.md` and `teacher.json`).
pub const TEACHER_SCORE_DEFINITION: &str = "teacher score = max(0, 2 * accuracy - 1) * \
sqrt(reward variance), where reward variance is the mean over prompts of the unbiased \
variance of the RM's normalised rewards of the policy's samples, and accuracy is the \
on-policy accuracy against the ground truth (--gt), else the off-policy accuracy on \
--prefs; without either there is no score and RMs are ranked by reward variance alone. \
An RM no better than chance (accuracy <= 0.5) scores 0 however much variance it induces; \
among accurate RMs, the one inducing more variance scores higher";

/// How Proposition 3 is read (stated in `--help` and `teacher.md`).
pub const PROPOSITION3_READING: &str = "Proposition 3: the time for policy gradient to raise \
the expected reward by gamma grows like 1/sqrt(reward variance) under the initial policy. \
`relative_time` is sqrt(max variance / variance) across the RMs of one policy: 1 for the \
RM inducing the most variance, 2 for one needing about twice as long, empty (infinite) \
for an RM with zero variance. It compares RMs of one policy; it is not a wall-clock time";
