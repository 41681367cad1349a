//! A training critic's reading beside the judges: every image the judges
//! measure is read by it too, and each row reports how often it finds the
//! target group, for the generators and the baselines alike.

use agesynth_core::{
    candle_core::{Device, Tensor},
    AgeBins, AgeClassifier, AgeGenerator, AgeGroup, FaceImage, Result,
};
use agesynth_eval::{
    evaluate, Analyzer, CopyInput, EvalData, EvalFace, EvalOptions, GeneratorMethod, Method,
};

mod common;
use common::{Always25, Brightness, SeesFaces};

/// A teacher that reads bright faces as 50+ and dark ones as 20–29.
struct BrightIsOld(AgeBins);
impl AgeClassifier for BrightIsOld {
    fn group_logits(&self, x: &Tensor) -> Result<Tensor> {
        let m = x.flatten_from(1)?.mean(1)?.to_vec1::<f32>()?;
        let g = self.0.len();
        let rows: Vec<f32> = m
            .iter()
            .flat_map(|&v| (0..g).map(move |k| f32::from(k == if v > 0.0 { 5 } else { 2 })))
            .collect();
        Ok(Tensor::from_vec(rows, (m.len(), g), x.device())?)
    }
    fn age_bins(&self) -> &AgeBins {
        &self.0
    }
}

/// Paints the face white at 50+ and leaves it as it is otherwise.
struct WhiteAt50(AgeBins);
impl AgeGenerator for WhiteAt50 {
    fn generate(&self, x: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        let rows = targets
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let r = x.narrow(0, k, 1)?;
                if t.0 == 5 {
                    r.ones_like()
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
fn each_row_reports_how_often_the_training_critic_reads_its_target() {
    let bins = AgeBins::paper();
    let gallery: Vec<EvalFace> = (0..4)
        .map(|k| EvalFace {
            image: FaceImage::new(8, 8, vec![40 + k as u8; 8 * 8 * 3]).unwrap(),
            age: 25.0,
            subject: Some(k),
            key: format!("face{k}"),
        })
        .collect();
    let data = EvalData {
        name: "dark faces of 25".into(),
        gallery,
        inputs: (0..4).collect(),
        skipped: Vec::new(),
    };
    let (embed, age, detect) = (Brightness, Always25, SeesFaces);
    let teacher = BrightIsOld(bins.clone());
    let dev = Device::Cpu;
    let generator = WhiteAt50(bins.clone());
    let ours = GeneratorMethod::new("white at 50+", &generator);
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
    let taught = run(&Analyzer::new(&embed, &age, &detect, &dev, 12).with_teacher(&teacher));
    let acc = |method: &str, group: &str| {
        taught
            .rows
            .iter()
            .find(|r| r.method == method && r.group.label() == group)
            .unwrap()
            .teacher_age_accuracy
    };
    // The generator satisfies the teacher at 50+ (white) and, by copying, at 20–29.
    assert_eq!(acc("white at 50+", "50+"), Some(1.0));
    assert_eq!(acc("white at 50+", "20-29"), Some(1.0));
    assert_eq!(acc("white at 50+", "0-9"), Some(0.0));
    assert_eq!(acc("white at 50+", "overall"), Some(2.0 / 6.0));
    // The copy only at 20–29; the judges' columns are untouched by it.
    assert_eq!(acc("copy input", "50+"), Some(0.0));
    assert_eq!(acc("copy input", "20-29"), Some(1.0));
    let plain = run(&Analyzer::new(&embed, &age, &detect, &dev, 12));
    assert!(plain.rows.iter().all(|r| r.teacher_age_accuracy.is_none()));
    for (a, b) in taught.rows.iter().zip(&plain.rows) {
        assert_eq!(
            (a.age_accuracy, a.verification_rate),
            (b.age_accuracy, b.verification_rate)
        );
    }
}
