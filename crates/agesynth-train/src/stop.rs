//! Stopping cleanly on Ctrl-C and SIGTERM.
//!
//! SIGINT (Ctrl-C) and SIGTERM (what `kill`, a scheduler, `docker stop` and
//! systemd send) are handled alike: the first sets the process-wide
//! [`StopFlag`]; the trainer saves a checkpoint after the current step and
//! the program exits with `128 + signal` (130 for SIGINT, 143 for SIGTERM).
//! A second signal while that checkpoint is written exits at once with the
//! same status (the previous checkpoint is intact: saves are atomic).
//! SIGHUP (the terminal closed) is handled like SIGTERM.

use std::sync::{
    atomic::{AtomicI32, Ordering},
    Arc, OnceLock,
};

/// SIGINT's number.
pub const SIGINT: i32 = 2;
/// SIGTERM's number.
pub const SIGTERM: i32 = 15;
/// SIGHUP's number.
pub const SIGHUP: i32 = 1;

/// The value of a flag set by the program rather than by a signal.
const SET_BY_PROGRAM: i32 = -1;

/// A flag the trainer polls between steps; set by a signal (see
/// [`StopFlag::ctrlc`]) or by the program.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicI32>);

static PROCESS: OnceLock<StopFlag> = OnceLock::new();

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    let Some(flag) = PROCESS.get() else {
        return;
    };
    let first = flag
        .0
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let msg: &[u8] = if first {
        b"\nstop requested: saving a checkpoint after this step, then exiting (again to exit at once)\n"
    } else {
        b"\nsecond stop request: exiting without waiting for the checkpoint\n"
    };
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        if !first {
            libc::_exit(128 + sig);
        }
    }
}

impl StopFlag {
    /// A flag nobody has set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide flag set by SIGINT, SIGTERM and SIGHUP. The handlers
    /// are installed on first call (so call it as early as possible: a signal
    /// before then kills the process the default way); a second signal
    /// exits at once with `128 + signal`.
    pub fn ctrlc() -> Result<StopFlag, agesynth_core::Error> {
        if let Some(f) = PROCESS.get() {
            return Ok(f.clone());
        }
        let flag = PROCESS.get_or_init(StopFlag::new).clone();
        #[cfg(unix)]
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installs a handler that only touches an atomic and
            // calls async-signal-safe functions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                    return Err(agesynth_core::Error::Config(format!(
                        "cannot install the handler of signal {sig}: {}",
                        std::io::Error::last_os_error()
                    )));
                }
            }
        }
        #[cfg(not(unix))]
        {
            let inner = flag.clone();
            ctrlc::set_handler(move || {
                if inner.is_set() {
                    std::process::exit(130);
                }
                inner.0.store(SIGINT, Ordering::SeqCst);
            })
            .map_err(|e| {
                agesynth_core::Error::Config(format!("cannot install the Ctrl-C handler: {e}"))
            })?;
        }
        Ok(flag)
    }

    /// The process-wide flag if [`StopFlag::ctrlc`] installed it.
    pub fn process() -> Option<StopFlag> {
        PROCESS.get().cloned()
    }

    /// Asks the trainer to stop after the current step.
    pub fn set(&self) {
        let _ = self
            .0
            .compare_exchange(0, SET_BY_PROGRAM, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Records `signal` as the reason to stop (as the handler does; for
    /// tests and for programs that catch signals themselves).
    pub fn set_by_signal(&self, signal: i32) {
        let _ = self
            .0
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    /// The signal that asked for the stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            s if s > 0 => Some(s),
            _ => None,
        }
    }

    /// The exit status of a process stopped this way: `128 + signal`
    /// (130 for SIGINT, 143 for SIGTERM), 130 when the program set the flag,
    /// 0 when nobody did.
    pub fn exit_code(&self) -> u8 {
        match self.0.load(Ordering::SeqCst) {
            0 => 0,
            s if s > 0 && s < 128 => 128 + s as u8,
            _ => 130,
        }
    }

    /// A check for long work outside the trainer (building a cache): an
    /// [`agesynth_core::Error::Interrupted`] once the flag is set.
    pub fn check(&self, what: &str) -> Result<(), agesynth_core::Error> {
        if self.is_set() {
            Err(agesynth_core::Error::Interrupted(format!(
                "{what} stopped by {}",
                match self.signal() {
                    Some(SIGINT) => "SIGINT (Ctrl-C)".to_string(),
                    Some(SIGTERM) => "SIGTERM".to_string(),
                    Some(s) => format!("signal {s}"),
                    None => "a stop request".to_string(),
                }
            )))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_signal() {
        let f = StopFlag::new();
        assert_eq!((f.is_set(), f.exit_code(), f.signal()), (false, 0, None));
        f.set_by_signal(SIGTERM);
        assert_eq!(
            (f.is_set(), f.exit_code(), f.signal()),
            (true, 143, Some(15))
        );
        // The first reason wins.
        f.set_by_signal(SIGINT);
        assert_eq!(f.exit_code(), 143);
        assert!(f
            .check("the cache build")
            .unwrap_err()
            .to_string()
            .contains("SIGTERM"));
        let g = StopFlag::new();
        g.set();
        assert_eq!((g.exit_code(), g.signal()), (130, None));
    }

    /// Issue 17, item 4: SIGTERM sets the flag like SIGINT does instead of
    /// killing the process, and records which signal it was.
    #[cfg(unix)]
    #[test]
    fn sigterm_sets_the_process_flag() {
        let f = StopFlag::ctrlc().unwrap();
        // SAFETY: raise delivers the signal to this process, whose handler
        // was installed above.
        unsafe {
            libc::raise(libc::SIGTERM);
        }
        for _ in 0..200 {
            if f.is_set() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!((f.signal(), f.exit_code()), (Some(SIGTERM), 143));
    }
}
