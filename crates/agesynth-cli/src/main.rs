//! `agesynth`: face age progression and regression from the command line.
//!
//! Each command group lives in its own module under `cmd/`; `main` parses the
//! arguments, runs the command and prints the whole cause chain of any error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for the whole binary, shadowing the standard one: never panics
/// when stdout is a pipe whose reader has gone (`… --json | head -1`); see
/// `agesynth_core::console`.
macro_rules! println {
    () => {
        agesynth_core::console::out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        agesynth_core::console::out(format_args!($($arg)*), true)
    };
}

/// `eprintln!` for the whole binary, shadowing the standard one: never
/// panics when stderr is a closed pipe (`… 2>&1 | head`), so the work goes
/// on; see `agesynth_core::console`.
macro_rules! eprintln {
    () => {
        agesynth_core::console::err(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        agesynth_core::console::err(format_args!($($arg)*), true)
    };
}

/// `print!` that never panics (see `println!`).
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        agesynth_core::console::out(format_args!($($arg)*), false)
    };
}

mod cmd;

/// mimalloc, told at start-up to keep freed memory mapped: large tensor
/// buffers are then reused between training steps instead of being returned
/// to the kernel and page-faulted back in (see `BENCHMARKS.md`, CPU kernels).
#[global_allocator]
static GLOBAL: agesynth_nn::runtime::MiMalloc = agesynth_nn::runtime::MiMalloc;

/// Face age progression and regression with GANs.
#[derive(Debug, Parser)]
#[command(name = "agesynth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the arguments does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Serve a local web page (and its JSON API) to age the faces in a photo.
    Serve(cmd::serve::ServeArgs),
}

fn main() -> ExitCode {
    // Freed memory stays mapped (unless MIMALLOC_PURGE_DELAY is set) and
    // candle's pool does not spin against the kernels' rayon pool (unless
    // CANDLE_BARRIER_POOL_SPIN_LIMIT is set); see agesynth_nn::runtime.
    agesynth_nn::runtime::tune_process();
    let cli = Cli::parse();
    let result = match cli.command {
        // The server runs its own threads: an async runtime for the
        // connections and inference workers that run the kernels on a pool
        // of their own.
        Command::Serve(a) => cmd::serve::run(a),
        command => run_on_pool(command),
    };
    // A stop asked for by a signal (SIGINT, SIGTERM) exits 128 + signal,
    // whatever was under way (a cache build, a batch).
    let stopped = agesynth_train::StopFlag::process().and_then(|f| f.signal().map(|_| f));
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            match &stopped {
                Some(f) => ExitCode::from(f.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    };
    // Output cut short by its reader (`| head`): the status of a process
    // ended by SIGPIPE, with no panic and no half-done work.
    if agesynth_core::console::stdout_closed() && code == ExitCode::SUCCESS {
        return ExitCode::from(141);
    }
    code
}

/// Runs every command but `serve`.
fn run_on_pool(command: Command) -> anyhow::Result<ExitCode> {
    // On a worker of the kernels' thread pool, so that the main thread does
    // not compete with the pool's idle workers (see agesynth_nn::runtime).
    agesynth_nn::runtime::run_on_pool(move || match command {
        Command::Data(c) => cmd::data::run(c),
        Command::Weights(c) => cmd::weights::run(c),
        Command::Train(c) => cmd::train::run(c),
        Command::SynthPairs(a) => cmd::synth::run_synth_pairs(a),
        Command::Sample(a) => cmd::synth::run_sample(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Age(a) => cmd::age::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    })
}
