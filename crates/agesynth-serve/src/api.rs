//! The JSON API: `POST /api/age`, `GET /api/health`, `GET /api/version`.
//!
//! `POST /api/age` takes a `multipart/form-data` body with the fields
//!
//! - `photo` (required): a JPEG or PNG file;
//! - `ages` (optional, default `10,30,50,70`): target ages in years,
//!   separated by commas, or `all` for one target per age group of the
//!   generator (at each group's [`crate::info::GroupInfo::centre`]);
//! - `strip` (optional, `true`/`1`): also return the labelled strip.
//!
//! It answers [`AgeResponse`]: the faces found (boxes, landmarks, estimated
//! ages) and, per target, the whole photo with every face aged, as a PNG
//! encoded in base64. No face found is not an error: 200 with an empty
//! `faces` list and a `message`.

use std::path::Path;
use std::time::Instant;

use agesynth_data::transform::DecodeLimits;
use agesynth_pipeline::{Ager, PipelineError};
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::error::ApiError;
use crate::pool::{PoolError, PoolStats};
use crate::server::AppState;

/// The name an upload goes by inside the pipeline (never a file on disk).
pub const UPLOAD_NAME: &str = "<upload>";

/// The target ages used when a request gives none.
pub const DEFAULT_AGES: [f32; 4] = [10.0, 30.0, 50.0, 70.0];

/// Oldest target age accepted, in years.
pub const MAX_TARGET_AGE: f32 = 120.0;

/// One face found in the photo.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaceInfo {
    /// Bounding box `[x1, y1, x2, y2]` in the photo's pixels (EXIF
    /// orientation applied).
    pub bbox: [f64; 4],
    /// The detector's face probability.
    pub score: f32,
    /// Eye centres, nose tip and mouth corners, `[x, y]` each.
    pub landmarks5: [[f64; 2]; 5],
    /// The age estimator's estimate of the face as uploaded, in years.
    pub estimated_age: Option<f32>,
}

/// The photo at one target age.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AgedImage {
    /// The target age asked for, in years.
    pub age: f32,
    /// The generator's age group that stands for it (its index).
    pub group: usize,
    /// The group's label, e.g. `"30-39"`.
    pub label: String,
    /// `"age 30 (group 30-39)"`.
    pub caption: String,
    /// The whole photo with every face aged, at the photo's full size: a
    /// PNG, base64-encoded (standard alphabet, padded).
    pub png_base64: String,
}

/// Where the time of a request went, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Waiting for a worker.
    pub queue_ms: f64,
    /// Decoding the photo.
    pub decode_ms: f64,
    /// Detecting, aligning, ageing and pasting back.
    pub age_ms: f64,
    /// Encoding the PNGs.
    pub encode_ms: f64,
}

/// The body of a successful `POST /api/age`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AgeResponse {
    /// Width of the photo as read (EXIF orientation applied).
    pub width: u32,
    /// Height of the photo as read.
    pub height: u32,
    /// The faces found, left to right (empty when none was found).
    pub faces: Vec<FaceInfo>,
    /// The photo at each target age, in the order asked for (empty when no
    /// face was found).
    pub images: Vec<AgedImage>,
    /// The labelled strip (the original, then each target; close-ups of the
    /// faces below) as a base64 PNG, when `strip` was asked for and a face
    /// was found.
    pub strip_png_base64: Option<String>,
    /// Set when no face was found: what was looked for.
    pub message: Option<String>,
    /// Where the time went.
    pub timings: Timings,
}

/// The body of `GET /api/health`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// `"ok"`.
    pub status: String,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// The inference pool's counters.
    pub pool: PoolStats,
    /// The limits requests are held to.
    pub limits: Limits,
}

/// What a parsed `POST /api/age` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct AgeRequest {
    /// The photo's bytes, as uploaded (kept in memory only).
    pub photo: Vec<u8>,
    /// Target ages in years.
    pub ages: Vec<f32>,
    /// Whether to return the strip too.
    pub strip: bool,
}

/// Parses the `ages` field: `all` (one age per group, `all_ages`), or
/// numbers separated by commas or spaces, each in `0..=120`, at most `max`.
pub fn parse_ages(text: &str, all_ages: &[f32], max: usize) -> Result<Vec<f32>, ApiError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(all_ages.to_vec());
    }
    let mut ages = Vec::new();
    for part in text.split([',', ' ', ';']).filter(|p| !p.is_empty()) {
        let age: f32 = part.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "bad target age `{part}`: ages are numbers of years separated by commas, or `all`"
            ))
        })?;
        if !age.is_finite() || !(0.0..=MAX_TARGET_AGE).contains(&age) {
            return Err(ApiError::BadRequest(format!(
                "target age {part} is out of range: ages run from 0 to {MAX_TARGET_AGE} years"
            )));
        }
        ages.push(age);
    }
    if ages.is_empty() {
        return Err(ApiError::BadRequest(
            "no target age given: `ages` is empty (give e.g. `10,30,50` or `all`)".into(),
        ));
    }
    if ages.len() > max {
        return Err(ApiError::BadRequest(format!(
            "{} target ages asked for; the limit is {max} per request",
            ages.len()
        )));
    }
    Ok(ages)
}

fn parse_bool(name: &str, text: &str) -> Result<bool, ApiError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        other => Err(ApiError::BadRequest(format!(
            "field `{name}` must be true or false, got `{other}`"
        ))),
    }
}

fn multipart_error(e: MultipartError, limits: &Limits) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge {
            limit: limits.max_request_bytes,
        }
    } else {
        ApiError::BadRequest(format!("cannot read the form: {}", e.body_text()))
    }
}

/// Reads the multipart form of `POST /api/age` (see the module docs).
pub async fn read_age_request(
    mut form: Multipart,
    limits: &Limits,
    all_ages: &[f32],
) -> Result<AgeRequest, ApiError> {
    let mut photo = None;
    let mut ages = None;
    let mut strip = false;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limits))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "photo" => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e, limits))?;
                photo = Some(bytes.to_vec());
            }
            "ages" | "strip" => {
                let text = field.text().await.map_err(|e| multipart_error(e, limits))?;
                if name == "ages" {
                    ages = Some(parse_ages(&text, all_ages, limits.max_ages)?);
                } else {
                    strip = parse_bool("strip", &text)?;
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown form field `{other}`: the fields are `photo`, `ages` and `strip`"
                )))
            }
        }
    }
    let photo = photo.ok_or_else(|| {
        ApiError::BadRequest(
            "no `photo` field: send the photo as a multipart file field named `photo`".into(),
        )
    })?;
    if photo.is_empty() {
        return Err(ApiError::Unprocessable(
            "cannot decode the photo: the file is empty".into(),
        ));
    }
    Ok(AgeRequest {
        photo,
        ages: ages.unwrap_or_else(|| DEFAULT_AGES.to_vec()),
        strip,
    })
}

/// The words a client reads for a pipeline error: a decoding failure is
/// the decoder's reason (422), anything else an internal error (500).
pub fn pipeline_error(err: PipelineError) -> ApiError {
    match err {
        PipelineError::Decode { source, .. } => {
            let reason = match &source {
                agesynth_core::Error::Image { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            ApiError::Unprocessable(format!("cannot decode the photo: {reason}"))
        }
        PipelineError::TargetAge(msg) => ApiError::BadRequest(format!("bad target ages: {msg}")),
        other => {
            let mut text = other.to_string();
            let mut cur = std::error::Error::source(&other);
            while let Some(e) = cur {
                text.push_str(": ");
                text.push_str(&e.to_string());
                cur = e.source();
            }
            ApiError::Internal(text)
        }
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// PNG bytes of `img`, encoded for speed (fast deflate, adaptive filters).
pub fn encode_png(img: &agesynth_core::FaceImage) -> Result<Vec<u8>, ApiError> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        img.pixels(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| ApiError::Internal(format!("cannot encode a PNG: {e}")))?;
    Ok(out)
}

/// The work of one `POST /api/age` on an inference worker: decode, age,
/// encode. Runs off the async threads.
pub fn age_job(ager: &Ager, req: AgeRequest, limits: &Limits) -> Result<AgeResponse, ApiError> {
    let mut timings = Timings::default();
    let t = Instant::now();
    let decode_limits = DecodeLimits {
        max_pixels: limits.max_pixels,
        max_file_bytes: limits.max_request_bytes as u64,
        ..DecodeLimits::default()
    };
    let photo =
        agesynth_pipeline::input::decode_photo(&req.photo, Path::new(UPLOAD_NAME), &decode_limits)
            .map_err(pipeline_error)?;
    drop(req.photo);
    timings.decode_ms = ms(t);
    let (width, height) = (photo.width(), photo.height());

    let t = Instant::now();
    let aged = match ager.age_image(&photo, &req.ages) {
        Ok(aged) => aged,
        Err(PipelineError::NoFace { .. }) => {
            timings.age_ms = ms(t);
            let min = ager.options().mtcnn.min_face_size;
            return Ok(AgeResponse {
                width,
                height,
                faces: Vec::new(),
                images: Vec::new(),
                strip_png_base64: None,
                message: Some(format!(
                    "no face found in the photo (faces {min:.0} px wide and up, seen from the \
                     front, are looked for)"
                )),
                timings,
            });
        }
        Err(e) => return Err(pipeline_error(e)),
    };
    timings.age_ms = ms(t);

    let t = Instant::now();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut images = Vec::with_capacity(aged.images.len());
    for (img, target) in aged.images.iter().zip(&aged.targets) {
        images.push(AgedImage {
            age: target.age,
            group: target.group.0,
            label: target.label.clone(),
            caption: target.caption(),
            png_base64: b64.encode(encode_png(img)?),
        });
    }
    let strip_png_base64 = if req.strip {
        let strip = aged
            .strip(agesynth_pipeline::output::STRIP_TILE_HEIGHT)
            .map_err(pipeline_error)?;
        Some(b64.encode(encode_png(&strip)?))
    } else {
        None
    };
    timings.encode_ms = ms(t);
    let faces = aged
        .faces
        .iter()
        .map(|f| FaceInfo {
            bbox: f.bbox,
            score: f.score,
            landmarks5: f.landmarks5,
            estimated_age: f.estimated_age,
        })
        .collect();
    Ok(AgeResponse {
        width,
        height,
        faces,
        images,
        strip_png_base64,
        message: None,
        timings,
    })
}

/// `POST /api/age`.
pub async fn age(
    State(app): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<AgeResponse>, ApiError> {
    let form = form.map_err(|e| {
        ApiError::BadRequest(format!(
            "expected a multipart/form-data body with a `photo` file field ({})",
            e.body_text()
        ))
    })?;
    let limits = app.limits().clone();
    let req = read_age_request(form, &limits, &app.all_ages()).await?;
    let queued = Instant::now();
    let out = app
        .pool()
        .run(move |ager| {
            let q = ms(queued);
            age_job(ager, req, &limits).map(|mut r| {
                r.timings.queue_ms = q;
                r
            })
        })
        .await;
    match out {
        Ok(result) => result.map(Json),
        Err(PoolError::Busy {
            queued,
            retry_after,
        }) => Err(ApiError::Busy {
            queued,
            retry_after,
        }),
        Err(PoolError::Panicked(msg)) => Err(ApiError::Internal(format!(
            "the ageing failed unexpectedly ({msg}); the server is still running"
        ))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// `GET /api/health`.
pub async fn health(State(app): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        uptime_s: app.uptime().as_secs_f64(),
        pool: app.pool().stats(),
        limits: app.limits().clone(),
    })
}

/// `GET /api/version`.
pub async fn version(State(app): State<AppState>) -> Json<crate::info::VersionInfo> {
    Json(app.info().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_are_checked() {
        let all = [4.5, 14.5];
        assert_eq!(
            parse_ages("10, 30,50", &all, 10).unwrap(),
            [10.0, 30.0, 50.0]
        );
        assert_eq!(parse_ages(" ALL ", &all, 10).unwrap(), all);
        assert_eq!(parse_ages("7 8", &all, 10).unwrap(), [7.0, 8.0]);
        for (bad, says) in [
            ("ten", "bad target age `ten`"),
            ("-1", "out of range"),
            ("121", "out of range"),
            ("NaN", "out of range"),
            (" , ", "no target age"),
            ("1,2,3", "the limit is 2"),
        ] {
            let err = parse_ages(bad, &all, 2).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn decode_errors_carry_the_decoders_reason() {
        let limits = DecodeLimits::default();
        let err = agesynth_pipeline::input::decode_photo(b"hello", Path::new(UPLOAD_NAME), &limits)
            .unwrap_err();
        let api = pipeline_error(err);
        assert_eq!(api.status(), 422);
        assert_eq!(
            api.to_string(),
            "cannot decode the photo: not a JPEG or PNG image (unrecognised header)"
        );
    }
}
