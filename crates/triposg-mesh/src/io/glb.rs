//! Binary glTF 2.0: one mesh, one triangle primitive with POSITION, NORMAL and u32 indices.
//! The importer reads the triangle primitives of every mesh in the file, ignoring node
//! transforms (our own files have none).

use serde_json::{json, Value};

use super::{check_indices, malformed, Reader, Result};
use crate::mesh::Mesh;

const FORMAT: &str = "GLB";
const MAGIC: u32 = 0x4654_6C67; // "glTF"
const CHUNK_JSON: u32 = 0x4E4F_534A;
const CHUNK_BIN: u32 = 0x004E_4942;
const FLOAT: u64 = 5126;
const UNSIGNED_INT: u64 = 5125;
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

pub fn to_bytes(mesh: &Mesh) -> Result<Vec<u8>> {
    check_indices(mesh, FORMAT)?;
    // The validator rejects non-unit normals; vertices no face uses get an arbitrary unit one.
    let normals: Vec<[f32; 3]> = mesh
        .vertex_normals()
        .into_iter()
        .map(|n| if n == [0.0; 3] { [0.0, 0.0, 1.0] } else { n })
        .collect();
    let mut bin = Vec::new();
    for v in mesh.vertices.iter().chain(&normals).flatten() {
        bin.extend_from_slice(&v.to_le_bytes());
    }
    for i in mesh.faces.iter().flatten() {
        bin.extend_from_slice(&i.to_le_bytes());
    }
    let vertex_bytes = mesh.vertices.len() * 12;
    let index_bytes = mesh.faces.len() * 12;
    let bbox = mesh.bbox();
    let mut document = json!({
        "asset": { "version": "2.0", "generator": "triposg-mesh" },
        "scene": 0,
        "scenes": [{ "nodes": [0] }],
        "nodes": [{ "mesh": 0 }],
        "meshes": [{ "primitives": [{
            "attributes": { "POSITION": 0, "NORMAL": 1 },
            "indices": 2,
            "mode": 4
        }]}],
        "buffers": [{ "byteLength": bin.len() }],
        "bufferViews": [
            { "buffer": 0, "byteOffset": 0, "byteLength": vertex_bytes, "target": ARRAY_BUFFER },
            { "buffer": 0, "byteOffset": vertex_bytes, "byteLength": vertex_bytes, "target": ARRAY_BUFFER },
            { "buffer": 0, "byteOffset": 2 * vertex_bytes, "byteLength": index_bytes, "target": ELEMENT_ARRAY_BUFFER }
        ],
        "accessors": [
            { "bufferView": 0, "componentType": FLOAT, "count": mesh.vertices.len(), "type": "VEC3",
              "min": bbox.map(|b| b.min), "max": bbox.map(|b| b.max) },
            { "bufferView": 1, "componentType": FLOAT, "count": mesh.vertices.len(), "type": "VEC3" },
            { "bufferView": 2, "componentType": UNSIGNED_INT, "count": mesh.faces.len() * 3, "type": "SCALAR" }
        ]
    });
    if mesh.vertices.is_empty() {
        // glTF forbids empty buffers, zero-count accessors and empty node lists: an empty mesh
        // is a file with no scene.
        document = json!({ "asset": { "version": "2.0", "generator": "triposg-mesh" } });
        bin.clear();
    }
    let mut json_chunk = serde_json::to_vec(&document).expect("JSON values serialise");
    json_chunk.resize(json_chunk.len().next_multiple_of(4), b' ');
    bin.resize(bin.len().next_multiple_of(4), 0);
    let bin_total = if bin.is_empty() { 0 } else { 8 + bin.len() };
    let total = 12 + 8 + json_chunk.len() + bin_total;
    let total = u32::try_from(total).map_err(|_| super::MeshIoError::TooLarge {
        format: FORMAT,
        index: total,
        limit: "4 GiB file size",
    })?;
    let mut out = Vec::with_capacity(total as usize);
    for word in [MAGIC, 2, total, json_chunk.len() as u32, CHUNK_JSON] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&json_chunk);
    if !bin.is_empty() {
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
        out.extend_from_slice(&bin);
    }
    Ok(out)
}

pub fn from_bytes(bytes: &[u8]) -> Result<Mesh> {
    let mut r = Reader::new(bytes, FORMAT);
    if r.u32()? != MAGIC {
        return Err(malformed(FORMAT, "missing 'glTF' magic"));
    }
    if r.u32()? != 2 {
        return Err(malformed(FORMAT, "only glTF 2.0 is supported"));
    }
    r.u32()?;
    let json_len = r.u32()? as usize;
    if r.u32()? != CHUNK_JSON {
        return Err(malformed(FORMAT, "first chunk is not JSON"));
    }
    let document: Value = serde_json::from_slice(r.take(json_len)?)
        .map_err(|e| malformed(FORMAT, format!("JSON chunk: {e}")))?;
    let bin = if r.rest().is_empty() {
        &[][..]
    } else {
        let len = r.u32()? as usize;
        if r.u32()? != CHUNK_BIN {
            return Err(malformed(FORMAT, "second chunk is not BIN"));
        }
        r.take(len)?
    };
    let doc = Document {
        json: &document,
        bin,
    };
    let mut mesh = Mesh::default();
    for primitive in doc.list(&document, "meshes")?.iter().flat_map(|m| {
        m.get("primitives")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }) {
        if primitive.get("mode").and_then(Value::as_u64).unwrap_or(4) != 4 {
            continue;
        }
        let position = primitive
            .pointer("/attributes/POSITION")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(FORMAT, "primitive without POSITION"))?;
        let positions = doc.accessor(position as usize, FLOAT, "VEC3")?;
        let base = mesh.vertices.len() as u32;
        let count = positions.len() / 3;
        let indices: Vec<u32> = match primitive.get("indices").and_then(Value::as_u64) {
            Some(i) => doc.indices(i as usize)?,
            None => (0..count as u32).collect(),
        };
        if !indices.len().is_multiple_of(3) || indices.iter().any(|&i| i as usize >= count) {
            return Err(malformed(
                FORMAT,
                "indices out of range or not a triangle list",
            ));
        }
        mesh.vertices.extend(
            positions
                .chunks_exact(3)
                .map(|c| [0, 1, 2].map(|a| f32::from_bits(c[a]))),
        );
        mesh.faces.extend(
            indices
                .chunks_exact(3)
                .map(|c| [base + c[0], base + c[1], base + c[2]]),
        );
    }
    Ok(mesh)
}

struct Document<'a> {
    json: &'a Value,
    bin: &'a [u8],
}

impl Document<'_> {
    fn list<'v>(&self, parent: &'v Value, key: &str) -> Result<&'v [Value]> {
        match parent.get(key) {
            None => Ok(&[]),
            Some(v) => v
                .as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| malformed(FORMAT, format!("'{key}' is not an array"))),
        }
    }

    fn field(&self, value: &Value, key: &str) -> Result<usize> {
        value
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| malformed(FORMAT, format!("missing or invalid '{key}'")))
    }

    /// Raw 32-bit words of an accessor (bit patterns for floats), or widened integers.
    fn accessor(&self, index: usize, component: u64, kind: &str) -> Result<Vec<u32>> {
        let accessor = self
            .list(self.json, "accessors")?
            .get(index)
            .ok_or_else(|| malformed(FORMAT, format!("accessor {index} missing")))?;
        let components = match accessor.get("type").and_then(Value::as_str) {
            Some(t) if t == kind => match t {
                "VEC3" => 3,
                _ => 1,
            },
            other => {
                return Err(malformed(
                    FORMAT,
                    format!("accessor {index} has type {other:?}, expected {kind}"),
                ))
            }
        };
        let component_type = accessor.get("componentType").and_then(Value::as_u64);
        let size = match component_type {
            Some(5121) => 1,
            Some(5123) => 2,
            Some(5125) | Some(5126) => 4,
            _ => 0,
        };
        if size == 0 || (component == FLOAT) != (component_type == Some(FLOAT)) {
            return Err(malformed(
                FORMAT,
                format!("accessor {index} has unsupported componentType {component_type:?}"),
            ));
        }
        let count = self.field(accessor, "count")?;
        let view_index = self.field(accessor, "bufferView")?;
        let view = self
            .list(self.json, "bufferViews")?
            .get(view_index)
            .ok_or_else(|| malformed(FORMAT, format!("bufferView {view_index} missing")))?;
        if self.field(view, "buffer")? != 0 {
            return Err(malformed(FORMAT, "only the embedded buffer 0 is supported"));
        }
        let element = components * size;
        let stride = view
            .get("byteStride")
            .and_then(Value::as_u64)
            .map_or(element, |s| s as usize);
        let start = view.get("byteOffset").and_then(Value::as_u64).unwrap_or(0) as usize
            + accessor
                .get("byteOffset")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
        let needed = if count == 0 {
            0
        } else {
            (count - 1) * stride + element
        };
        let view_len = self.field(view, "byteLength")?;
        let data = start
            .checked_add(needed)
            .filter(|&end| end <= self.bin.len() && needed <= view_len)
            .map(|end| &self.bin[start..end])
            .ok_or_else(|| malformed(FORMAT, format!("accessor {index} runs past its buffer")))?;
        Ok((0..count)
            .flat_map(|i| (0..components).map(move |c| i * stride + c * size))
            .map(|at| {
                let b = &data[at..at + size];
                match size {
                    1 => b[0] as u32,
                    2 => u16::from_le_bytes([b[0], b[1]]) as u32,
                    _ => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                }
            })
            .collect())
    }

    fn indices(&self, index: usize) -> Result<Vec<u32>> {
        self.accessor(index, UNSIGNED_INT, "SCALAR")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::{assert_same_mesh, sample_mesh};

    #[test]
    fn round_trip_and_gltf_crate_agrees() {
        let mesh = sample_mesh();
        let bytes = to_bytes(&mesh).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert_same_mesh(&mesh, &from_bytes(&bytes).unwrap(), 0.0);

        // An independent reader: structure, bounds and data must agree.
        let gltf = gltf::Gltf::from_slice(&bytes).unwrap();
        let blob = gltf.blob.clone().unwrap();
        let primitive = gltf.meshes().next().unwrap().primitives().next().unwrap();
        let bbox = primitive.bounding_box();
        let ours = mesh.bbox().unwrap();
        assert_eq!((bbox.min, bbox.max), (ours.min, ours.max));
        let reader = primitive.reader(|_| Some(&blob));
        let positions: Vec<[f32; 3]> = reader.read_positions().unwrap().collect();
        assert_eq!(positions, mesh.vertices);
        let indices: Vec<u32> = reader.read_indices().unwrap().into_u32().collect();
        assert_eq!(indices, mesh.faces.concat());
        for n in reader.read_normals().unwrap() {
            let len = n.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((len - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn empty_mesh_is_a_valid_file_without_scene() {
        let bytes = to_bytes(&Mesh::default()).unwrap();
        assert!(gltf::Gltf::from_slice(&bytes).is_ok());
        assert!(from_bytes(&bytes).unwrap().is_empty());
    }

    #[test]
    fn broken_input_is_an_error() {
        let bytes = to_bytes(&sample_mesh()).unwrap();
        assert!(from_bytes(&bytes[..bytes.len() - 4]).is_err());
        assert!(from_bytes(&bytes[..30]).is_err());
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'x';
        assert!(from_bytes(&bad_magic).is_err());
        let mut bad_json = bytes.clone();
        bad_json[20] = b'!';
        assert!(from_bytes(&bad_json).is_err());
    }
}
