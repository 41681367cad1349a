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
