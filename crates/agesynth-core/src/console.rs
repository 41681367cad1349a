//! Writing to stdout and stderr without ever panicking.
//!
//! `println!` and `eprintln!` panic when the stream is a pipe whose reader
//! has gone (`agesynth age --json | head -1`, `agesynth train … 2>&1 | head`):
//! the standard library ignores SIGPIPE, so the write fails with `EPIPE`.
//! [`out`] and [`err`] write a line and, on a broken pipe, point that stream
//! at `/dev/null` for the rest of the process and remember it
//! ([`stdout_closed`]), so that the work in progress goes on (a batch of
//! photos, a training run) and ends quietly. The `agesynth` binary routes its
//! printing macros through them.

use std::{
    fmt,
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader went away during this process (its output was
/// cut short; the `agesynth` binary then exits with status 141, as a program
/// killed by SIGPIPE would).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// Whether stderr's reader went away during this process.
pub fn stderr_closed() -> bool {
    STDERR_CLOSED.load(Ordering::SeqCst)
}

/// Points file descriptor `fd` at `/dev/null` (Unix), so that later writes
/// by anyone succeed silently.
fn silence(fd: i32) {
    #[cfg(unix)]
    {
        // SAFETY: plain system calls on descriptors this process owns; the
        // temporary descriptor is closed after use.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, fd);
                libc::close(null);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = fd;
}

fn write_to(
    stream: &mut dyn Write,
    args: fmt::Arguments<'_>,
    newline: bool,
) -> std::io::Result<()> {
    stream.write_fmt(args)?;
    if newline {
        stream.write_all(b"\n")?;
    }
    stream.flush()
}

fn handle(result: std::io::Result<()>, fd: i32, flag: &AtomicBool) {
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            flag.store(true, Ordering::SeqCst);
            silence(fd);
        }
    }
}

/// Writes `args` (and a newline when `newline`) to stdout; never panics.
pub fn out(args: fmt::Arguments<'_>, newline: bool) {
    let r = write_to(&mut std::io::stdout().lock(), args, newline);
    handle(r, 1, &STDOUT_CLOSED);
}

/// Writes `args` (and a newline when `newline`) to stderr; never panics.
pub fn err(args: fmt::Arguments<'_>, newline: bool) {
    let r = write_to(&mut std::io::stderr().lock(), args, newline);
    handle(r, 2, &STDERR_CLOSED);
}
