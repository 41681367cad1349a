//! Seeded random streams: a ChaCha generator keyed by a run's seed, a
//! stream name and a step, so that the draws of step `t` are the same
//! whether a run went straight through or was resumed. The data order and
//! flips here and every random draw of training (`agesynth-train`'s `rng`)
//! come from it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A hash of a stream name (FNV-1a), to key independent streams.
pub fn stream_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The generator of stream `stream` at `step` for a run seeded with `seed`.
pub fn step_rng(seed: u64, stream: &str, step: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream_id(stream).to_le_bytes());
    key[16..24].copy_from_slice(&step.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_repeat_and_differ() {
        let a: u64 = step_rng(1, "z", 7).random();
        assert_eq!(a, step_rng(1, "z", 7).random::<u64>());
        assert_ne!(a, step_rng(1, "z", 8).random::<u64>());
        assert_ne!(a, step_rng(1, "noise", 7).random::<u64>());
        assert_ne!(a, step_rng(2, "z", 7).random::<u64>());
        assert_ne!(stream_id("a"), stream_id("b"));
    }
}
