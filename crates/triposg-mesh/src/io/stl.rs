//! STL: binary export; binary and ASCII import (welded on exact positions, since STL stores
//! each triangle's corners separately).

use super::{check_indices, malformed, Reader, Result};
use crate::mesh::{norm, Mesh};

const FORMAT: &str = "STL";

pub fn to_bytes(mesh: &Mesh) -> Result<Vec<u8>> {
    check_indices(mesh, FORMAT)?;
    let count = u32::try_from(mesh.faces.len()).map_err(|_| super::MeshIoError::TooLarge {
        format: FORMAT,
        index: mesh.faces.len(),
        limit: "u32 triangle count",
    })?;
    let mut out = Vec::with_capacity(84 + 50 * mesh.faces.len());
    let mut header = [b' '; 80];
    let title = b"binary STL written by triposg-mesh";
    header[..title.len()].copy_from_slice(title);
    out.extend_from_slice(&header);
    out.extend_from_slice(&count.to_le_bytes());
    for &f in &mesh.faces {
        let n = mesh.face_cross(f);
        let len = norm(n);
        let unit = if len > 0.0 {
            n.map(|x| (x / len) as f32)
        } else {
            [0.0; 3]
        };
        for x in unit.iter().chain(mesh.corners(f).iter().flatten()) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
    Ok(out)
}

pub fn from_bytes(bytes: &[u8]) -> Result<Mesh> {
    // ASCII files start with "solid", but so do some binary headers: the binary size rule
    // decides first.
    let binary_count = bytes
        .get(80..84)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as u64);
    let mut mesh = match binary_count {
        Some(n) if bytes.len() as u64 == 84 + 50 * n => read_binary(bytes)?,
        _ if bytes.trim_ascii_start().starts_with(b"solid") => read_ascii(bytes)?,
        _ => {
            return Err(malformed(
                FORMAT,
                "neither ASCII (starts with 'solid') nor binary (84 + 50 * count bytes)",
            ))
        }
    };
    mesh.weld(0.0);
    Ok(mesh)
}

fn read_binary(bytes: &[u8]) -> Result<Mesh> {
    let mut r = Reader::new(bytes, FORMAT);
    r.take(80)?;
    let count = r.u32()? as usize;
    let mut soup = Vec::with_capacity(count * 3);
    for _ in 0..count {
        r.take(12)?;
        for _ in 0..3 {
            soup.push([r.f32()?, r.f32()?, r.f32()?]);
        }
        r.take(2)?;
    }
    Ok(from_soup(soup))
}

fn read_ascii(bytes: &[u8]) -> Result<Mesh> {
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(FORMAT, e.to_string()))?;
    let mut soup = Vec::new();
    let mut in_facet = 0;
    for (line_no, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("vertex") => {
                let mut p = [0f32; 3];
                for x in &mut p {
                    *x = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| {
                        malformed(FORMAT, format!("line {}: bad vertex", line_no + 1))
                    })?;
                }
                soup.push(p);
                in_facet += 1;
            }
            Some("endfacet") => {
                if in_facet != 3 {
                    return Err(malformed(
                        FORMAT,
                        format!("line {}: facet with {in_facet} vertices", line_no + 1),
                    ));
                }
                in_facet = 0;
            }
            _ => {}
        }
    }
    if in_facet != 0 {
        return Err(malformed(FORMAT, "file ends inside a facet"));
    }
    Ok(from_soup(soup))
}

fn from_soup(soup: Vec<[f32; 3]>) -> Mesh {
    let faces = (0..soup.len() as u32 / 3)
        .map(|i| [3 * i, 3 * i + 1, 3 * i + 2])
        .collect();
    Mesh::new(soup, faces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::{assert_same_mesh, sample_mesh};
    use crate::io::MeshIoError;

    #[test]
    fn binary_round_trip_and_normals() {
        let mesh = sample_mesh();
        let bytes = to_bytes(&mesh).unwrap();
        assert_eq!(bytes.len(), 84 + 50 * mesh.faces.len());
        // The stored facet normal of a sphere points away from the centre.
        let normal: Vec<f32> = bytes[84..96]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let corner: Vec<f32> = bytes[96..108]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let dot: f32 = normal.iter().zip(&corner).map(|(a, b)| a * b).sum();
        assert!(dot > 0.0);
        let back = from_bytes(&bytes).unwrap();
        assert_eq!(back.vertices.len(), mesh.vertices.len());
        assert_same_mesh(&mesh, &back, 1e-6);
    }

    #[test]
    fn ascii_import() {
        let text = "solid t\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 0\n   vertex 1 0 0\n   vertex 0 1 0\n  endloop\n endfacet\n facet normal 0 0 1\n  outer loop\n   vertex 1 0 0\n   vertex 1 1 0\n   vertex 0 1 0\n  endloop\n endfacet\nendsolid t\n";
        let mesh = from_bytes(text.as_bytes()).unwrap();
        assert_eq!(mesh.faces.len(), 2);
        assert_eq!(mesh.vertices.len(), 4);
        assert!((mesh.area() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn broken_input_is_an_error() {
        let bytes = to_bytes(&sample_mesh()).unwrap();
        for bad in [&bytes[..bytes.len() - 7], &bytes[..50], b"".as_slice()] {
            assert!(matches!(
                from_bytes(bad),
                Err(MeshIoError::Malformed { .. })
            ));
        }
        let ascii = "solid t\n facet\n vertex 0 0 zero\n endfacet\nendsolid\n";
        assert!(from_bytes(ascii.as_bytes()).is_err());
        let short = "solid t\n facet\n vertex 0 0 0\n endfacet\nendsolid\n";
        assert!(from_bytes(short.as_bytes()).is_err());
    }
}
