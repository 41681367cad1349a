//! The gender-kept column: the share of outputs that the second judge reads
//! as the input's gender, per target group and overall.

use agesynth_core::{
    candle_core::{Device, Tensor},
    AgeBins, AgeGenerator, AgeGroup, FaceImage, GenderClassifier, Result,
};
use agesynth_eval::{
    evaluate, AgeGenderJudge, Analyzer, CopyInput, EvalData, EvalFace, EvalOptions,
    GeneratorMethod, Method,
};

mod common;
use common::{Always25, Brightness, SeesFaces};

/// Reads faces brighter than mid-grey as female (probability 0.9), the
/// others as male (0.1); every age as 30.
struct BrightIsFemale;
impl AgeGenderJudge for BrightIsFemale {
    fn name(&self) -> &str {
        "bright"
    }
    fn judge(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let m = x.flatten_from(1)?.mean(1)?.to_vec1::<f32>()?;
        let female: Vec<f32> = m.iter().map(|&v| if v > 0.0 { 0.9 } else { 0.1 }).collect();
        Ok((
            Tensor::full(30f32, m.len(), x.device())?,
            Tensor::from_vec(female, m.len(), x.device())?,
        ))
    }
}

/// A training gender critic that reads every face as female.
struct AllFemale;
impl GenderClassifier for AllFemale {
    fn gender_logits(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        Ok(Tensor::from_vec([0f32, 4.0].repeat(n), (n, 2), x.device())?)
    }
}

/// Paints the face black at 40–49 and 50+ and leaves it as it is otherwise.
struct DarkWhenOld(AgeBins);
impl AgeGenerator for DarkWhenOld {
    fn generate(&self, x: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        let rows = targets
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let r = x.narrow(0, k, 1)?;
                if t.0 >= 4 {
                    r.ones_like()?.neg()
                } else {
                    Ok(r)
                }
            })
            .collect::<agesynth_core::candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.0
    }
    fn image_size(&self) -> usize {
        8
    }
}

#[test]
fn an_output_that_changes_the_judges_gender_reading_is_not_kept() {
    let bins = AgeBins::paper();
    // Three bright faces (read female) and one dark (read male), all 25;
    // then a bright child of 5, whose outputs do not count.
    let gallery: Vec<EvalFace> = [220u8, 200, 240, 30, 210]
        .iter()
        .enumerate()
        .map(|(k, &v)| EvalFace {
            image: FaceImage::new(8, 8, vec![v; 8 * 8 * 3]).unwrap(),
            age: if k < 4 { 25.0 } else { 5.0 },
            subject: Some(k as u32),
            key: format!("face{k}"),
        })
        .collect();
    let data = EvalData {
        name: "four faces".into(),
        gallery,
        inputs: (0..5).collect(),
        skipped: Vec::new(),
    };
    let (embed, age, detect, judge) = (Brightness, Always25, SeesFaces, BrightIsFemale);
    let dev = Device::Cpu;
    let generator = DarkWhenOld(bins.clone());
    let ours = GeneratorMethod::new("dark when old", &generator);
    let methods: Vec<&dyn Method> = vec![&ours, &CopyInput];
    let run = |analyzer: &Analyzer| {
        evaluate(
            &data,
            None,
            &methods,
            analyzer,
            &bins,
            &EvalOptions::default(),
        )
        .unwrap()
    };
    let judged = run(&Analyzer::new(&embed, &age, &detect, &dev, 12).with_judge(&judge));
    let kept = |method: &str, group: &str| {
        judged
            .rows
            .iter()
            .find(|r| r.method == method && r.group.label() == group)
            .unwrap()
            .gender_kept
    };
    // Below 40 the generator copies: every gender kept. From 40 the three
    // bright faces turn dark (read male): only the dark face keeps its
    // reading. The child's darkened outputs are not counted.
    assert_eq!(kept("dark when old", "20-29"), Some(1.0));
    assert_eq!(kept("dark when old", "40-49"), Some(0.25));
    assert_eq!(kept("dark when old", "50+"), Some(0.25));
    assert_eq!(
        kept("dark when old", "overall"),
        Some((4.0 * 4.0 + 2.0) / 24.0)
    );
    assert_eq!(kept("copy input", "50+"), Some(1.0));
    let n = |group: &str| {
        judged
            .rows
            .iter()
            .find(|r| r.method == "dark when old" && r.group.label() == group)
            .unwrap()
            .n
    };
    assert_eq!(n("50+"), 5, "every input is still rendered and measured");
    // Without a judge there is no reading, nor a teacher's without one.
    let plain = run(&Analyzer::new(&embed, &age, &detect, &dev, 12));
    assert!(plain.rows.iter().all(|r| r.gender_kept.is_none()));
    assert!(judged.rows.iter().all(|r| r.teacher_gender_kept.is_none()));
    // A gender teacher that reads every face as female sees every gender
    // kept where the judge sees a quarter; the judge's column is unchanged.
    let teacher = AllFemale;
    let taught = run(&Analyzer::new(&embed, &age, &detect, &dev, 12)
        .with_judge(&judge)
        .with_gender_teacher(&teacher));
    for (a, b) in taught.rows.iter().zip(&judged.rows) {
        assert_eq!(a.gender_kept, b.gender_kept);
        assert_eq!(a.teacher_gender_kept, Some(1.0), "{} {}", a.method, a.group);
    }
}
