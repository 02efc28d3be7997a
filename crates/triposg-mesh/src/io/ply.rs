//! PLY, binary little-endian. The importer accepts any scalar types for x/y/z and for the face
//! list, skips other properties and elements, and fans polygons.

use super::{check_indices, malformed, Reader, Result};
use crate::mesh::Mesh;

const FORMAT: &str = "PLY";

pub fn to_bytes(mesh: &Mesh) -> Result<Vec<u8>> {
    check_indices(mesh, FORMAT)?;
    let header = format!(
        "ply\nformat binary_little_endian 1.0\ncomment written by triposg-mesh\n\
         element vertex {}\nproperty float x\nproperty float y\nproperty float z\n\
         element face {}\nproperty list uchar uint vertex_indices\nend_header\n",
        mesh.vertices.len(),
        mesh.faces.len()
    );
    let mut out = header.into_bytes();
    for x in mesh.vertices.iter().flatten() {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for f in &mesh.faces {
        out.push(3);
        for i in f {
            out.extend_from_slice(&i.to_le_bytes());
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            other => return Err(malformed(FORMAT, format!("unknown type {other:?}"))),
        })
    }

    fn read(self, r: &mut Reader) -> Result<f64> {
        let size = match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        };
        let b = r.take(size)?;
        Ok(match self {
            Self::I8 => b[0] as i8 as f64,
            Self::U8 => b[0] as f64,
            Self::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Self::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            Self::I32 => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Self::U32 => u32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Self::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Self::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")),
        })
    }
}

enum Property {
    Scalar(String, Scalar),
    List(String, Scalar, Scalar),
}

struct Element {
    name: String,
    count: usize,
    properties: Vec<Property>,
}

fn parse_header(text: &str) -> Result<Vec<Element>> {
    let mut lines = text.lines();
    if lines.next() != Some("ply") {
        return Err(malformed(FORMAT, "missing 'ply' magic"));
    }
    let mut elements: Vec<Element> = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["format", "binary_little_endian", _] => {}
            ["format", other, ..] => {
                return Err(malformed(
                    FORMAT,
                    format!("format {other} is not supported, only binary_little_endian"),
                ))
            }
            ["element", name, count] => elements.push(Element {
                name: name.to_string(),
                count: count
                    .parse()
                    .map_err(|_| malformed(FORMAT, format!("bad element count {count:?}")))?,
                properties: Vec::new(),
            }),
            ["property", "list", count, item, name] => elements
                .last_mut()
                .ok_or_else(|| malformed(FORMAT, "property before any element"))?
                .properties
                .push(Property::List(
                    name.to_string(),
                    Scalar::parse(count)?,
                    Scalar::parse(item)?,
                )),
            ["property", kind, name] => elements
                .last_mut()
                .ok_or_else(|| malformed(FORMAT, "property before any element"))?
                .properties
                .push(Property::Scalar(name.to_string(), Scalar::parse(kind)?)),
            _ => {}
        }
    }
    Ok(elements)
}

pub fn from_bytes(bytes: &[u8]) -> Result<Mesh> {
    const END: &[u8] = b"end_header\n";
    let header_end = bytes
        .windows(END.len())
        .position(|w| w == END)
        .ok_or_else(|| malformed(FORMAT, "no end_header line"))?;
    let header = std::str::from_utf8(&bytes[..header_end])
        .map_err(|_| malformed(FORMAT, "header is not text"))?;
    let elements = parse_header(header)?;
    let mut r = Reader::new(&bytes[header_end + END.len()..], FORMAT);
    let mut mesh = Mesh::default();
    for element in &elements {
        let axis = |name: &str| ["x", "y", "z"].iter().position(|&a| a == name);
        // An item without properties takes no bytes, so its count is not bounded by the file:
        // looping over a claimed billion of them would hang (found by the fuzzer).
        if element.properties.is_empty() {
            if element.name == "vertex" && element.count > 0 {
                return Err(malformed(FORMAT, "vertex element without properties"));
            }
            continue;
        }
        for _ in 0..element.count {
            let mut p = [0f32; 3];
            for property in &element.properties {
                match property {
                    Property::Scalar(name, kind) => {
                        let v = kind.read(&mut r)?;
                        if let Some(a) = axis(name).filter(|_| element.name == "vertex") {
                            p[a] = v as f32;
                        }
                    }
                    Property::List(name, count_kind, item) => {
                        let n = count_kind.read(&mut r)? as usize;
                        let items = (0..n)
                            .map(|_| item.read(&mut r))
                            .collect::<Result<Vec<f64>>>()?;
                        if element.name == "face" && name.starts_with("vertex_ind") {
                            add_polygon(&mut mesh, &items)?;
                        }
                    }
                }
            }
            if element.name == "vertex" {
                mesh.vertices.push(p);
            }
        }
    }
    if mesh
        .faces
        .iter()
        .flatten()
        .any(|&i| i as usize >= mesh.vertices.len())
    {
        return Err(malformed(FORMAT, "face index out of range"));
    }
    Ok(mesh)
}

fn add_polygon(mesh: &mut Mesh, items: &[f64]) -> Result<()> {
    if items.len() < 3 || items.iter().any(|&i| i < 0.0 || i > u32::MAX as f64) {
        return Err(malformed(
            FORMAT,
            "face needs three or more non-negative indices",
        ));
    }
    let c: Vec<u32> = items.iter().map(|&i| i as u32).collect();
    mesh.faces
        .extend((1..c.len() - 1).map(|k| [c[0], c[k], c[k + 1]]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::sample_mesh;

    #[test]
    fn round_trip_is_exact() {
        let mesh = sample_mesh();
        assert_eq!(from_bytes(&to_bytes(&mesh).unwrap()).unwrap(), mesh);
    }

    #[test]
    fn reads_other_types_and_skips_extra_properties() {
        let mut bytes = b"ply\nformat binary_little_endian 1.0\nelement vertex 4\n\
            property double x\nproperty double y\nproperty double z\nproperty uchar red\n\
            element face 1\nproperty list uchar int vertex_indices\nend_header\n"
            .to_vec();
        for p in [
            [0.0f64, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
        ] {
            for x in p {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            bytes.push(200);
        }
        bytes.push(4);
        for i in [0i32, 1, 2, 3] {
            bytes.extend_from_slice(&i.to_le_bytes());
        }
        let mesh = from_bytes(&bytes).unwrap();
        assert_eq!(mesh.vertices[2], [1.0, 1.0, 0.0]);
        assert_eq!(mesh.faces, vec![[0, 1, 2], [0, 2, 3]]);
    }

    #[test]
    fn broken_input_is_an_error() {
        let bytes = to_bytes(&sample_mesh()).unwrap();
        assert!(from_bytes(&bytes[..bytes.len() - 3]).is_err());
        assert!(from_bytes(b"ply\nformat ascii 1.0\nend_header\n").is_err());
        assert!(from_bytes(b"obj\n").is_err());
        assert!(from_bytes(
            b"ply\nformat binary_little_endian 1.0\nelement vertex x\nend_header\n"
        )
        .is_err());
        let mut out_of_range = to_bytes(&sample_mesh()).unwrap();
        let last = out_of_range.len() - 4;
        out_of_range[last..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(from_bytes(&out_of_range).is_err());
        let no_properties =
            b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nend_header\n";
        assert!(from_bytes(no_properties).is_err());
    }
}
