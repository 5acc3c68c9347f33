//! Picking the device that runs the kernels: the GPU when there is one, the
//! CPU reference otherwise, or whichever the user forces.

use super::error::{CheckpointError, Result};
use crate::device::Device;

/// The `--device` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// GPU 0 when usable, else the CPU.
    #[default]
    Auto,
    /// The CPU reference path.
    Cpu,
    /// GPU 0; an error when there is none.
    Gpu,
}

/// A device and a sentence saying why it was chosen, for the report.
#[derive(Debug)]
pub struct SelectedDevice {
    /// The device.
    pub device: Device,
    /// Why this one ("no usable GPU: no CUDA driver found ...").
    pub reason: String,
}

/// Resolves a [`DeviceChoice`]. Forcing the GPU on a machine without one is
/// an error that carries the reason (no driver, no device, too old).
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice> {
    match choice {
        DeviceChoice::Cpu => Ok(SelectedDevice { device: Device::Cpu, reason: "CPU requested".into() }),
        DeviceChoice::Gpu => match Device::cuda(0) {
            Ok(device) => Ok(SelectedDevice { device, reason: "GPU requested".into() }),
            Err(e) => Err(CheckpointError::NoGpu(e)),
        },
        DeviceChoice::Auto => match Device::best_available() {
            (device @ Device::Cuda(_), _) => Ok(SelectedDevice { device, reason: "GPU found".into() }),
            (device, why) => {
                let reason = match why {
                    Some(e) => format!("no usable GPU: {e}"),
                    None => "no usable GPU".into(),
                };
                Ok(SelectedDevice { device, reason })
            }
        },
    }
}

/// A short name of a device: `cpu` (the reference path), or `cuda:0 (NVIDIA H100, sm_90)`.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(gpu) => {
            let (major, minor) = gpu.capability();
            let name = gpu.name().unwrap_or_else(|_| "unknown GPU".into());
            format!("cuda:{} ({name}, sm_{major}{minor})", gpu.ordinal())
        }
    }
}
