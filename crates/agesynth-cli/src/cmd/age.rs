//! `agesynth age PHOTO…`: ages the faces in photos (see
//! `agesynth_pipeline::Ager`).

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use agesynth_core::DeviceSpec;
use agesynth_pipeline::{output::output_stem, weights, Ager, AgerOptions, FaceMask, PasteMode};
use anyhow::Context;
use clap::Args;

/// Options of `agesynth age`.
#[derive(Debug, Args)]
pub struct AgeArgs {
    /// Photos (JPEG or PNG, any size; EXIF orientation is honoured), or
    /// folders of them.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Target ages in years, comma-separated; each maps to the generator's
    /// age group that holds it.
    #[arg(long, value_delimiter = ',', default_value = "10,30,50,70")]
    pub ages: Vec<f32>,
    /// Output folder: `<stem>_age<N>.png` per target and `<stem>_strip.png`.
    #[arg(long, default_value = "aged")]
    pub out: PathBuf,
    /// Weights folder (default: $AGESYNTH_WEIGHTS, else ./weights, else the
    /// repository's weights/).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// FaceGAN generator to use instead of the weights folder's
    /// `facegan-cpu64.safetensors` (a weights file with its .json sidecar, a
    /// checkpoint or a run folder).
    #[arg(long)]
    pub generator: Option<PathBuf>,
    /// Age only the largest face of each photo.
    #[arg(long)]
    pub largest: bool,
    /// Width of the paste-back mask's soft edge, as a fraction of its
    /// radius (0 to 1).
    #[arg(long, default_value_t = FaceMask::default().feather, value_parser = super::unit_interval)]
    pub feather: f64,
    /// How the aged face is put back: `residual` adds the generator's
    /// change to the full-resolution face (keeps its detail), `replace`
    /// blends the enlarged generated face in.
    #[arg(long, default_value = "residual", value_parser = parse_paste)]
    pub paste: PasteMode,
    /// Print a JSON report per photo on stdout (one array; a photo that
    /// failed has an `error` field instead of faces and outputs).
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = super::device)]
    pub device: DeviceSpec,
}

fn parse_paste(s: &str) -> Result<PasteMode, String> {
    match s {
        "residual" => Ok(PasteMode::Residual),
        "replace" => Ok(PasteMode::Replace),
        other => Err(format!(
            "unknown paste mode `{other}` (residual or replace)"
        )),
    }
}

/// Runs `age`: every photo is processed even when others fail; the exit
/// code is non-zero when any failed.
pub fn run(a: AgeArgs) -> anyhow::Result<ExitCode> {
    // Everything that can be checked without the networks, first: the
    // output folder, the photos and the target ages.
    super::check_out_dir(&a.out)?;
    // Temporary files of an `age` that was killed while writing.
    agesynth_core::io::clean_stale_temporaries(&a.out, false)?;
    let photos = agesynth_pipeline::input::expand_inputs(&a.photos)?;
    let device = a.device.open()?;
    let dir = weights::resolve_weights_dir(a.weights.as_deref());
    let facegan = a
        .generator
        .clone()
        .unwrap_or_else(|| dir.join(weights::FACEGAN_WEIGHTS));
    let opts = AgerOptions {
        largest_only: a.largest,
        mask: FaceMask::default().with_feather(a.feather),
        paste: a.paste,
        ..AgerOptions::default()
    };
    let ager = Ager::load(&facegan, &dir, &device, opts)
        .with_context(|| format!("loading the networks from {}", dir.display()))?;
    // Reject bad targets once, before any photo.
    ager.face_ager().targets(&a.ages)?;

    let bar = if a.json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} photos, eta {eta} {wide_msg}",
        )?
        .progress_chars("=> ");
        indicatif::ProgressBar::new(photos.len() as u64).with_style(style)
    };
    let t0 = std::time::Instant::now();
    let mut reports = Vec::new();
    let mut failed = 0usize;
    let mut stems = std::collections::HashSet::new();
    for photo in &photos {
        bar.set_message(photo.display().to_string());
        // Two photos with one name (a/x.jpg, b/x.png) must not overwrite
        // each other's outputs.
        let base = output_stem(photo);
        let mut stem = base.clone();
        for k in 2.. {
            if stems.insert(stem.clone()) {
                break;
            }
            stem = format!("{base}_{k}");
        }
        let result = ager
            .age_file(photo, &a.ages)
            .map_err(anyhow::Error::from)
            .and_then(|aged| {
                let saved = aged.save(&a.out, &stem)?;
                Ok((aged, saved))
            });
        match result {
            Ok((aged, saved)) => {
                if !a.json {
                    bar.suspend(|| {
                        eprintln!(
                            "{}: {} face(s) -> {}",
                            photo.display(),
                            aged.faces.len(),
                            saved.strip.display()
                        )
                    });
                }
                reports.push(serde_json::to_value(aged.report(photo, Some(&saved)))?);
            }
            Err(err) => {
                failed += 1;
                let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                reports.push(serde_json::json!({
                    "photo": photo,
                    "error": chain.join(": "),
                }));
                bar.suspend(|| {
                    eprintln!("error: {err}");
                    for cause in err.chain().skip(1) {
                        eprintln!("  caused by: {cause}");
                    }
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    let n = photos.len();
    eprintln!(
        "{} of {n} photo(s) aged in {:.1} s, outputs in {}{}",
        n - failed,
        t0.elapsed().as_secs_f64(),
        a.out.display(),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
