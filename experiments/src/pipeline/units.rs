//! A run's independent units side by side (`exp run --jobs N`): the reward models'
//! training and the (reward, seed) policy-gradient runs read only finished stages and
//! write only their own directories, so they may run at the same time.
//!
//! [`run_units`] runs them on `jobs` worker threads. Each worker has its own rayon pool
//! of `threads / jobs` threads (candle's CPU kernels run their parallel loops on the
//! pool of the calling thread), so the units share the cores instead of each asking
//! for all of them; and each worker has its own device when devices are given
//! (`--devices cuda:0,cuda:1`: worker `w` takes device `w mod n`, so several units
//! share a GPU when there are more workers than GPUs).
//!
//! The results are the same as one after the other, bit for bit: a unit's seeds come
//! from its (reward, seed) label, not from the order units run in, and candle splits
//! its matrix products by the `RAYON_NUM_THREADS` count (not by the pool's size), so a
//! unit computes the same partial sums in the same order whichever pool runs them.

use crate::runtime::{DeviceSpec, Runtime};
use crate::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many units run at once, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parallelism {
    /// Units at once (0 or 1: one after another on the calling thread).
    pub jobs: usize,
    /// Devices the workers take in turn; empty: the run's device.
    pub devices: Vec<DeviceSpec>,
}

impl Parallelism {
    /// One unit at a time on the run's device.
    pub fn sequential() -> Self {
        Self::default()
    }

    /// Fails naming the device that cannot be opened (a GPU in a build without the
    /// `cuda` feature, or a missing ordinal), before anything runs.
    pub fn validate(&self) -> Result<()> {
        for d in &self.devices {
            d.open()
                .map_err(|e| Error::Input(format!("--devices: {e}")))?;
        }
        Ok(())
    }

    /// Worker `w`'s runtime: the run's `rt` on device `w mod n` of the given devices.
    pub fn runtime(&self, worker: usize, rt: &Runtime) -> Result<Runtime> {
        match self.devices.get(worker % self.devices.len().max(1)) {
            None => Ok(rt.clone()),
            Some(d) => Ok(Runtime {
                device: d.open()?,
                dtype: rt.dtype,
            }),
        }
    }
}

/// Threads per worker: the CPU thread count candle uses (`RAYON_NUM_THREADS`, else
/// every core) shared evenly by `jobs` workers, at least one each.
pub fn threads_per_worker(jobs: usize) -> usize {
    (candle_core::utils::get_num_threads() / jobs.max(1)).max(1)
}

/// A unit of work: given the index of the worker that runs it, its result.
pub type Unit<'a, T> = Box<dyn FnOnce(usize) -> Result<T> + Send + 'a>;

/// Runs `units` with at most `jobs` at once and returns their results in the units'
/// order. With `jobs <= 1` (or one unit) they run one after another on this thread
/// as worker 0. Otherwise each of `min(jobs, units)` workers takes the next unit not
/// yet started until none is left; after a unit fails, no further unit starts (the
/// running ones finish) and the skipped ones report that.
pub fn run_units<'a, T: Send>(jobs: usize, units: Vec<Unit<'a, T>>) -> Vec<Result<T>> {
    let workers = jobs.min(units.len());
    if workers <= 1 {
        return units.into_iter().map(|u| u(0)).collect();
    }
    let n = units.len();
    let queue: Vec<Mutex<Option<Unit<'a, T>>>> =
        units.into_iter().map(|u| Mutex::new(Some(u))).collect();
    let results: Vec<Mutex<Option<Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let threads = threads_per_worker(workers);
    std::thread::scope(|s| {
        for w in 0..workers {
            let (queue, results, next, failed) = (&queue, &results, &next, &failed);
            s.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |i| format!("unit-worker{w}-{i}"))
                    .build();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let unit = queue[i].lock().ok().and_then(|mut u| u.take());
                    let out = match (unit, &pool) {
                        _ if failed.load(Ordering::SeqCst) => Err(Error::Input(format!(
                            "unit {i} not started: an earlier unit failed"
                        ))),
                        (None, _) => Err(Error::Input(format!("unit {i} was taken twice"))),
                        (Some(u), Ok(pool)) => pool.install(|| u(w)),
                        (Some(_), Err(e)) => Err(Error::Input(format!(
                            "cannot start a thread pool of {threads} threads: {e}"
                        ))),
                    };
                    if out.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(out);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Error::Input(format!("unit {i} left no result"))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn units<'a>(n: usize, pause: Duration) -> Vec<Unit<'a, (usize, usize)>> {
        (0..n)
            .map(|i| {
                Box::new(move |w: usize| {
                    std::thread::sleep(pause);
                    Ok((i * i, w))
                }) as Unit<'a, (usize, usize)>
            })
            .collect()
    }

    #[test]
    fn results_come_back_in_order_whatever_the_workers() {
        for jobs in [0, 1, 2, 3, 8] {
            let out: Vec<_> = run_units(jobs, units(5, Duration::ZERO))
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                out.iter().map(|o| o.0).collect::<Vec<_>>(),
                [0, 1, 4, 9, 16]
            );
            let workers = jobs.clamp(1, 5);
            assert!(out.iter().all(|o| o.1 < workers), "jobs {jobs}: {out:?}");
        }
    }

    #[test]
    fn units_overlap_with_two_jobs() {
        // Four sleeping units: about two pauses with two workers, four with one.
        let pause = Duration::from_millis(150);
        let start = Instant::now();
        run_units(2, units(4, pause));
        let two = start.elapsed();
        assert!(two < pause * 3, "two workers took {two:?}");
    }

    #[test]
    fn a_failure_stops_later_units_and_is_reported() {
        let mut list: Vec<Unit<'_, usize>> = vec![Box::new(|_| Err(Error::Input("boom".into())))];
        for i in 1..4 {
            list.push(Box::new(move |_| Ok(i)));
        }
        let out = run_units(1, list);
        assert!(out[0].as_ref().unwrap_err().to_string().contains("boom"));
        // One after another, later units still run (the caller stops at the first error).
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 3);
        let mut list: Vec<Unit<'_, usize>> = vec![Box::new(|_| Err(Error::Input("boom".into())))];
        list.push(Box::new(|_| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(1)
        }));
        for i in 2..6 {
            list.push(Box::new(move |_| Ok(i)));
        }
        let out = run_units(2, list);
        assert!(out[0].is_err());
        let skipped = out.iter().filter(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("not started"))
        });
        assert!(skipped.count() >= 3, "{out:?}");
    }

    #[test]
    fn workers_take_the_devices_in_turn() {
        let p = Parallelism {
            jobs: 3,
            devices: vec![DeviceSpec::Cpu, DeviceSpec::Cpu],
        };
        p.validate().unwrap();
        let rt = Runtime::cpu();
        for w in 0..3 {
            assert!(p.runtime(w, &rt).unwrap().device.is_cpu());
        }
        assert!(Parallelism::sequential()
            .runtime(5, &rt)
            .unwrap()
            .device
            .is_cpu());
        assert_eq!(threads_per_worker(0), candle_core::utils::get_num_threads());
        assert!(threads_per_worker(1000) == 1);
    }
}
