//! Regularisation phases: terms taken every `k` steps rather than every
//! step, with the weight and optimiser correction that keep their effect
//! (StyleGAN2's lazy regularisation; stylegan2-ada's `training_loop.py`
//! runs them as separate phases with an interval).

use agesynth_core::{AgeGroup, ConditionalDiscriminator};
use agesynth_losses::r1_penalty;
use candle_core::Tensor;

use crate::Result;

/// R1 on the real images every `every` steps, weighted `γ/2 · every`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LazyR1 {
    /// γ (0: off).
    pub gamma: f64,
    /// The interval in steps (0: off).
    pub every: u64,
}

impl LazyR1 {
    /// Whether the phase runs at `step`.
    pub fn due(&self, step: u64) -> bool {
        self.every > 0 && self.gamma > 0.0 && step.is_multiple_of(self.every)
    }

    /// The weight of the penalty when it runs: `γ/2 · every`, so that its
    /// average over the interval is `γ/2` per step.
    pub fn weight(&self) -> f64 {
        self.gamma / 2.0 * self.every as f64
    }

    /// The factor `c = every / (every + 1)` by which D's Adam learning rate
    /// and (as an exponent) betas are scaled to keep its dynamics (1 when
    /// off).
    pub fn adam_ratio(&self) -> f64 {
        if self.every > 0 {
            self.every as f64 / (self.every as f64 + 1.0)
        } else {
            1.0
        }
    }

    /// The weighted penalty of `d` on `reals` claimed to be of `groups`, and
    /// its unweighted value, when due at `step`; `None` otherwise.
    pub fn run(
        &self,
        step: u64,
        d: &dyn ConditionalDiscriminator,
        reals: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<Option<(Tensor, f32)>> {
        if !self.due(step) {
            return Ok(None);
        }
        let r1 = r1_penalty(
            &|x: &Tensor| d.logits(x, groups),
            &|x: &Tensor, t: &Tensor| Ok(d.logits_jvp(x, t, groups)?.1),
            reals,
        )?;
        Ok(Some(((r1.loss * self.weight())?, r1.value as f32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_every_k_steps_with_the_lazy_weight() {
        let r = LazyR1 {
            gamma: 2.0,
            every: 4,
        };
        let due: Vec<u64> = (1..=12).filter(|&s| r.due(s)).collect();
        assert_eq!(due, vec![4, 8, 12]);
        assert_eq!(r.weight(), 4.0);
        assert_eq!(r.adam_ratio(), 0.8);
        assert!(!LazyR1 {
            gamma: 0.0,
            every: 4
        }
        .due(4));
        assert!(!LazyR1 {
            gamma: 1.0,
            every: 0
        }
        .due(4));
        assert_eq!(
            LazyR1 {
                gamma: 1.0,
                every: 0
            }
            .adam_ratio(),
            1.0
        );
    }
}
