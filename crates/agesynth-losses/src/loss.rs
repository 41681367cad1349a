//! The [`Loss`] trait: one weighted term of a training objective.
//!
//! Every non-adversarial loss of agesynth is a type behind this trait, so a
//! trainer can hold its terms as `Box<dyn Loss>` with their weights and log
//! each by name. A term reads what it needs from a [`LossInput`] and says so
//! with a typed error when something it needs is missing.

use agesynth_core::{AgeGroup, Error, Gender, Result};
use candle_core::Tensor;

/// What a loss term may look at. Every field but `output` is optional;
/// each term documents which ones it reads.
#[derive(Clone, Copy, Debug)]
pub struct LossInput<'a> {
    /// The generated images `(N, 3, H, W)` (differentiable).
    pub output: &'a Tensor,
    /// Reference images `(N, 3, H, W)`: the target for a reconstruction,
    /// the input face for an identity term.
    pub reference: Option<&'a Tensor>,
    /// Target age groups, one per image.
    pub groups: Option<&'a [AgeGroup]>,
    /// Age-group logits `(N, G)` of the output (from a discriminator's
    /// auxiliary head or [`crate::age::logits_from_ages`]).
    pub class_logits: Option<&'a Tensor>,
    /// The gender of each row's person, where known: an age term with an
    /// age-given-gender critic reads each row's age among its gender.
    pub genders: Option<&'a [Option<Gender>]>,
}

impl<'a> LossInput<'a> {
    /// An input with only the generated images.
    pub fn new(output: &'a Tensor) -> Self {
        LossInput {
            output,
            reference: None,
            groups: None,
            class_logits: None,
            genders: None,
        }
    }

    /// With each row's gender (`None` where unknown).
    pub fn genders(mut self, genders: &'a [Option<Gender>]) -> Self {
        self.genders = Some(genders);
        self
    }

    /// With reference images.
    pub fn reference(mut self, reference: &'a Tensor) -> Self {
        self.reference = Some(reference);
        self
    }

    /// With target groups.
    pub fn groups(mut self, groups: &'a [AgeGroup]) -> Self {
        self.groups = Some(groups);
        self
    }

    /// With age-group logits.
    pub fn class_logits(mut self, logits: &'a Tensor) -> Self {
        self.class_logits = Some(logits);
        self
    }

    /// The reference images, or an error naming the loss that needs them.
    pub fn need_reference(&self, loss: &str) -> Result<&'a Tensor> {
        self.reference
            .ok_or_else(|| missing(loss, "reference images"))
    }

    /// The target groups, or an error naming the loss that needs them.
    pub fn need_groups(&self, loss: &str) -> Result<&'a [AgeGroup]> {
        self.groups.ok_or_else(|| missing(loss, "target groups"))
    }

    /// The class logits, or an error naming the loss that needs them.
    pub fn need_class_logits(&self, loss: &str) -> Result<&'a Tensor> {
        self.class_logits
            .ok_or_else(|| missing(loss, "age-group logits"))
    }
}

fn missing(loss: &str, what: &str) -> Error {
    Error::InvalidInput(format!("the {loss} loss needs {what}"))
}

/// Checks that two image batches have the same shape.
pub(crate) fn same_shape(loss: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::InvalidInput(format!(
            "the {loss} loss compares images of one shape, got {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}

/// One weighted term of an objective.
pub trait Loss: Send + Sync {
    /// A short name for logs (e.g. `l1`, `identity`).
    fn name(&self) -> &str;

    /// The weight the term enters the objective with.
    fn weight(&self) -> f64;

    /// The unweighted loss as a scalar tensor, differentiable with respect
    /// to `input.output`.
    fn compute(&self, input: &LossInput) -> Result<Tensor>;

    /// `weight · compute(input)`.
    fn weighted(&self, input: &LossInput) -> Result<Tensor> {
        Ok((self.compute(input)? * self.weight())?)
    }
}

impl<T: Loss + ?Sized> Loss for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn weight(&self) -> f64 {
        (**self).weight()
    }
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        (**self).compute(input)
    }
}
