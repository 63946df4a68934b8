//! Where models compute: a device and a dtype, parsed once at the edge (the run
//! config, `rmteach exp --device/--dtype`, `rmteach bench`) from their spellings
//! (`cpu`, `cuda`, `cuda:N`; `f32`, `bf16`) and opened into a [`Runtime`].

#[cfg(feature = "cuda")]
pub mod cuda;

use crate::{Error, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A device as written: `cpu`, `cuda` or `cuda:N` (not opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU: `cuda` (GPU 0, `None`) or `cuda:N`.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    /// The GPU ordinal, `None` for the CPU.
    pub fn ordinal(self) -> Option<usize> {
        match self {
            Self::Cpu => None,
            Self::Cuda(n) => Some(n.unwrap_or(0)),
        }
    }

    /// Opens the device (fails for a GPU without a build with the `cuda` feature); a
    /// CUDA device gets the `RMTEACH_CUDA_*` runtime settings (`runtime::cuda`).
    pub fn open(self) -> Result<Device> {
        match self.ordinal() {
            None => Ok(Device::Cpu),
            Some(n) => {
                let device = Device::new_cuda(n).map_err(|e| {
                    Error::Input(format!(
                        "device `{self}`: no CUDA device ({e}); build with `--features cuda` or use \"cpu\""
                    ))
                })?;
                #[cfg(feature = "cuda")]
                cuda::CudaSettings::from_env()?.apply(&device)?;
                Ok(device)
            }
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(None)),
            d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(Some(n))),
                _ => Err(format!(
                    "unknown device `{d}`; use \"cpu\", \"cuda\" or \"cuda:N\""
                )),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(None) => f.write_str("cuda"),
            Self::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

/// A dtype models run in: `f32` (the paper's) or `bf16` (bf16 weights; f32 optimiser
/// masters, moments, losses and softmax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DTypeSpec {
    /// 32-bit floats.
    #[default]
    F32,
    /// bfloat16.
    Bf16,
}

impl DTypeSpec {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }
}

impl FromStr for DTypeSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            d => Err(format!("unknown dtype `{d}`; use \"f32\" or \"bf16\"")),
        }
    }
}

impl fmt::Display for DTypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl TryFrom<String> for DTypeSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<DTypeSpec> for String {
    fn from(d: DTypeSpec) -> String {
        d.to_string()
    }
}

/// Where a stage computes: the device and the dtype its models run in.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The device models are loaded on.
    pub device: Device,
    /// The dtype models run in (the training stages take `F32` or `BF16`).
    pub dtype: DType,
}

impl Runtime {
    /// f32 on the CPU (what the tests use).
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }

    /// Opens `device` for models in `dtype`.
    pub fn open(device: DeviceSpec, dtype: DTypeSpec) -> Result<Self> {
        Ok(Self {
            device: device.open()?,
            dtype: dtype.dtype(),
        })
    }

    /// Fails unless the dtype is one the training stages run in (`F32`, `BF16`).
    pub fn check_training_dtype(&self) -> Result<()> {
        match self.dtype {
            DType::F32 | DType::BF16 => Ok(()),
            other => Err(Error::Input(format!(
                "training runs in f32 or bf16, not {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_bad_ones_name_the_choices() {
        for s in ["cpu", "cuda", "cuda:3"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap().ordinal(), Some(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap().ordinal(), Some(0));
        let e = "tpu".parse::<DeviceSpec>().unwrap_err();
        assert!(e.contains("`tpu`") && e.contains("cuda:N"), "{e}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        for s in ["f32", "bf16"] {
            assert_eq!(s.parse::<DTypeSpec>().unwrap().to_string(), s);
        }
        assert_eq!("bf16".parse::<DTypeSpec>().unwrap().dtype(), DType::BF16);
        let e = "f16".parse::<DTypeSpec>().unwrap_err();
        assert!(e.contains("`f16`") && e.contains("bf16"), "{e}");
    }
}
