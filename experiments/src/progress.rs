//! Progress of the running pipeline stage. The pipeline installs a [`Reporter`] on
//! its thread for the length of one stage; the stage announces its work in one
//! [`Unit`] and counts it: training loops announce their updates with [`set_length`]
//! and count them with [`inc`]; sampling and scoring stages announce sequences with
//! [`set_work`], and the sampler and the reward scorer count every sequence they finish
//! with [`advance`]. A counter counts only work of its own unit, so the samples a
//! training stage draws for its evaluations do not move its update counter. All of it
//! is a no-op when nothing is installed (`--quiet`, a library call). On a terminal the
//! reporter draws a counter with an ETA; otherwise (CI, nohup) it prints a plain line
//! every [`PLAIN_EVERY`].

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Interval of the plain progress lines when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    static CURRENT: RefCell<Option<Counter>> = const { RefCell::new(None) };
}

/// What a stage's counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Optimiser updates (training stages).
    #[default]
    Updates,
    /// Sequences sampled or scored (sampling and scoring stages).
    Sequences,
}

impl Unit {
    /// The word shown after the counter.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Updates => "updates",
            Unit::Sequences => "sequences",
        }
    }

    fn code(self) -> u8 {
        match self {
            Unit::Updates => 0,
            Unit::Sequences => 1,
        }
    }

    fn from_code(code: u8) -> Self {
        if code == 1 {
            Unit::Sequences
        } else {
            Unit::Updates
        }
    }
}

/// Work done and announced (0: not announced) of the current stage, in its unit.
#[derive(Clone, Default)]
struct Counter {
    pos: Arc<AtomicU64>,
    len: Arc<AtomicU64>,
    unit: Arc<AtomicU8>,
    bar: Option<ProgressBar>,
}

/// Announces that the current stage makes `len` updates, `done` of them already
/// (a resumed stage).
pub fn set_length(len: u64, done: u64) {
    set_work(Unit::Updates, len, done);
}

/// Announces that the current stage does `len` pieces of work in `unit`, `done` of
/// them already (a resumed stage).
pub fn set_work(unit: Unit, len: u64, done: u64) {
    with(|c| {
        c.unit.store(unit.code(), Ordering::Relaxed);
        c.len.store(len, Ordering::Relaxed);
        c.pos.store(done, Ordering::Relaxed);
        if let Some(b) = &c.bar {
            b.set_prefix(unit.label());
            b.set_length(len);
            b.set_position(done);
            b.reset_eta();
        }
    });
}

/// Counts one update of the current stage.
pub fn inc() {
    advance(Unit::Updates, 1);
}

/// Counts `n` pieces of work in `unit`; ignored unless the current stage counts `unit`.
pub fn advance(unit: Unit, n: u64) {
    with(|c| {
        if Unit::from_code(c.unit.load(Ordering::Relaxed)) != unit {
            return;
        }
        c.pos.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &c.bar {
            b.inc(n);
        }
    });
}

fn with(f: impl FnOnce(&Counter)) {
    CURRENT.with(|c| {
        if let Some(c) = c.borrow().as_ref() {
            f(c);
        }
    });
}

/// The display of one stage; dropping it ends the stage's display.
pub struct Reporter {
    name: String,
    start: Instant,
    bar: Option<ProgressBar>,
    counter: Counter,
    plain: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Reporter {
    /// Starts showing stage `name` on stderr (a bar on a terminal, else plain lines
    /// every [`PLAIN_EVERY`]) and installs its counter on this thread.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, std::io::stderr().is_terminal())
    }

    /// [`start`](Self::start) with plain lines even on a terminal: for stages that run
    /// side by side (one bar each would overwrite the others; a line per stage every
    /// [`PLAIN_EVERY`] stays readable).
    pub fn start_lines(name: &str) -> Self {
        Self::start_with(name, false)
    }

    fn start_with(name: &str, bar: bool) -> Self {
        let counter = Counter::default();
        let (bar, plain) = if bar {
            let bar = ProgressBar::new(0);
            let template = "{spinner} [{elapsed_precise}] {msg} {pos}/{len} {prefix}, ETA {eta}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(format!("{name}:"));
            bar.set_prefix(Unit::Updates.label());
            bar.enable_steady_tick(Duration::from_millis(250));
            (Some(bar), None)
        } else {
            (None, Some(plain_lines(name, &counter)))
        };
        let counter = Counter {
            bar: bar.clone(),
            ..counter
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(counter.clone()));
        Self {
            name: name.into(),
            start: Instant::now(),
            bar,
            counter,
            plain,
        }
    }

    /// Ends the display with `message` after the stage's name.
    pub fn finish(mut self, message: &str) {
        self.stop();
        let line = format!("{}: {message}", self.name);
        match &self.bar {
            Some(b) => b.finish_with_message(line),
            None => eprintln!("{line}"),
        }
    }

    fn stop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
        if let Some((tx, handle)) = self.plain.take() {
            drop(tx);
            let _ = handle.join();
        }
    }

    /// Seconds since the stage started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// `(done, announced)` updates so far.
    pub fn position(&self) -> (u64, u64) {
        (
            self.counter.pos.load(Ordering::Relaxed),
            self.counter.len.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop();
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

/// A thread printing `name: <elapsed>, <pos>/<len> updates, ETA <s>` every
/// [`PLAIN_EVERY`] until its sender is dropped.
fn plain_lines(name: &str, c: &Counter) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let (name, pos, len, unit) = (
        name.to_string(),
        c.pos.clone(),
        c.len.clone(),
        c.unit.clone(),
    );
    let start = Instant::now();
    let handle = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(PLAIN_EVERY) {
            let (p, l) = (pos.load(Ordering::Relaxed), len.load(Ordering::Relaxed));
            let u = Unit::from_code(unit.load(Ordering::Relaxed));
            eprintln!("{}", plain_line(&name, start.elapsed(), p, l, u));
        }
    });
    (tx, handle)
}

/// One plain progress line; the ETA extrapolates the rate so far.
pub fn plain_line(name: &str, elapsed: Duration, pos: u64, len: u64, unit: Unit) -> String {
    let secs = elapsed.as_secs_f64();
    if len == 0 {
        return format!("{name}: running, {secs:.0} s");
    }
    let eta = if pos > 0 && pos <= len {
        format!("{:.0} s", secs / pos as f64 * (len - pos) as f64)
    } else {
        "?".into()
    };
    format!(
        "{name}: {pos}/{len} {}, {secs:.0} s, ETA {eta}",
        unit.label()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_to_the_installed_reporter_only() {
        inc(); // nothing installed: a no-op
        let r = Reporter::start("sft");
        set_length(10, 2);
        inc();
        inc();
        assert_eq!(r.position(), (4, 10));
        r.finish("done");
        inc();
        set_length(5, 0);
        let r = Reporter::start("rms");
        assert_eq!(r.position(), (0, 0));
    }

    #[test]
    fn a_counter_counts_only_its_own_unit() {
        let r = Reporter::start("normalize");
        set_work(Unit::Sequences, 100, 10);
        advance(Unit::Sequences, 20);
        inc(); // an update: not this stage's unit
        assert_eq!(r.position(), (30, 100));
        r.finish("done");
        let r = Reporter::start("pg/gt/seed0");
        set_length(4, 0);
        advance(Unit::Sequences, 64); // its evaluation's samples
        inc();
        assert_eq!(r.position(), (1, 4));
    }

    #[test]
    fn plain_lines_show_the_counter_and_an_eta() {
        let s = plain_line("pg/gt/seed0", Duration::from_secs(20), 5, 25, Unit::Updates);
        assert_eq!(s, "pg/gt/seed0: 5/25 updates, 20 s, ETA 80 s");
        let s = plain_line("normalize", Duration::from_secs(12), 0, 0, Unit::Sequences);
        assert_eq!(s, "normalize: running, 12 s");
        let s = plain_line(
            "normalize",
            Duration::from_secs(12),
            30,
            90,
            Unit::Sequences,
        );
        assert_eq!(s, "normalize: 30/90 sequences, 12 s, ETA 24 s");
        let s = plain_line("rms/rm-0", Duration::from_secs(3), 0, 8, Unit::Updates);
        assert!(s.ends_with("ETA ?"), "{s}");
    }
}
