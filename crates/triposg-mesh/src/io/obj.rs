//! Wavefront OBJ: positions and triangles only. Polygons are read as fans.

use std::fmt::Write;

use super::{format_chunks, malformed, Result};
use crate::mesh::Mesh;

const FORMAT: &str = "OBJ";

pub fn to_bytes(mesh: &Mesh) -> Vec<u8> {
    let vertices = format_chunks(&mesh.vertices, |out, v| {
        // `{}` on f32 prints the shortest text that parses back to the same bits.
        writeln!(out, "v {} {} {}", v[0], v[1], v[2]).expect("String writes cannot fail");
    });
    let faces = format_chunks(&mesh.faces, |out, f| {
        writeln!(out, "f {} {} {}", f[0] + 1, f[1] + 1, f[2] + 1)
            .expect("String writes cannot fail");
    });
    let mut out = String::from("# written by triposg-mesh\n");
    out.extend(vertices.into_iter().chain(faces));
    out.into_bytes()
}

pub fn from_bytes(bytes: &[u8]) -> Result<Mesh> {
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(FORMAT, e.to_string()))?;
    let mut mesh = Mesh::default();
    for (line_no, line) in text.lines().enumerate() {
        let at = |what: &str| malformed(FORMAT, format!("line {}: {what}", line_no + 1));
        let mut words = line.split_whitespace();
        match words.next() {
            Some("v") => {
                let mut p = [0f32; 3];
                for x in &mut p {
                    *x = words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(|| at("vertex needs three numbers"))?;
                }
                mesh.vertices.push(p);
            }
            Some("f") => {
                let corners = words
                    .map(|w| {
                        // "v", "v/vt", "v//vn" or "v/vt/vn"; negative counts from the end.
                        let v: i64 = w
                            .split('/')
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| at("bad face index"))?;
                        let n = mesh.vertices.len() as i64;
                        let index = if v < 0 { n + v } else { v - 1 };
                        if (0..n).contains(&index) {
                            Ok(index as u32)
                        } else {
                            Err(at("face index out of range"))
                        }
                    })
                    .collect::<Result<Vec<u32>>>()?;
                if corners.len() < 3 {
                    return Err(at("face with fewer than three corners"));
                }
                mesh.faces.extend(
                    (1..corners.len() - 1).map(|k| [corners[0], corners[k], corners[k + 1]]),
                );
            }
            _ => {}
        }
    }
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tests::sample_mesh;

    #[test]
    fn round_trip_is_exact() {
        let mesh = sample_mesh();
        assert_eq!(from_bytes(&to_bytes(&mesh)).unwrap(), mesh);
    }

    #[test]
    fn reads_polygons_texture_indices_and_negative_indices() {
        let text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1/1 3//1 -1\n";
        let mesh = from_bytes(text.as_bytes()).unwrap();
        assert_eq!(mesh.faces, vec![[0, 1, 2], [0, 2, 3]]);
    }

    #[test]
    fn broken_input_is_an_error() {
        for bad in [
            "v 0 0\n",
            "v 0 0 0\nf 1 2 3\n",
            "v 0 0 0\nf 1 1\n",
            "f x y z\n",
        ] {
            assert!(from_bytes(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(from_bytes(&[0xff, 0xfe]).is_err());
    }
}
