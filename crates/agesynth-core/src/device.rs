//! Device selection: CPU always, CUDA when built with the `cuda` feature.

use std::{fmt, str::FromStr};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which device to compute on, as a user names it: `cpu`, `cuda`,
/// `cuda:N` or `auto` (CUDA device 0 when available, else CPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
    /// CUDA device 0 if this build and machine have one, else the CPU.
    #[default]
    Auto,
}

impl DeviceSpec {
    /// Opens the device. Asking for CUDA in a build without the `cuda` feature,
    /// or on a machine without that GPU, is an [`Error::Device`].
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Device(format!(
                        "cuda:{i} requested, but agesynth was built without the `cuda` feature"
                    )));
                }
                Device::new_cuda(i).map_err(|e| Error::Device(format!("cuda:{i}: {e}")))
            }
            DeviceSpec::Auto => {
                if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "unknown device `{s}`: use cpu, cuda, cuda:N or auto"
                    ))
                }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Auto => write!(f, "auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("CUDA", DeviceSpec::Cuda(0)),
            ("cuda:2", DeviceSpec::Cuda(2)),
            ("auto", DeviceSpec::Auto),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cpu_and_auto_always_open() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        assert!(DeviceSpec::Auto.open().is_ok());
        if !cfg!(feature = "cuda") {
            assert!(DeviceSpec::Cuda(0).open().is_err());
        }
    }
}
