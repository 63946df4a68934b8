//! Progress of the running pipeline stage. The pipeline installs a [`Reporter`] on
//! its thread for the length of one stage; training loops announce their number of
//! updates with [`set_length`] and count them with [`inc`] (no-ops when nothing is
//! installed, e.g. `--quiet` or a library call). On a terminal the reporter draws an
//! update counter with an ETA; otherwise (CI, nohup) it prints a plain line every
//! [`PLAIN_EVERY`].

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Interval of the plain progress lines when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    static CURRENT: RefCell<Option<Counter>> = const { RefCell::new(None) };
}

/// Updates done and announced (0: not announced) of the current stage.
#[derive(Clone, Default)]
struct Counter {
    pos: Arc<AtomicU64>,
    len: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

/// Announces that the current stage makes `len` updates, `done` of them already
/// (a resumed stage).
pub fn set_length(len: u64, done: u64) {
    with(|c| {
        c.len.store(len, Ordering::Relaxed);
        c.pos.store(done, Ordering::Relaxed);
        if let Some(b) = &c.bar {
            b.set_length(len);
            b.set_position(done);
            b.reset_eta();
        }
    });
}

/// Counts one update of the current stage.
pub fn inc() {
    with(|c| {
        c.pos.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &c.bar {
            b.inc(1);
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
            let template = "{spinner} [{elapsed_precise}] {msg} {pos}/{len} updates, ETA {eta}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(format!("{name}:"));
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
    let (name, pos, len) = (name.to_string(), c.pos.clone(), c.len.clone());
    let start = Instant::now();
    let handle = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(PLAIN_EVERY) {
            let (p, l) = (pos.load(Ordering::Relaxed), len.load(Ordering::Relaxed));
            eprintln!("{}", plain_line(&name, start.elapsed(), p, l));
        }
    });
    (tx, handle)
}

/// One plain progress line; the ETA extrapolates the rate so far.
pub fn plain_line(name: &str, elapsed: Duration, pos: u64, len: u64) -> String {
    let secs = elapsed.as_secs_f64();
    if len == 0 {
        return format!("{name}: running, {secs:.0} s");
    }
    let eta = if pos > 0 && pos <= len {
        format!("{:.0} s", secs / pos as f64 * (len - pos) as f64)
    } else {
        "?".into()
    };
    format!("{name}: {pos}/{len} updates, {secs:.0} s, ETA {eta}")
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
    fn plain_lines_show_the_counter_and_an_eta() {
        let s = plain_line("pg/gt/seed0", Duration::from_secs(20), 5, 25);
        assert_eq!(s, "pg/gt/seed0: 5/25 updates, 20 s, ETA 80 s");
        let s = plain_line("normalize", Duration::from_secs(12), 0, 0);
        assert_eq!(s, "normalize: running, 12 s");
        let s = plain_line("rms/rm-0", Duration::from_secs(3), 0, 8);
        assert!(s.ends_with("ETA ?"), "{s}");
    }
}
