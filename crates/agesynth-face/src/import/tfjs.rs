//! TF.js weights manifests (`*-weights_manifest.json` + shard `.bin` files).
//!
//! A manifest is a JSON array of groups `{paths, weights}`; the shards named
//! by `paths` are concatenated and the `weights` entries consume the bytes in
//! order. An entry with a `quantization` block stores `uint8` (or `uint16`)
//! codes `q` for the value `q * scale + min`, or `float16` halves; entries
//! without one store little-endian `float32` (or `int32`).

use std::{collections::HashMap, path::Path};

use agesynth_core::{Error, Result};
use serde::Deserialize;

use super::RawTensor;

#[derive(Debug, Deserialize)]
struct Group {
    paths: Vec<String>,
    weights: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

#[derive(Debug, Deserialize)]
struct Quantization {
    dtype: String,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
}

/// Reads every tensor of a TF.js manifest whose single shard's bytes are
/// `bin` (read from `bin_path`), dequantising to f32 exactly as TF.js does
/// (`q * scale + min` in double precision, rounded to f32). Errors name the
/// file and the tensor.
pub fn read_weights(
    manifest_path: &Path,
    manifest: &[u8],
    bin_path: &Path,
    bin: &[u8],
) -> Result<HashMap<String, RawTensor>> {
    let groups: Vec<Group> = serde_json::from_slice(manifest).map_err(|source| Error::Json {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    let bin_name = bin_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = HashMap::new();
    let mut offset = 0usize;
    for group in &groups {
        if group.paths.len() != 1 || group.paths[0] != bin_name {
            return Err(Error::dataset(
                manifest_path,
                format!(
                    "expected one shard named `{bin_name}`, the manifest names {:?}",
                    group.paths
                ),
            ));
        }
        for e in &group.weights {
            let n: usize = e.shape.iter().product();
            let (width, decode): (usize, Decode) = match &e.quantization {
                None => match e.dtype.as_str() {
                    "float32" => (4, |b, _| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    "int32" => (4, |b, _| {
                        i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32
                    }),
                    other => {
                        return Err(Error::dataset(
                            manifest_path,
                            format!("tensor `{}`: unsupported dtype {other}", e.name),
                        ))
                    }
                },
                Some(q) => match q.dtype.as_str() {
                    "uint8" => (1, |b, q| (b[0] as f64 * q.scale + q.min) as f32),
                    "uint16" => (2, |b, q| {
                        (u16::from_le_bytes([b[0], b[1]]) as f64 * q.scale + q.min) as f32
                    }),
                    "float16" => (2, |b, _| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
                    other => {
                        return Err(Error::dataset(
                            manifest_path,
                            format!("tensor `{}`: unsupported quantization {other}", e.name),
                        ))
                    }
                },
            };
            let quant = match &e.quantization {
                Some(q) if q.dtype != "float16" => match (q.scale, q.min) {
                    (Some(scale), Some(min)) => Quant { scale, min },
                    _ => {
                        return Err(Error::dataset(
                            manifest_path,
                            format!("tensor `{}`: quantization lacks scale or min", e.name),
                        ))
                    }
                },
                _ => Quant {
                    scale: 1.0,
                    min: 0.0,
                },
            };
            let end = offset + n * width;
            let bytes = bin.get(offset..end).ok_or_else(|| {
                Error::dataset(
                    bin_path,
                    format!(
                        "truncated: tensor `{}` needs bytes {offset}..{end}, the file has {}",
                        e.name,
                        bin.len()
                    ),
                )
            })?;
            let data = bytes
                .chunks_exact(width)
                .map(|b| decode(b, &quant))
                .collect();
            if out
                .insert(
                    e.name.clone(),
                    RawTensor {
                        shape: e.shape.clone(),
                        data,
                    },
                )
                .is_some()
            {
                return Err(Error::dataset(
                    manifest_path,
                    format!("tensor `{}` appears twice", e.name),
                ));
            }
            offset = end;
        }
    }
    if offset != bin.len() {
        return Err(Error::dataset(
            bin_path,
            format!("{} bytes, but the manifest describes {offset}", bin.len()),
        ));
    }
    Ok(out)
}

/// Decodes one element from its bytes.
type Decode = fn(&[u8], &Quant) -> f32;

/// Affine dequantisation parameters of one tensor.
struct Quant {
    scale: f64,
    min: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantises_uint8_and_reads_float32() {
        let manifest = br#"[{"paths":["w.bin"],"weights":[
            {"name":"a","shape":[2],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.5,"min":-1.0}},
            {"name":"b","shape":[1],"dtype":"float32"}]}]"#;
        let mut bin = vec![0u8, 4];
        bin.extend_from_slice(&2.5f32.to_le_bytes());
        let t = read_weights(Path::new("m.json"), manifest, Path::new("w.bin"), &bin).unwrap();
        assert_eq!(t["a"].data, vec![-1.0, 1.0]);
        assert_eq!(t["b"].data, vec![2.5]);
        // Truncated shard: the error names the file and the tensor.
        let msg = read_weights(Path::new("m.json"), manifest, Path::new("w.bin"), &bin[..4])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("w.bin") && msg.contains("`b`"), "{msg}");
    }
}
