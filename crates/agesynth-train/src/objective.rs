//! A generator objective as data: a list of named terms, each a boxed
//! [`Loss`] with its weight, the rows of the batch it applies to and what it
//! reads. Adding a term to a run means adding a [`Term`], not editing the
//! training step.
//!
//! The FaceGAN step hands the objective one [`GeneratorStep`] (inputs,
//! outputs, groups, the synthetic targets, and the discriminator and
//! generator as functions); the objective evaluates the discriminator on the
//! outputs and the cycle pass only when a term needs them.

use agesynth_core::{AgeGroup, Gender};
use agesynth_losses::{Loss, LossInput};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Which rows of a step's batch a term applies to. The batch holds the real
/// rows first, then the synthetic ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// Every row.
    All,
    /// The real faces.
    Real,
    /// The synthetic inputs (which have a paired target image).
    Synthetic,
    /// Real faces whose target is their own group.
    RealAtSource,
    /// Real faces whose target is another group.
    RealAwayFromSource,
    /// Rows whose target group is this index or older.
    TargetFrom(usize),
    /// Rows whose target group is younger than this index.
    TargetBelow(usize),
    /// Rows whose target group is at least the first index and younger
    /// than the second.
    TargetIn(usize, usize),
}

impl Rows {
    /// The row indices of a batch of `sources.len()` rows, `n_real` real.
    pub fn select(&self, n_real: usize, sources: &[AgeGroup], targets: &[AgeGroup]) -> Vec<usize> {
        let n = sources.len();
        match self {
            Rows::All => (0..n).collect(),
            Rows::Real => (0..n_real).collect(),
            Rows::Synthetic => (n_real..n).collect(),
            Rows::RealAtSource => (0..n_real).filter(|&i| sources[i] == targets[i]).collect(),
            Rows::RealAwayFromSource => (0..n_real).filter(|&i| sources[i] != targets[i]).collect(),
            Rows::TargetFrom(k) => (0..n).filter(|&i| targets[i].0 >= *k).collect(),
            Rows::TargetBelow(k) => (0..n).filter(|&i| targets[i].0 < *k).collect(),
            Rows::TargetIn(lo, hi) => (0..n)
                .filter(|&i| (*lo..*hi).contains(&targets[i].0))
                .collect(),
        }
    }

    /// Whether every row it selects is a real face.
    pub fn is_real_only(&self) -> bool {
        matches!(
            self,
            Rows::Real | Rows::RealAtSource | Rows::RealAwayFromSource
        )
    }
}

/// What a term's loss reads (its [`LossInput`]); the groups are always the
/// rows' target groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// `output`: the generated images.
    Output,
    /// `output`: the generated images; `reference`: the inputs.
    OutputVsInput,
    /// `output`: the generated images; `reference`: the synthetic target
    /// images (synthetic rows only).
    OutputVsSyntheticTarget,
    /// `output`: the discriminator's logits on the generated images at their
    /// target groups.
    DiscriminatorLogits,
    /// `output`: the generated images; `class_logits`: the discriminator's
    /// auxiliary age head on them.
    DiscriminatorClassLogits,
    /// `output`: the generated images taken back to the input's own group by
    /// the generator; `reference`: the inputs (real rows only).
    CycleVsInput,
}

/// One named, weighted term of a generator objective.
pub struct Term {
    /// The name it is logged under.
    pub name: String,
    /// The loss, with its weight.
    pub loss: Box<dyn Loss>,
    /// The rows it applies to.
    pub rows: Rows,
    /// What it reads.
    pub operand: Operand,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term")
            .field("name", &self.name)
            .field("loss", &self.loss.name())
            .field("weight", &self.loss.weight())
            .field("rows", &self.rows)
            .field("operand", &self.operand)
            .finish()
    }
}

impl Term {
    /// A term named `name`.
    pub fn new(name: impl Into<String>, loss: Box<dyn Loss>, rows: Rows, operand: Operand) -> Self {
        Term {
            name: name.into(),
            loss,
            rows,
            operand,
        }
    }
}

/// The discriminator as the objective sees it: logits and the auxiliary
/// head's class logits (if any) of images claimed to be of `groups`.
pub type DiscriminatorFn<'a> =
    dyn Fn(&Tensor, &[AgeGroup]) -> Result<(Tensor, Option<Tensor>)> + 'a;

/// The generator as the objective sees it (for the cycle pass).
pub type GeneratorFn<'a> = dyn Fn(&Tensor, &[AgeGroup]) -> Result<Tensor> + 'a;

/// What one generator step gives its objective.
pub struct GeneratorStep<'a> {
    /// The inputs `(N, 3, S, S)`: real rows first.
    pub inputs: &'a Tensor,
    /// The generated images `(N, 3, S, S)`, differentiable in G's weights.
    pub outputs: &'a Tensor,
    /// Each input's own group.
    pub sources: &'a [AgeGroup],
    /// Each row's target group.
    pub targets: &'a [AgeGroup],
    /// How many rows are real.
    pub n_real: usize,
    /// Each row's gender where known (empty: none known). Terms on the
    /// generated images get them (an age-given-gender critic reads them).
    pub genders: &'a [Option<Gender>],
    /// The synthetic rows' target images `(N − n_real, 3, S, S)`.
    pub synthetic_targets: Option<&'a Tensor>,
    /// The discriminator.
    pub discriminator: &'a DiscriminatorFn<'a>,
    /// The generator.
    pub generator: &'a GeneratorFn<'a>,
}

/// A generator objective: the sum of its terms.
#[derive(Debug, Default)]
pub struct Objective {
    terms: Vec<Term>,
}

impl Objective {
    /// An objective of `terms`. A term that reads the synthetic targets must
    /// apply to synthetic rows, one that reads the cycle to real rows.
    pub fn new(terms: Vec<Term>) -> Result<Self> {
        for t in &terms {
            let ok = match t.operand {
                Operand::OutputVsSyntheticTarget => t.rows == Rows::Synthetic,
                Operand::CycleVsInput => t.rows.is_real_only(),
                _ => true,
            };
            if !ok {
                return Err(agesynth_core::Error::Config(format!(
                    "objective term `{}` reads {:?} but applies to {:?} rows",
                    t.name, t.operand, t.rows
                ))
                .into());
            }
            let w = t.loss.weight();
            if !(w.is_finite() && w >= 0.0) {
                return Err(agesynth_core::Error::Config(format!(
                    "objective term `{}` has weight {w}: weights must be finite and ≥ 0",
                    t.name
                ))
                .into());
            }
        }
        Ok(Objective { terms })
    }

    /// The terms.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Adds a term.
    pub fn push(&mut self, term: Term) -> Result<()> {
        let mut terms = std::mem::take(&mut self.terms);
        terms.push(term);
        *self = Objective::new(terms)?;
        Ok(())
    }

    /// The weighted sum of the terms on `step`, and each weighted term by
    /// name. Terms whose rows are absent from the batch are skipped.
    pub fn evaluate(&self, step: &GeneratorStep) -> Result<(Tensor, Vec<(String, f32)>)> {
        self.evaluate_inner(step, None)
    }

    /// How many rows of a batch (`n_real` real rows first, then synthetic)
    /// each term applies to, in term order: what [`Objective::evaluate_share`]
    /// divides by.
    pub fn rows_per_term(
        &self,
        n_real: usize,
        sources: &[AgeGroup],
        targets: &[AgeGroup],
    ) -> Vec<usize> {
        self.terms
            .iter()
            .map(|t| t.rows.select(n_real, sources, targets).len())
            .collect()
    }

    /// [`Objective::evaluate`] on one shard of a larger batch whose terms
    /// select `whole[i]` rows each ([`Objective::rows_per_term`] on the whole
    /// batch): each term's value is scaled by the share of those rows that
    /// the shard holds. For a loss that averages over its rows (every
    /// per-image term of the FaceGAN objective) the shards' values, and so
    /// their gradients, add up to the whole batch's; a loss normalised by a
    /// count of its own (rows of known gender) or reading batch statistics
    /// (a minibatch-deviation layer) gets a close estimate, not the same
    /// value.
    pub fn evaluate_share(
        &self,
        step: &GeneratorStep,
        whole: &[usize],
    ) -> Result<(Tensor, Vec<(String, f32)>)> {
        if whole.len() != self.terms.len() {
            return Err(agesynth_core::Error::Config(format!(
                "evaluate_share: {} row counts for {} terms",
                whole.len(),
                self.terms.len()
            ))
            .into());
        }
        self.evaluate_inner(step, Some(whole))
    }

    fn evaluate_inner(
        &self,
        step: &GeneratorStep,
        whole: Option<&[usize]>,
    ) -> Result<(Tensor, Vec<(String, f32)>)> {
        let device = step.outputs.device();
        let n = step.outputs.dim(0)?;
        let mut total = Tensor::zeros((), DType::F32, device)?;
        let mut named = Vec::with_capacity(self.terms.len());
        let mut d_out: Option<(Tensor, Option<Tensor>)> = None;
        for (i, term) in self.terms.iter().enumerate() {
            let rows = term.rows.select(step.n_real, step.sources, step.targets);
            if rows.is_empty() {
                continue;
            }
            let share = match whole {
                Some(w) if w[i] < rows.len() => {
                    return Err(agesynth_core::Error::Config(format!(
                        "objective term `{}`: the shard has {} of its rows, the whole batch {}",
                        term.name,
                        rows.len(),
                        w[i]
                    ))
                    .into())
                }
                Some(w) => Some(rows.len() as f64 / w[i] as f64),
                None => None,
            };
            let all = rows.len() == n;
            let pick = |t: &Tensor, offset: usize| -> Result<Tensor> {
                if all && offset == 0 {
                    return Ok(t.clone());
                }
                let idx: Vec<u32> = rows.iter().map(|&r| (r - offset) as u32).collect();
                let idx = Tensor::from_vec(idx, rows.len(), device)?;
                Ok(t.index_select(&idx, 0)?)
            };
            let groups: Vec<AgeGroup> = rows.iter().map(|&r| step.targets[r]).collect();
            let genders: Vec<Option<Gender>> = if step.genders.is_empty() {
                Vec::new()
            } else {
                rows.iter()
                    .map(|&r| step.genders.get(r).copied().flatten())
                    .collect()
            };
            let value = match term.operand {
                Operand::Output => {
                    let out = pick(step.outputs, 0)?;
                    let input = LossInput::new(&out).groups(&groups);
                    let input = if genders.is_empty() {
                        input
                    } else {
                        input.genders(&genders)
                    };
                    term.loss.weighted(&input)?
                }
                Operand::OutputVsInput => {
                    let (out, x) = (pick(step.outputs, 0)?, pick(step.inputs, 0)?);
                    term.loss
                        .weighted(&LossInput::new(&out).reference(&x).groups(&groups))?
                }
                Operand::OutputVsSyntheticTarget => {
                    let y = step.synthetic_targets.ok_or_else(|| {
                        TrainError::from(agesynth_core::Error::Config(format!(
                            "objective term `{}` needs synthetic targets; the batch has none",
                            term.name
                        )))
                    })?;
                    let out = pick(step.outputs, 0)?;
                    let y = pick(y, step.n_real)?;
                    term.loss
                        .weighted(&LossInput::new(&out).reference(&y).groups(&groups))?
                }
                Operand::DiscriminatorLogits | Operand::DiscriminatorClassLogits => {
                    if d_out.is_none() {
                        d_out = Some((step.discriminator)(step.outputs, step.targets)?);
                    }
                    let (logits, classes) = d_out.as_ref().ok_or_else(|| {
                        TrainError::from(agesynth_core::Error::Config(
                            "the discriminator's output was not computed".into(),
                        ))
                    })?;
                    if term.operand == Operand::DiscriminatorLogits {
                        let l = pick(logits, 0)?;
                        term.loss.weighted(&LossInput::new(&l).groups(&groups))?
                    } else {
                        let c = classes.as_ref().ok_or_else(|| {
                            TrainError::from(agesynth_core::Error::Config(format!(
                                "objective term `{}` reads the discriminator's age head; it has none",
                                term.name
                            )))
                        })?;
                        let (out, c) = (pick(step.outputs, 0)?, pick(c, 0)?);
                        term.loss
                            .weighted(&LossInput::new(&out).groups(&groups).class_logits(&c))?
                    }
                }
                Operand::CycleVsInput => {
                    let (out, x) = (pick(step.outputs, 0)?, pick(step.inputs, 0)?);
                    let back_to: Vec<AgeGroup> = rows.iter().map(|&r| step.sources[r]).collect();
                    let back = (step.generator)(&out, &back_to)?;
                    term.loss
                        .weighted(&LossInput::new(&back).reference(&x).groups(&back_to))?
                }
            };
            let mut value = value.to_dtype(DType::F32)?;
            if let Some(share) = share {
                value = (value * share)?;
            }
            named.push((term.name.clone(), value.to_scalar::<f32>()?));
            total = (total + value)?;
        }
        Ok((total, named))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_losses::{Reconstruction, ReconstructionLoss};
    use candle_core::Device;

    fn l1(w: f64) -> Box<dyn Loss> {
        Box::new(ReconstructionLoss::new(Reconstruction::L1, w))
    }

    /// L1 terms at weights 10, 1 and 2: real rows at their source against
    /// the input, synthetic rows against their targets, and the cycle of the
    /// real rows away from their source.
    fn self_pairs_cycle() -> Vec<Term> {
        vec![
            Term::new("self", l1(10.0), Rows::RealAtSource, Operand::OutputVsInput),
            Term::new(
                "pairs",
                l1(1.0),
                Rows::Synthetic,
                Operand::OutputVsSyntheticTarget,
            ),
            Term::new(
                "cycle",
                l1(2.0),
                Rows::RealAwayFromSource,
                Operand::CycleVsInput,
            ),
        ]
    }

    #[test]
    fn rows_select_by_kind_and_group() {
        let s = [AgeGroup(0), AgeGroup(1), AgeGroup(2), AgeGroup(3)];
        let t = [AgeGroup(0), AgeGroup(4), AgeGroup(2), AgeGroup(3)];
        assert_eq!(Rows::All.select(2, &s, &t), vec![0, 1, 2, 3]);
        assert_eq!(Rows::Real.select(2, &s, &t), vec![0, 1]);
        assert_eq!(Rows::Synthetic.select(2, &s, &t), vec![2, 3]);
        assert_eq!(Rows::RealAtSource.select(2, &s, &t), vec![0]);
        assert_eq!(Rows::RealAwayFromSource.select(2, &s, &t), vec![1]);
        assert_eq!(Rows::TargetFrom(2).select(2, &s, &t), vec![1, 2, 3]);
        assert_eq!(Rows::TargetBelow(2).select(2, &s, &t), vec![0]);
        assert_eq!(Rows::TargetIn(2, 4).select(2, &s, &t), vec![2, 3]);
        assert_eq!(Rows::TargetIn(3, 3).select(2, &s, &t), Vec::<usize>::new());
    }

    #[test]
    fn terms_apply_to_their_rows_only() {
        let dev = Device::Cpu;
        // Four rows of one value each: inputs 0, outputs 1, 2, 3, 4.
        let rows = |v: [f32; 4]| {
            let data: Vec<f32> = v.iter().flat_map(|&x| vec![x; 3 * 2 * 2]).collect();
            Tensor::from_vec(data, (4, 3, 2, 2), &dev).unwrap()
        };
        let inputs = rows([0.0; 4]);
        let outputs = rows([1.0, 2.0, 3.0, 4.0]);
        let syn_targets = rows([0.0, 0.0, 3.0, 3.5]).narrow(0, 2, 2).unwrap();
        let s = [AgeGroup(1), AgeGroup(2), AgeGroup(0), AgeGroup(0)];
        let t = [AgeGroup(1), AgeGroup(5), AgeGroup(3), AgeGroup(4)];
        let objective = Objective::new(self_pairs_cycle()).unwrap();
        let d = |x: &Tensor, _: &[AgeGroup]| -> Result<(Tensor, Option<Tensor>)> {
            Ok((x.clone(), None))
        };
        // The "generator" of the cycle halves its input.
        let g = |x: &Tensor, _: &[AgeGroup]| -> Result<Tensor> { Ok((x * 0.5)?) };
        let (total, named) = objective
            .evaluate(&GeneratorStep {
                inputs: &inputs,
                outputs: &outputs,
                sources: &s,
                targets: &t,
                n_real: 2,
                genders: &[],
                synthetic_targets: Some(&syn_targets),
                discriminator: &d,
                generator: &g,
            })
            .unwrap();
        let get = |n: &str| named.iter().find(|(k, _)| k == n).map(|(_, v)| *v).unwrap();
        // Row 0 at its source: |1 − 0| · 10.
        assert!((get("self") - 10.0).abs() < 1e-6);
        // Rows 2, 3 against 3 and 3.5: mean(0, 0.5) · 1.
        assert!((get("pairs") - 0.25).abs() < 1e-6);
        // Row 1 away from its source: |2·0.5 − 0| · 2.
        assert!((get("cycle") - 2.0).abs() < 1e-6);
        let total = total.to_scalar::<f32>().unwrap();
        assert!((total - 12.25).abs() < 1e-5, "{total}");
    }

    /// Two shards of a batch, each keeping its real rows first: their
    /// shared values add up to the whole batch's, term by term, and so do
    /// their gradients.
    #[test]
    fn shards_add_up_to_the_whole_batch() {
        let dev = Device::Cpu;
        let n = 5;
        let val = |i: usize, k: f32| -> Vec<f32> {
            (0..12).map(|j| ((i * 12 + j) as f32 * k).sin()).collect()
        };
        let data: Vec<f32> = (0..n).flat_map(|i| val(i, 0.7)).collect();
        let w = candle_core::Var::from_vec(data, (n, 3, 2, 2), &dev).unwrap();
        let x_data: Vec<f32> = (0..n).flat_map(|i| val(i, 1.3)).collect();
        let inputs = Tensor::from_vec(x_data, (n, 3, 2, 2), &dev).unwrap();
        // Rows 0–2 real, 3–4 synthetic.
        let y_data: Vec<f32> = (3..n).flat_map(|i| val(i, 0.3)).collect();
        let syn = Tensor::from_vec(y_data, (2, 3, 2, 2), &dev).unwrap();
        let s = [0, 2, 3, 1, 4].map(AgeGroup);
        let t = [0, 5, 3, 4, 1].map(AgeGroup);
        let mut terms = self_pairs_cycle();
        terms.push(Term::new(
            "all",
            Box::new(ReconstructionLoss::new(Reconstruction::L2, 3.0)),
            Rows::All,
            Operand::OutputVsInput,
        ));
        let objective = Objective::new(terms).unwrap();
        let d = |x: &Tensor, _: &[AgeGroup]| -> Result<(Tensor, Option<Tensor>)> {
            Ok((x.clone(), None))
        };
        let g = |x: &Tensor, _: &[AgeGroup]| -> Result<Tensor> { Ok((x * 0.5)?) };
        let pick = |t: &Tensor, rows: &[u32]| {
            let idx = Tensor::new(rows, &dev).unwrap();
            t.index_select(&idx, 0).unwrap()
        };
        let whole_rows = objective.rows_per_term(3, &s, &t);
        assert_eq!(whole_rows, vec![2, 2, 1, 5]);
        let (total, named) = objective
            .evaluate(&GeneratorStep {
                inputs: &inputs,
                outputs: w.as_tensor(),
                sources: &s,
                targets: &t,
                n_real: 3,
                genders: &[],
                synthetic_targets: Some(&syn),
                discriminator: &d,
                generator: &g,
            })
            .unwrap();
        let whole_grad = total
            .backward()
            .unwrap()
            .get(w.as_tensor())
            .unwrap()
            .clone();
        // Shard A: real rows 0, 1 and synthetic row 3; shard B: real row 2
        // and synthetic row 4.
        let mut sums: Vec<f32> = vec![0.0; named.len()];
        let mut grad_sum = w.zeros_like().unwrap();
        for (rows, n_real) in [(vec![0u32, 1, 3], 2), (vec![2u32, 4], 1)] {
            let out = pick(w.as_tensor(), &rows);
            let x = pick(&inputs, &rows);
            let y_rows: Vec<u32> = rows[n_real..].iter().map(|r| r - 3).collect();
            let y = pick(&syn, &y_rows);
            let ss: Vec<AgeGroup> = rows.iter().map(|&r| s[r as usize]).collect();
            let ts: Vec<AgeGroup> = rows.iter().map(|&r| t[r as usize]).collect();
            let (part, part_named) = objective
                .evaluate_share(
                    &GeneratorStep {
                        inputs: &x,
                        outputs: &out,
                        sources: &ss,
                        targets: &ts,
                        n_real,
                        genders: &[],
                        synthetic_targets: Some(&y),
                        discriminator: &d,
                        generator: &g,
                    },
                    &whole_rows,
                )
                .unwrap();
            for (name, v) in part_named {
                let i = named.iter().position(|(k, _)| *k == name).unwrap();
                sums[i] += v;
            }
            let gs = part.backward().unwrap();
            grad_sum = (grad_sum + gs.get(w.as_tensor()).unwrap()).unwrap();
        }
        for ((name, v), sum) in named.iter().zip(&sums) {
            assert!(
                (v - sum).abs() < 1e-5 * v.abs().max(1.0),
                "{name}: {v} vs {sum}"
            );
        }
        let diff = (whole_grad - grad_sum)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "gradients differ by {diff}");
        // Counts that do not cover the shard's rows are refused.
        assert!(objective
            .evaluate_share(
                &GeneratorStep {
                    inputs: &inputs,
                    outputs: w.as_tensor(),
                    sources: &s,
                    targets: &t,
                    n_real: 3,
                    genders: &[],
                    synthetic_targets: Some(&syn),
                    discriminator: &d,
                    generator: &g,
                },
                &[1, 1, 1, 1],
            )
            .is_err());
    }

    /// A term that counts its rows by gender: 1 per woman, 10 per man,
    /// 100 per unknown; it fails when given no genders at all.
    struct CountGenders;

    impl Loss for CountGenders {
        fn name(&self) -> &str {
            "count"
        }
        fn weight(&self) -> f64 {
            1.0
        }
        fn compute(&self, input: &LossInput) -> agesynth_core::Result<Tensor> {
            let g = input.genders.ok_or_else(|| {
                agesynth_core::Error::InvalidInput("no genders were given".into())
            })?;
            assert_eq!(g.len(), input.output.dim(0)?);
            let v: f32 = g
                .iter()
                .map(|x| match x {
                    Some(Gender::Female) => 1.0,
                    Some(Gender::Male) => 10.0,
                    None => 100.0,
                })
                .sum();
            Ok(Tensor::new(v, input.output.device())?)
        }
    }

    #[test]
    fn output_terms_get_their_rows_genders() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 3, 2, 2), DType::F32, &dev).unwrap();
        let s = [AgeGroup(1), AgeGroup(2), AgeGroup(0), AgeGroup(0)];
        let t = [AgeGroup(1), AgeGroup(5), AgeGroup(3), AgeGroup(4)];
        let d = |x: &Tensor, _: &[AgeGroup]| -> Result<(Tensor, Option<Tensor>)> {
            Ok((x.clone(), None))
        };
        let g = |x: &Tensor, _: &[AgeGroup]| -> Result<Tensor> { Ok(x.clone()) };
        let genders = [
            Some(Gender::Female),
            None,
            Some(Gender::Male),
            Some(Gender::Female),
        ];
        let objective = Objective::new(vec![
            Term::new("all", Box::new(CountGenders), Rows::All, Operand::Output),
            Term::new(
                "syn",
                Box::new(CountGenders),
                Rows::Synthetic,
                Operand::Output,
            ),
        ])
        .unwrap();
        let mut results = Vec::new();
        for genders in [&genders[..], &[]] {
            results.push(objective.evaluate(&GeneratorStep {
                inputs: &x,
                outputs: &x,
                sources: &s,
                targets: &t,
                n_real: 2,
                genders,
                synthetic_targets: None,
                discriminator: &d,
                generator: &g,
            }));
        }
        let (_, named) = results.remove(0).unwrap();
        assert_eq!(named, vec![("all".into(), 112.0), ("syn".into(), 11.0)]);
        // With no genders known the term gets none.
        assert!(results.remove(0).is_err());
    }

    #[test]
    fn a_term_that_reads_what_its_rows_lack_is_refused() {
        let bad = Term::new("x", l1(1.0), Rows::Real, Operand::OutputVsSyntheticTarget);
        assert!(Objective::new(vec![bad]).is_err());
        let bad = Term::new("x", l1(1.0), Rows::All, Operand::CycleVsInput);
        assert!(Objective::new(vec![bad]).is_err());
        let bad = Term::new("x", l1(f64::NAN), Rows::All, Operand::Output);
        assert!(Objective::new(vec![bad]).is_err());
        let mut o = Objective::default();
        o.push(Term::new("ok", l1(1.0), Rows::All, Operand::OutputVsInput))
            .unwrap();
        assert_eq!(o.terms().len(), 1);
    }
}
