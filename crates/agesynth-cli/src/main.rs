//! `agesynth`: face age progression and regression from the command line.
//!
//! Each command group lives in its own module under `cmd/`; `main` parses the
//! arguments, runs the command and prints the whole cause chain of any error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc keeps large tensor buffers mapped between training steps instead of
/// returning them to the kernel and page-faulting them back in (see
/// `BENCHMARKS.md`, CPU kernels); set `MIMALLOC_PURGE_DELAY=-1` to keep them
/// for the whole run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Face age progression and regression with GANs.
#[derive(Debug, Parser)]
#[command(name = "agesynth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect face datasets.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Import pretrained face networks.
    #[command(subcommand)]
    Weights(cmd::weights::WeightsCommand),
    /// Train models (cStyleGAN).
    #[command(subcommand)]
    Train(cmd::train::TrainCommand),
    /// Render synthetic identities at every age group from a cStyleGAN: the
    /// paired data FaceGAN learns from.
    SynthPairs(cmd::synth::SynthPairsArgs),
    /// Render a sample grid (rows = latents, columns = age groups).
    Sample(cmd::synth::SampleArgs),
    /// Measure a generator: FaceGAN on FG-NET or UTKFace's held-out split
    /// against the copy-input and random-real baselines, or (`eval
    /// cstylegan`) a cStyleGAN's samples.
    Eval(cmd::eval::EvalArgs),
    /// Age the faces in photos: one image per target age and a labelled strip.
    Age(cmd::age::AgeArgs),
    /// Age a synthetic cStyleGAN identity through FaceGAN into a strip (no input needed).
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::Weights(c) => cmd::weights::run(c),
        Command::Train(c) => cmd::train::run(c),
        Command::SynthPairs(a) => cmd::synth::run_synth_pairs(a),
        Command::Sample(a) => cmd::synth::run_sample(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Age(a) => cmd::age::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
