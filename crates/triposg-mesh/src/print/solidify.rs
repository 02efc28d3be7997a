//! The old app's "solidify", done on a signed distance field instead of a filled voxel
//! occupancy: the surface keeps sub-voxel accuracy instead of stair steps, and the result is
//! closed whatever the input's holes, flips or overlapping shells.

use super::sdf::signed_distance;
use super::{PrintError, Stop};
use crate::iso_surface::extract_dense;
use crate::mesh::Mesh;
use crate::DEFAULT_MIN_COMPONENT_FRACTION;

/// Taubin's pass-band smoothing factors: a shrinking step then an inflating one, so repeated
/// passes smooth without shrinking the model (plain Laplacian smoothing, the old app's,
/// shrinks it).
const TAUBIN_LAMBDA: f64 = 0.5;
const TAUBIN_MU: f64 = -0.53;

pub(crate) struct Remeshed {
    pub mesh: Mesh,
    pub pitch: f64,
}

pub(crate) fn solidify(
    mesh: &Mesh,
    pitch: f64,
    smoothing: u32,
    stop: Stop,
) -> Result<Remeshed, PrintError> {
    let field = signed_distance(mesh, pitch, 2.0 * pitch, stop)?;
    let mut out = extract_dense(&field);
    out.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
    if out.faces.is_empty() {
        return Err(PrintError::NotSolid(format!(
            "the surface encloses nothing at a {pitch:.3} mm voxel pitch: use a smaller pitch"
        )));
    }
    for _ in 0..smoothing {
        smooth_step(&mut out, TAUBIN_LAMBDA);
        smooth_step(&mut out, TAUBIN_MU);
    }
    Ok(Remeshed { mesh: out, pitch })
}

/// Moves every vertex by `factor` towards the mean of its neighbours.
fn smooth_step(mesh: &mut Mesh, factor: f64) {
    let mut sum = vec![[0f64; 3]; mesh.vertices.len()];
    let mut count = vec![0u32; mesh.vertices.len()];
    for f in &mesh.faces {
        for i in 0..3 {
            let (v, w) = (f[i] as usize, f[(i + 1) % 3] as usize);
            // Each edge is seen once from each of its two faces, once per direction.
            for (s, &x) in sum[v].iter_mut().zip(&mesh.vertices[w]) {
                *s += x as f64;
            }
            count[v] += 1;
        }
    }
    for (v, (s, &n)) in mesh.vertices.iter_mut().zip(sum.iter().zip(&count)) {
        if n == 0 {
            continue;
        }
        for a in 0..3 {
            let mean = s[a] / n as f64;
            v[a] = (v[a] as f64 + factor * (mean - v[a] as f64)) as f32;
        }
    }
}
