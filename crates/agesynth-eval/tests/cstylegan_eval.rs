//! The cStyleGAN evaluation on a freshly initialised `tiny` generator and a
//! few real UTKFace faces per group (skipped without the data): a row per
//! group and overall, values in range, the files written, and the same
//! numbers for the same seed.

use std::path::Path;

use agesynth_core::candle_core::{DType, Device};
use agesynth_cstylegan::{seeded_var_builder, CStyleGanConfig, Generator};
use agesynth_eval::{
    cstylegan::{
        evaluate_cstylegan, real_people_identification, real_people_pairs, write_cstylegan_report,
        CStyleGanEvalOptions,
    },
    data,
    features::FaceNets,
};

#[test]
#[ignore = "needs real face data (../shared/data or $AGESYNTH_DATA); CI runs it with --ignored where present"]
fn cstylegan_eval_has_a_row_per_group_and_is_deterministic() {
    let Some(utk) = agesynth_data::testing::shared_subdir("utkface", "cstylegan_eval") else {
        return;
    };
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights");
    if !weights.join("mtcnn.safetensors").is_file() {
        eprintln!("skipping cstylegan_eval: the face networks' weights are not in weights/");
        return;
    }
    let dev = Device::Cpu;
    let cfg = CStyleGanConfig::tiny();
    let vars = candle_nn::VarMap::new();
    let g = Generator::new(&cfg, seeded_var_builder(&vars, 1, DType::F32, &dev)).unwrap();
    let bins = cfg.bins().unwrap();
    let nets = FaceNets::load(&weights, &dev).unwrap();
    let reference = data::load_reference(&utk, cfg.image_size as u32, &bins, 2, 0).unwrap();
    assert_eq!(reference.len(), 2 * bins.len());
    let opts = CStyleGanEvalOptions {
        count: 2,
        batch: 2,
        sheet_rows: 2,
        ..CStyleGanEvalOptions::default()
    };
    let run = || {
        let analyzer = nets.analyzer(&dev, 16);
        evaluate_cstylegan(&g, &reference, &analyzer, &opts).unwrap()
    };
    let a = run();
    assert_eq!(a.rows.len(), bins.len() + 1);
    for (r, t) in a.rows.iter().zip(bins.groups()) {
        assert_eq!(r.group, agesynth_eval::RowGroup::Group(bins.label(t)));
        assert_eq!((r.n, r.n_real), (2, 2));
    }
    let all = a.rows.last().unwrap();
    assert_eq!((all.group.label(), all.n, all.n_real), ("overall", 12, 12));
    for r in &a.rows {
        for v in [
            r.age_accuracy,
            r.detection_rate,
            r.real_age_accuracy,
            r.real_detection_rate,
        ] {
            assert!(v.is_some_and(|x| (0.0..=1.0).contains(&x)), "{r:?}");
        }
        assert!(
            r.frechet.is_some_and(|f| f.is_finite() && f >= 0.0),
            "{r:?}"
        );
        if a.judge.is_some() {
            for v in [
                r.judge_age_accuracy,
                r.female_share,
                r.real_judge_age_accuracy,
            ] {
                assert!(v.is_some_and(|x| (0.0..=1.0).contains(&x)), "{r:?}");
            }
            assert!(r.judge_age_mae.is_some_and(f64::is_finite), "{r:?}");
        }
    }
    // The same two latents at every group: agreement over 10-19 .. 50+.
    if a.judge.is_some() {
        let g = a.gender_agreement.as_ref().unwrap();
        assert_eq!(g.identities, 2);
        assert_eq!(g.groups.first().map(String::as_str), Some("10-19"));
        assert!(g.consistent <= 2);
    }
    // Identification among the real 20-29 faces (two of them here): a
    // render at 20-29 is its own reference.
    let c = a.consistency.as_ref().unwrap();
    assert_eq!((c.among_real.len(), c.among_real_of), (6, 2));
    assert_eq!(c.among_real[2], ("20-29".to_string(), 1.0));
    assert!(c.among_real.iter().all(|(_, r)| (0.0..=1.0).contains(r)));
    assert_eq!(a.rows, run().rows);
    // The contact sheet: 2 latents × 6 groups of 160-px tiles under captions.
    assert_eq!(a.contact.width() as usize, 6 * 160 + 7 * 4);
    assert!(a.contact.height() as usize > 2 * 160 + 3 * 4);
    let out = tempfile::tempdir().unwrap();
    write_cstylegan_report(out.path(), &a, serde_json::json!({"seed": 0}), 1.0).unwrap();
    for f in [
        "report.md",
        "metrics.json",
        "samples.png",
        "contact.png",
        "plot_frechet.png",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("estimated group = conditioned (dlib)"),
        "{report}"
    );
    if a.judge.is_some() {
        assert!(
            report.contains(
                "estimated group = conditioned (face-api) ↑ | age MAE to centre (face-api) ↓"
            ) && report.contains("Gender agreement (face-api): "),
            "{report}"
        );
    }
    assert!(!report.contains("## Real ageing"), "{report}");
    // FG-NET's people across groups, the scale of the same-latent distances.
    let Some(fgnet) = agesynth_data::testing::shared_subdir("fgnet-dev", "cstylegan_eval") else {
        return;
    };
    let people = data::load_fgnet(&fgnet, cfg.image_size as u32, None, 0).unwrap();
    let analyzer = nets.analyzer(&dev, 16);
    let mut b = a.clone();
    b.real_people = real_people_pairs(&people, &analyzer, &bins).unwrap();
    b.real_identification =
        real_people_identification(&people, &reference, &analyzer, &bins).unwrap();
    let ident = b
        .real_identification
        .as_ref()
        .expect("FG-NET's dev people have 20-29 photos");
    assert_eq!(
        (ident.reference_group.as_str(), ident.distractors),
        ("20-29", 2)
    );
    assert!(ident.rows.iter().any(|r| r.group == "0-9" && r.trials >= 2));
    assert!(ident
        .rows
        .iter()
        .all(|r| r.people >= 1 && (0.0..=1.0).contains(&r.identified)));
    assert!(!b.real_people.is_empty());
    let young_old = b
        .real_people
        .iter()
        .find(|p| p.from == "0-9" && p.to == "10-19")
        .expect("FG-NET's dev subjects have photos at 0-9 and 10-19");
    assert!(young_old.people >= 2 && young_old.mean_l2 > 0.2 && young_old.mean_l2 < 1.0);
    write_cstylegan_report(out.path(), &b, serde_json::json!({"seed": 0}), 1.0).unwrap();
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("## Real ageing")
            && report.contains("| **0-9** |")
            && report.contains("## Real people identified across groups"),
        "{report}"
    );
    let m: agesynth_eval::cstylegan::CStyleGanMetricsFile =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(m.real_people.len(), b.real_people.len());
    let (saved, measured) = (m.real_identification.unwrap(), ident);
    assert_eq!(saved.rows.len(), measured.rows.len());
    for (x, y) in saved.rows.iter().zip(&measured.rows) {
        assert_eq!(
            (&x.group, x.people, x.trials),
            (&y.group, y.people, y.trials)
        );
        assert!((x.identified - y.identified).abs() < 1e-9, "{x:?} {y:?}");
    }
}
