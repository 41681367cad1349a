//! Process-wide settings for CPU training with candle and these kernels.
//!
//! candle 0.11 runs its own elementwise ops (the additions of its autograd,
//! for example) on a private thread pool whose workers spin for a while after
//! each job, waiting for the next; our kernels run on rayon's pool. With as
//! many threads as cores, the spinning workers take CPU time from the rayon
//! workers that have the real work. [`quiet_candle_pool`] stops the spinning
//! (candle's workers then sleep between jobs). The setting is read once, when
//! candle first uses its pool, so call it at the start of `main`.
//!
//! Rayon's idle workers, in turn, spin (yielding the CPU in a loop) for a
//! while before they sleep. When the code between parallel kernels (candle's
//! own ops, autograd bookkeeping) runs on the program's main thread, that
//! thread competes with both idle workers for 2 cores. [`run_on_pool`] runs
//! the whole computation on one of the pool's workers instead, so that only
//! one other worker can be idle at a time.

//!
//! With the `mimalloc` feature, `MiMalloc` is mimalloc's global allocator
//! and `keep_freed_memory` stops it from returning freed memory to the OS,
//! which large tensors otherwise page-fault back in on every step.
//! [`tune_process`] applies every setting; binaries call it first thing in
//! `main` and then run their work through [`run_on_pool`].

/// mimalloc's global allocator (feature `mimalloc`): declare it with
/// `#[global_allocator] static GLOBAL: MiMalloc = MiMalloc;`.
#[cfg(feature = "mimalloc")]
pub use mimalloc::MiMalloc;

#[cfg(feature = "mimalloc")]
extern "C" {
    /// mimalloc's option setter (linked in through the `mimalloc` crate).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay`: position 15 of `mi_option_t` in mimalloc 2 and 3.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps memory that mimalloc frees mapped for reuse (purge delay −1)
/// unless `MIMALLOC_PURGE_DELAY` is set in the environment; returns whether
/// it changed the setting. Only has an effect when mimalloc is the global
/// allocator. On the project's 2-core machine this took a U-Net training
/// step from 281 to 186 ms and its page faults from about a million to
/// 665 over a benchmark run (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return false;
    }
    // SAFETY: a plain option store inside the linked mimalloc.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    true
}

/// Every process setting of this module: [`quiet_candle_pool`] and, with
/// the `mimalloc` feature, `keep_freed_memory`. Call it first thing in
/// `main`, before other threads start.
pub fn tune_process() {
    quiet_candle_pool();
    #[cfg(feature = "mimalloc")]
    keep_freed_memory();
}

/// The environment variable candle 0.11 reads for its pool's spin limit.
pub const CANDLE_SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Sets candle's thread-pool spin limit to 0 unless the user set it.
///
/// Returns whether it set the variable. Call it at the start of `main`,
/// before any tensor operation and before other threads start (it changes
/// the process environment). On the project's 2-core machine this took a
/// U-Net training step from 617–650 to 544–556 ms (see BENCHMARKS.md).
pub fn quiet_candle_pool() -> bool {
    if std::env::var_os(CANDLE_SPIN_LIMIT_VAR).is_some() {
        return false;
    }
    std::env::set_var(CANDLE_SPIN_LIMIT_VAR, "0");
    true
}

/// Runs `f` on a worker of a new rayon pool with the default thread count
/// (`RAYON_NUM_THREADS` or one per core) and returns its result; parallel
/// kernels called inside use that pool.
///
/// With the work on a pool thread, the main thread sleeps instead of
/// keeping an extra runnable thread beside the pool's idle workers. On the
/// project's 2-core machine this took the input-scaling modulated
/// convolution (forward + backward) from 33.7 to 24.8 ms and a 3×3 128→128
/// convolution from 15.8 to 14.1 ms (see BENCHMARKS.md). Falls back to
/// running `f` on the calling thread if the pool cannot be built.
pub fn run_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("agesynth-worker-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
