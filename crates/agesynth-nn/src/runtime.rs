//! Process-wide settings for CPU training with candle and these kernels.
//!
//! candle 0.11 runs its own elementwise ops (the additions of its autograd,
//! for example) on a private thread pool whose workers spin for a while after
//! each job, waiting for the next; our kernels run on rayon's pool. With as
//! many threads as cores, the spinning workers take CPU time from the rayon
//! workers that have the real work. [`quiet_candle_pool`] stops the spinning
//! (candle's workers then sleep between jobs). The setting is read once, when
//! candle first uses its pool, so call it at the start of `main`.

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
