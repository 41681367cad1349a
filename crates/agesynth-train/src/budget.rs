//! Memory estimates of training steps and sampling, for the budgets of
//! [`agesynth_core::budget`]: checked before anything is allocated, so that
//! `--batch 100000` or `--rows 100000` is an error naming the limit rather
//! than a process the kernel kills.
//!
//! The estimates count the activations of the convolutional stacks (each
//! channel list paired with resolutions from the image size down, the
//! widest layers at the smallest resolution) times a factor measured on the
//! CPU kernels: the tensors a layer keeps for its backward pass, their
//! gradients and the temporaries of the fused ops (see `RELIABILITY.md`).

use agesynth_core::budget::{product, MemoryBudget};

use crate::Result;

/// Bytes per activation element of a training step (forward tensors kept
/// for backward, gradients, temporaries, R1's forward-mode pass). Measured
/// on the CPU kernels (peak RSS between two batch sizes): 0.48 MB an image
/// for the `tiny` cStyleGAN step (estimated 0.66 MB), 12.1 MB for `cpu64`
/// (estimated 20.2 MB): the estimate errs on the safe side, leaving room for
/// the lazy R1 steps.
pub const TRAIN_BYTES_PER_ELEMENT: u64 = 64;

/// Bytes per activation element of an inference pass (the fused kernels'
/// column buffers dominate). Measured: 7.6 MB an image for `cpu64`
/// sampling (estimated 10.1 MB).
pub const INFER_BYTES_PER_ELEMENT: u64 = 64;

/// Activation elements of one image through a stack with `channels` at
/// `image_size`: the smallest width at the full resolution, each wider one
/// at half the resolution of the previous.
pub fn activation_elements(channels: &[usize], image_size: usize) -> u64 {
    let mut c: Vec<u64> = channels.iter().map(|&c| c as u64).collect();
    c.sort_unstable();
    let mut res = image_size as u64;
    let mut total = 0u64;
    for ch in c {
        total = total.saturating_add(product(&[ch, res, res]));
        res = (res / 2).max(1);
    }
    // The image itself and its 3-channel intermediates.
    total.saturating_add(product(&[8, image_size as u64, image_size as u64]))
}

fn channel_lists(model: &serde_json::Value) -> Vec<Vec<usize>> {
    ["g_channels", "d_channels", "channels"]
        .iter()
        .filter_map(|k| model.get(*k)?.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|v| v as usize))
                .collect()
        })
        .collect()
}

/// The estimated bytes of one training step of a trainer whose saved
/// configuration (`config.json`: a `batch` and a `model` with `image_size`
/// and channel lists) is `config`; `None` when the configuration does not
/// say.
pub fn training_step_bytes(config: &serde_json::Value) -> Option<(u64, u64)> {
    let batch = config.get("batch")?.as_u64()?;
    let model = config.get("model")?;
    let size = model.get("image_size")?.as_u64()? as usize;
    let elems: u64 = channel_lists(model)
        .iter()
        .map(|c| activation_elements(c, size))
        .fold(0, u64::saturating_add);
    Some((batch, product(&[batch, elems, TRAIN_BYTES_PER_ELEMENT])))
}

/// Checks a trainer's step (see [`training_step_bytes`]) against `budget`.
pub fn check_training(budget: &MemoryBudget, config: &serde_json::Value) -> Result<()> {
    if let Some((batch, bytes)) = training_step_bytes(config) {
        budget.check(
            format!("a training step of batch {batch}"),
            bytes,
            "lower --batch",
        )?;
    }
    Ok(())
}

/// The estimated bytes of rendering `images` images through a generator
/// with `channels` at `image_size` in one pass, with the outputs kept as
/// f32 and as an 8-bit grid.
pub fn render_bytes(channels: &[usize], image_size: usize, images: u64) -> u64 {
    let per = activation_elements(channels, image_size);
    product(&[images, per, INFER_BYTES_PER_ELEMENT]).saturating_add(product(&[
        images,
        3 * 5,
        image_size as u64,
        image_size as u64,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_the_batch_and_saturate() {
        let cfg = serde_json::json!({
            "batch": 16,
            "model": {"image_size": 64, "g_channels": [128, 128, 64, 32, 16], "d_channels": [16, 32, 64, 128, 128]}
        });
        let (b, small) = training_step_bytes(&cfg).unwrap();
        assert_eq!(b, 16);
        let mut big = cfg.clone();
        big["batch"] = serde_json::json!(100_000);
        let (_, large) = training_step_bytes(&big).unwrap();
        assert_eq!(large / small, 6250);
        let huge =
            serde_json::json!({"batch": u64::MAX, "model": {"image_size": 64, "channels": [8]}});
        assert_eq!(training_step_bytes(&huge).unwrap().1, u64::MAX);
        assert!(training_step_bytes(&serde_json::json!({"batch": 3})).is_none());
        // Issue 17, item 2: a batch of 100000 is refused by an 8 GiB budget
        // before anything is allocated; the message says how to get through.
        let budget = MemoryBudget::new(8 << 30, "a test");
        check_training(&budget, &cfg).unwrap();
        let msg = check_training(&budget, &big).unwrap_err().to_string();
        assert!(
            msg.contains("lower --batch") && msg.contains("AGESYNTH_MEMORY_LIMIT"),
            "{msg}"
        );
    }
}
