//! The initializers (named weight tensors) of an ONNX file. Only the few protobuf fields that
//! hold them are declared; prost skips everything else (nodes, attributes, metadata).

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::VadError;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;
/// ONNX `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// A float tensor: shape and values in row-major order.
#[derive(Debug)]
pub(crate) struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every float initializer of the graph at `path`, by name.
pub(crate) fn read_initializers(path: &Path) -> Result<HashMap<String, Tensor>, VadError> {
    let bytes = std::fs::read(path).map_err(|source| VadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |detail: String| VadError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| format(e.to_string()))?;
    let graph = model
        .graph
        .ok_or_else(|| format("it has no graph".into()))?;
    let mut out = HashMap::new();
    for t in graph.initializer {
        if t.data_type != FLOAT {
            continue;
        }
        if t.data_location == EXTERNAL {
            return Err(format(format!(
                "tensor {} is stored outside the file",
                t.name
            )));
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let data = if t.raw_data.is_empty() {
            t.float_data
        } else {
            // raw_data is little-endian, as ONNX specifies.
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        if data.len() != n {
            return Err(format(format!(
                "tensor {} has {} values for shape {shape:?}",
                t.name,
                data.len()
            )));
        }
        out.insert(t.name, Tensor { shape, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_raw_and_float_data_initializers() {
        let model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![
                    TensorProto {
                        dims: vec![2],
                        data_type: FLOAT,
                        raw_data: [1.5f32, -2.0]
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect(),
                        name: "a".into(),
                        ..Default::default()
                    },
                    TensorProto {
                        dims: vec![1, 1],
                        data_type: FLOAT,
                        float_data: vec![3.0],
                        name: "b".into(),
                        ..Default::default()
                    },
                ],
            }),
        };
        let dir = std::env::temp_dir().join(format!("vad-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.onnx");
        std::fs::write(&p, model.encode_to_vec()).unwrap();
        let t = read_initializers(&p).unwrap();
        assert_eq!(t["a"].data, vec![1.5, -2.0]);
        assert_eq!(t["b"].shape, vec![1, 1]);
        std::fs::write(&p, b"\xff\xff\xff not protobuf").unwrap();
        assert!(matches!(
            read_initializers(&p),
            Err(VadError::Format { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
