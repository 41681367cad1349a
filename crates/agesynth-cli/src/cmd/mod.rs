//! One module per command group.

pub mod age;
pub mod data;
pub mod demo;
pub mod eval;
pub mod serve;
pub mod synth;
pub mod train;
pub mod weights;

use std::path::Path;

use agesynth_core::DeviceSpec;

/// A gender as UTKFace labels it (`train critic --only-gender`, `sample --gender`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GenderArg {
    /// Faces labelled female.
    Female,
    /// Faces labelled male.
    Male,
}

impl From<GenderArg> for agesynth_core::Gender {
    fn from(g: GenderArg) -> Self {
        match g {
            GenderArg::Female => agesynth_core::Gender::Female,
            GenderArg::Male => agesynth_core::Gender::Male,
        }
    }
}

/// A model preset of the generators (the same four for FaceGAN and the
/// cStyleGAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// A few channels, for tests.
    Tiny,
    /// 64 px, sized for CPU training.
    Cpu64,
    /// 128 px, the paper's resolution.
    Paper128,
    /// 256 px, for a GPU.
    Gpu256,
}

impl Preset {
    /// The preset's name as the model configs know it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Cpu64 => "cpu64",
            Preset::Paper128 => "paper128",
            Preset::Gpu256 => "gpu256",
        }
    }
}

/// How FaceGAN's generator takes the target age at its bottleneck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bottleneck {
    /// FiLM modulation of the bottleneck features.
    Modulation,
    /// One-hot planes concatenated to the bottleneck features.
    Concat,
}

impl From<Bottleneck> for agesynth_facegan::BottleneckAge {
    fn from(b: Bottleneck) -> Self {
        match b {
            Bottleneck::Modulation => agesynth_facegan::BottleneckAge::Modulation,
            Bottleneck::Concat => agesynth_facegan::BottleneckAge::Concat,
        }
    }
}

/// Where FaceGAN's residual output adds the generator's change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResidualSpaceArg {
    /// Each channel in its own tanh domain.
    Channel,
    /// Every channel of a pixel moved alike, at the pixel's luma.
    Luma,
}

impl From<ResidualSpaceArg> for agesynth_facegan::ResidualSpace {
    fn from(r: ResidualSpaceArg) -> Self {
        match r {
            ResidualSpaceArg::Channel => agesynth_facegan::ResidualSpace::Channel,
            ResidualSpaceArg::Luma => agesynth_facegan::ResidualSpace::Luma,
        }
    }
}

/// A device (clap parser for `--device`: cpu, cuda, cuda:N or auto).
pub fn device(s: &str) -> Result<DeviceSpec, String> {
    s.parse::<DeviceSpec>().map_err(|e| e.to_string())
}

/// A count of at least 1 (clap parser for `--rows`, `--batch`, ...).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// A number from 0 to 1 (clap parser for `--feather`); NaN is refused.
pub fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("not a number: {e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} is not between 0 and 1"))
    }
}

/// Checks, before any work, that `out` can be an output folder: an existing
/// folder, or a path whose nearest existing ancestor is a folder (nothing is
/// created here). An existing file there is an error naming it.
pub fn check_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "--out {} is an existing file, not a folder: choose another --out",
            out.display()
        );
    }
    let mut up = out.parent();
    while let Some(p) = up.filter(|p| !p.as_os_str().is_empty()) {
        if p.exists() {
            if !p.is_dir() {
                anyhow::bail!(
                    "--out {}: {} is a file, so the folder cannot be created",
                    out.display(),
                    p.display()
                );
            }
            break;
        }
        up = p.parent();
    }
    Ok(())
}

/// Checks, before any work, that `out` can be an output file: not a
/// folder, and its folder can exist (see [`check_out_dir`]).
pub fn check_out_file(out: &Path) -> anyhow::Result<()> {
    if out.is_dir() {
        anyhow::bail!(
            "--out {} is a folder: name the file to write",
            out.display()
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        check_out_dir(dir)?;
    }
    Ok(())
}
