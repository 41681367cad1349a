//! ONNX initializers, read with a minimal protobuf decoder.
//!
//! Only what weight import needs is decoded: `ModelProto.graph` (field 7),
//! `GraphProto.initializer` (field 5) and, in each `TensorProto`, `dims` (1),
//! `data_type` (2), `float_data` (4), `int64_data` (7), `name` (8),
//! `raw_data` (9) and `data_location` (14). Float (1) and int64 (7) tensors
//! stored inside the file are supported; external data is an error.

use std::{collections::HashMap, path::Path};

use agesynth_core::{Error, Result};

use super::RawTensor;

/// A protobuf field: its number and its payload.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(&'a [u8]),
}

/// Iterates over the fields of one protobuf message.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| "truncated varint".to_string())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated field of {n} bytes"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next_field(&mut self) -> Option<std::result::Result<(u64, Value<'a>), String>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some((|| {
            let key = self.varint()?;
            let (field, wire) = (key >> 3, key & 7);
            let value = match wire {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                    Value::Bytes(self.take(n)?)
                }
                5 => Value::Fixed32(self.take(4)?),
                w => return Err(format!("unsupported wire type {w}")),
            };
            Ok((field, value))
        })())
    }
}

/// ONNX `TensorProto.DataType` codes this reader supports.
const FLOAT: u64 = 1;
const INT64: u64 = 7;

/// Reads every initializer of the ONNX model `bytes` (read from `path`) as
/// f32 values (int64 tensors are converted). Errors name the file and, where
/// known, the tensor.
pub fn read_initializers(path: &Path, bytes: &[u8]) -> Result<HashMap<String, RawTensor>> {
    let bad = |reason: String| Error::dataset(path, format!("malformed ONNX model: {reason}"));
    let mut out = HashMap::new();
    let mut graphs = 0;
    let mut fields = Fields::new(bytes);
    while let Some(f) = fields.next_field() {
        if let (7, Value::Bytes(graph)) = f.map_err(bad)? {
            graphs += 1;
            let mut gf = Fields::new(graph);
            while let Some(g) = gf.next_field() {
                if let (5, Value::Bytes(tensor)) = g.map_err(bad)? {
                    let (name, t) = read_tensor(tensor)
                        .map_err(|r| Error::dataset(path, format!("initializer: {r}")))?;
                    out.insert(name, t);
                }
            }
        }
    }
    if graphs != 1 {
        return Err(bad(format!("{graphs} graphs, expected one")));
    }
    Ok(out)
}

fn read_tensor(buf: &[u8]) -> std::result::Result<(String, RawTensor), String> {
    let mut dims = Vec::new();
    let mut dtype = 0;
    let mut name = String::new();
    let mut raw: Option<&[u8]> = None;
    let mut floats = Vec::new();
    let mut ints = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some(f) = fields.next_field() {
        match f? {
            (1, Value::Varint(d)) => dims.push(d as i64),
            (1, Value::Bytes(packed)) => {
                let mut p = Fields::new(packed);
                while p.pos < packed.len() {
                    dims.push(p.varint()? as i64);
                }
            }
            (2, Value::Varint(t)) => dtype = t,
            (4, Value::Bytes(packed)) => floats.extend(
                packed
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            (4, Value::Fixed32(b)) => floats.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            (7, Value::Varint(v)) => ints.push(v as i64),
            (7, Value::Bytes(packed)) => {
                let mut p = Fields::new(packed);
                while p.pos < packed.len() {
                    ints.push(p.varint()? as i64);
                }
            }
            (8, Value::Bytes(n)) => {
                name = String::from_utf8(n.to_vec()).map_err(|e| e.to_string())?;
            }
            (9, Value::Bytes(r)) => raw = Some(r),
            (14, Value::Varint(1)) => {
                return Err(format!(
                    "tensor `{name}` keeps its data in an external file"
                ))
            }
            _ => {}
        }
    }
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{name}`: negative dim {d}")))
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let data: Vec<f32> = match (dtype, raw) {
        (FLOAT, Some(r)) => r
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        (FLOAT, None) => floats,
        (INT64, Some(r)) => r
            .chunks_exact(8)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_le_bytes(a) as f32
            })
            .collect(),
        (INT64, None) => ints.iter().map(|&v| v as f32).collect(),
        (t, _) => return Err(format!("tensor `{name}`: unsupported data type {t}")),
    };
    if data.len() != n {
        return Err(format!(
            "tensor `{name}`: shape {shape:?} needs {n} values, found {}",
            data.len()
        ));
    }
    Ok((name, RawTensor { shape, data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn reads_raw_float_initializer_and_rejects_truncation() {
        let mut tensor = Vec::new();
        varint(1 << 3, &mut tensor);
        varint(2, &mut tensor); // dims: [2]
        varint(2 << 3, &mut tensor);
        varint(FLOAT, &mut tensor);
        bytes_field(8, b"w", &mut tensor);
        let raw: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        bytes_field(9, &raw, &mut tensor);
        let mut graph = Vec::new();
        bytes_field(5, &tensor, &mut graph);
        let mut model = Vec::new();
        varint(1 << 3, &mut model);
        varint(8, &mut model); // ir_version
        bytes_field(7, &graph, &mut model);
        let t = read_initializers(Path::new("m.onnx"), &model).unwrap();
        assert_eq!(t["w"].shape, vec![2]);
        assert_eq!(t["w"].data, vec![1.5, -2.0]);
        let msg = read_initializers(Path::new("m.onnx"), &model[..model.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("m.onnx"), "{msg}");
    }
}
