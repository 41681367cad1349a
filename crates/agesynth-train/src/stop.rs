//! Stopping cleanly on Ctrl-C.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, OnceLock,
};

/// A flag the trainer polls between steps; set by Ctrl-C (see
/// [`StopFlag::ctrlc`]) or by the program.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

static CTRLC: OnceLock<StopFlag> = OnceLock::new();

impl StopFlag {
    /// A flag nobody has set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide flag set by Ctrl-C (SIGINT, and SIGTERM on Unix).
    /// The handler is installed on first call; a second Ctrl-C while the
    /// checkpoint is being written exits at once with status 130.
    pub fn ctrlc() -> Result<StopFlag, agesynth_core::Error> {
        if let Some(f) = CTRLC.get() {
            return Ok(f.clone());
        }
        let flag = StopFlag::new();
        let inner = flag.clone();
        ctrlc::set_handler(move || {
            if inner.is_set() {
                eprintln!("\nsecond interrupt: exiting without waiting for the checkpoint");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: saving a checkpoint after this step, then exiting");
            inner.set();
        })
        .map_err(|e| {
            agesynth_core::Error::Config(format!("cannot install the Ctrl-C handler: {e}"))
        })?;
        Ok(CTRLC.get_or_init(|| flag).clone())
    }

    /// Asks the trainer to stop after the current step.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
