//! `--jobs N` and `--devices ...` of `exp run` and `reproduce`: how many of a run's
//! independent units (the reward models' training, the (reward, seed)
//! policy-gradient runs) run at once, and on which devices.

use anyhow::{bail, Result};
use clap::Args;
use rmteach_experiments::pipeline::units::Parallelism;
use rmteach_experiments::runtime::DeviceSpec;

/// The flags, as parsed.
#[derive(Args, Debug, Clone, Default)]
pub struct JobsArgs {
    /// Run up to N of a run's independent units at once (the reward models' training,
    /// the (reward, seed) policy-gradient runs), each with its share of the CPU
    /// threads (RAYON_NUM_THREADS, else every core, divided by N). The records are
    /// the same as with --jobs 1, byte for byte.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Spread the units over these devices, comma-separated (cuda:0,cuda:1,...):
    /// worker w runs on device w mod n, so with more jobs than devices several units
    /// share a device. Every device is opened before anything runs.
    #[arg(long, value_delimiter = ',', value_name = "DEVICE,...")]
    pub devices: Vec<DeviceSpec>,
}

impl JobsArgs {
    /// The parallelism these flags ask for, `default_jobs` without `--jobs`; fails on
    /// `--jobs 0` or a device that cannot be opened in this build.
    pub fn parallelism(&self, default_jobs: usize) -> Result<Parallelism> {
        let jobs = self.jobs.unwrap_or(default_jobs);
        if jobs == 0 {
            bail!("--jobs 0: give at least 1 (one unit at a time)");
        }
        let p = Parallelism {
            jobs,
            devices: self.devices.clone(),
        };
        p.validate()?;
        Ok(p)
    }
}

/// Every core this process may use (at least 1): `reproduce`'s default `--jobs`.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        jobs: JobsArgs,
    }

    fn parse(args: &[&str]) -> Result<Parallelism> {
        let cli = Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))?;
        cli.jobs.parallelism(1)
    }

    #[test]
    fn jobs_and_devices_parse_and_are_checked() {
        assert_eq!(
            parse(&[]).unwrap(),
            Parallelism {
                jobs: 1,
                devices: vec![]
            }
        );
        let p = parse(&["--jobs", "3", "--devices", "cpu,cpu"]).unwrap();
        assert_eq!((p.jobs, p.devices.len()), (3, 2));
        let e = parse(&["--jobs", "0"]).unwrap_err().to_string();
        assert!(e.contains("--jobs 0"), "{e}");
        assert!(parse(&["--devices", "tpu:0"]).is_err());
        assert!(all_cores() >= 1);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_gpu_is_refused_without_the_cuda_feature() {
        let e = parse(&["--jobs", "2", "--devices", "cuda:0,cuda:1"]).unwrap_err();
        assert!(e.to_string().contains("--devices"), "{e}");
    }
}
