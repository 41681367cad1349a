//! The pipeline on photos: several faces, EXIF rotation, paste-back
//! locality, outputs on disk, and the named errors.

use std::path::Path;

use agesynth_core::FaceImage;
use agesynth_facegan::FaceGanConfig;
use agesynth_pipeline::paste::chip_footprint;
use agesynth_pipeline::testing::{
    export_fresh_generator, jpeg_with_orientation, rotate_ccw, two_face_photo,
    weights_dir_for_tests,
};
use agesynth_pipeline::{Ager, FaceAger, PipelineError};
use candle_core::Device;

fn ager(dir: &Path) -> Ager {
    let weights = weights_dir_for_tests(dir).unwrap();
    Ager::from_weights_dir(&weights, &Device::Cpu).unwrap()
}

#[test]
fn target_ages_map_to_the_generators_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.safetensors");
    export_fresh_generator(&FaceGanConfig::tiny(), 1, &path).unwrap();
    let fa = FaceAger::load(&path, &Device::Cpu).unwrap();
    let t = fa
        .targets(&[0.0, 9.9, 10.0, 30.0, 49.5, 50.0, 70.0])
        .unwrap();
    let groups: Vec<usize> = t.iter().map(|t| t.group.0).collect();
    assert_eq!(groups, vec![0, 0, 1, 3, 4, 5, 5]);
    assert_eq!(t[3].caption(), "age 30 (group 30-39)");
    assert_eq!(t[6].caption(), "age 70 (group 50+)");
    assert_eq!(t[4].age_text(), "49.5");
    assert!(matches!(
        fa.targets(&[-1.0]),
        Err(PipelineError::TargetAge(_))
    ));
    assert!(matches!(
        fa.targets(&[f32::NAN]),
        Err(PipelineError::TargetAge(_))
    ));
    assert!(matches!(fa.targets(&[]), Err(PipelineError::TargetAge(_))));
    // A missing generator is a named weights error.
    let err = FaceAger::load(&dir.path().join("none.safetensors"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("none.safetensors"), "{err}");
}

#[test]
fn no_face_and_corrupt_photos_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ager = ager(dir.path());
    // A smooth gradient holds no face.
    let (w, h) = (160u32, 120u32);
    let px = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
        })
        .collect();
    let gradient = FaceImage::new(w, h, px).unwrap();
    let path = dir.path().join("gradient.png");
    agesynth_data::draw::save_png(&path, &gradient).unwrap();
    match ager.age_file(&path, &[30.0]) {
        Err(PipelineError::NoFace { path: p }) => assert_eq!(p, path),
        other => panic!("expected NoFace, got {other:?}"),
    }
    // Truncated JPEG and a file that is no image at all.
    let jpeg = jpeg_with_orientation(&gradient, 1).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"not an image").unwrap();
    for bad in [&cut, &text, &dir.path().join("missing.jpg")] {
        let err = ager.age_file(bad, &[30.0]).unwrap_err();
        assert!(matches!(err, PipelineError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");
    }
}

#[test]
#[ignore = "needs real face data (../shared/data or $AGESYNTH_DATA); CI runs it with --ignored where present"]
fn two_faces_are_aged_and_the_rest_stays_bit_identical() {
    let Some(photo) = two_face_photo("two_faces_are_aged_and_the_rest_stays_bit_identical") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ager = ager(dir.path());
    let aged = ager.age_image(&photo, &[10.0, 70.0]).unwrap();
    assert_eq!(aged.faces.len(), 2, "two faces expected");
    assert!(
        aged.faces[0].bbox[0] < aged.faces[1].bbox[0],
        "left to right"
    );
    assert_eq!(aged.images.len(), 2);
    for f in &aged.faces {
        assert_eq!(f.outputs.len(), 2);
        assert_eq!(f.outputs[1].target.label, "50+");
        assert_eq!(f.outputs[1].chip.width(), ager.face_ager().chip_size());
        let est = f.estimated_age.unwrap();
        assert!((5.0..70.0).contains(&est), "estimated age {est}");
    }
    // Outside both chips' footprints, every pixel is the original's; inside,
    // the face changed.
    let s = ager.face_ager().chip_size();
    let fps: Vec<[u32; 4]> = aged
        .faces
        .iter()
        .map(|f| chip_footprint(&f.to_chip, s, photo.width(), photo.height()).unwrap())
        .collect();
    for img in &aged.images {
        let (mut outside_diff, mut inside_diff) = (0usize, 0usize);
        for y in 0..photo.height() {
            for x in 0..photo.width() {
                let inside = fps
                    .iter()
                    .any(|b| x >= b[0] && x < b[2] && y >= b[1] && y < b[3]);
                let o = ((y * photo.width() + x) * 3) as usize;
                let same = img.pixels()[o..o + 3] == photo.pixels()[o..o + 3];
                match (inside, same) {
                    (false, false) => outside_diff += 1,
                    (true, false) => inside_diff += 1,
                    _ => {}
                }
            }
        }
        assert_eq!(outside_diff, 0, "pixels outside the faces changed");
        assert!(
            inside_diff > 500,
            "the faces barely changed ({inside_diff} pixels)"
        );
    }
    // Outputs on disk, the strip, and the report.
    let saved = aged.save(&dir.path().join("out"), "pair").unwrap();
    assert_eq!(
        saved
            .images
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        vec!["pair_age10.png", "pair_age70.png"]
    );
    let back = image::open(&saved.images[1]).unwrap().to_rgb8();
    assert_eq!(back.as_raw(), aged.images[1].pixels());
    let strip = image::open(&saved.strip).unwrap();
    assert!(strip.width() > 3 * strip.height() / 2);
    // The photos' row (320 px) and a close-up row (160 px) per face.
    assert!(
        strip.height() > 320 + 2 * 160,
        "{:?}",
        (strip.width(), strip.height())
    );
    let report = aged.report(Path::new("pair.png"), Some(&saved));
    assert_eq!(report.faces.len(), 2);
    assert_eq!(report.outputs.len(), 3);

    // Only the largest face with `largest_only`.
    let largest = ager.clone().with_options(agesynth_pipeline::AgerOptions {
        largest_only: true,
        ..ager.options().clone()
    });
    let one = largest.detect(&photo).unwrap();
    assert_eq!(one.len(), 1);
    let widest = aged
        .faces
        .iter()
        .map(|f| f.bbox[2] - f.bbox[0])
        .fold(0.0, f64::max);
    assert_eq!(one[0].width(), widest);

    // A black-and-white photo stays black and white.
    let bw = agesynth_pipeline::ager::to_grey(&photo).unwrap();
    let aged_bw = ager.age_image(&bw, &[70.0]).unwrap();
    assert!(agesynth_pipeline::ager::is_grey(&aged_bw.images[0]));
    assert_ne!(aged_bw.images[0], bw);

    // The same photo stored turned 90° with an EXIF tag saying so: read
    // upright, both faces found again.
    let tagged = dir.path().join("turned.jpg");
    std::fs::write(
        &tagged,
        jpeg_with_orientation(&rotate_ccw(&photo), 6).unwrap(),
    )
    .unwrap();
    let turned = ager.age_file(&tagged, &[30.0]).unwrap();
    assert_eq!(
        (turned.original.width(), turned.original.height()),
        (480, 240)
    );
    assert_eq!(turned.faces.len(), 2);
}
