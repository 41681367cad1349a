//! `agesynth data …`: dataset inspection.

use std::process::ExitCode;

use clap::Subcommand;

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {}

/// Runs a data command.
pub fn run(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
