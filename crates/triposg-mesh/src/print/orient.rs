//! Orientation on the bed: upright as photographed, or "lay flat": among candidate resting
//! directions (the six axis directions and the normals of the largest flat regions), the one
//! with the least overhang area (> 45 degrees from vertical) and the most bed contact.

use ahash::AHashMap;

use super::options::Orientation;
use super::report::OrientationReport;
use crate::mesh::{norm, Mesh};

/// Faces steeper than this from vertical, facing down, need support.
pub(crate) const OVERHANG_COS: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// Flat regions considered as resting faces.
const FLAT_CANDIDATES: usize = 24;
/// Normals are grouped in bins of about 1 / 20 rad.
const NORMAL_BINS: f64 = 20.0;

pub(crate) fn orient(mesh: &mut Mesh, mode: Orientation) -> OrientationReport {
    let upright = score(mesh, [0.0, 0.0, -1.0]);
    if mode == Orientation::Upright {
        return OrientationReport {
            mode,
            down: [0.0, 0.0, -1.0],
            candidates: 1,
            overhang_fraction: upright.overhang / upright.area,
            contact_fraction: upright.contact / upright.area,
            upright_overhang_fraction: upright.overhang / upright.area,
        };
    }
    let candidates = candidates(mesh);
    let (down, best) = candidates
        .iter()
        .map(|&d| (d, score(mesh, d)))
        .fold(None, |best: Option<([f64; 3], Score)>, (d, s)| match best {
            Some((_, b)) if b.value() <= s.value() + 1e-9 * s.area => best,
            _ => Some((d, s)),
        })
        .expect("the axis directions are always candidates");
    rotate(mesh, &rotation_to_floor(down));
    OrientationReport {
        mode,
        down,
        candidates: candidates.len(),
        overhang_fraction: best.overhang / best.area,
        contact_fraction: best.contact / best.area,
        upright_overhang_fraction: upright.overhang / upright.area,
    }
}

/// Areas in the mesh's units squared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Score {
    pub overhang: f64,
    pub contact: f64,
    pub area: f64,
}

impl Score {
    fn value(&self) -> f64 {
        self.overhang - self.contact
    }
}

/// Overhang and bed-contact areas when `down` (unit) points at the bed.
pub(crate) fn score(mesh: &Mesh, down: [f64; 3]) -> Score {
    let height =
        |p: [f32; 3]| -(down[0] * p[0] as f64 + down[1] * p[1] as f64 + down[2] * p[2] as f64);
    let floor = mesh
        .vertices
        .iter()
        .map(|&p| height(p))
        .fold(f64::INFINITY, f64::min);
    let tolerance = 1e-4 * super::repair::diagonal(mesh);
    let mut s = Score {
        overhang: 0.0,
        contact: 0.0,
        area: 0.0,
    };
    for &f in &mesh.faces {
        let n = mesh.face_cross(f);
        let twice_area = norm(n);
        if twice_area == 0.0 {
            continue;
        }
        let area = twice_area / 2.0;
        s.area += area;
        let facing_down = (n[0] * down[0] + n[1] * down[1] + n[2] * down[2]) / twice_area;
        if facing_down <= OVERHANG_COS {
            continue;
        }
        let on_bed = mesh
            .corners(f)
            .iter()
            .all(|&p| height(p) - floor < tolerance);
        if on_bed {
            s.contact += area;
        } else {
            s.overhang += area;
        }
    }
    s
}

/// Upright first, so it wins ties; then the other axis directions and the largest flat regions.
fn candidates(mesh: &Mesh) -> Vec<[f64; 3]> {
    let mut out = vec![
        [0.0, 0.0, -1.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, -1.0, 0.0],
    ];
    let mut bins: AHashMap<[i64; 3], ([f64; 3], f64)> = AHashMap::new();
    for &f in &mesh.faces {
        let n = mesh.face_cross(f);
        let len = norm(n);
        if len == 0.0 {
            continue;
        }
        let key = n.map(|x| (x / len * NORMAL_BINS).round() as i64);
        let bin = bins.entry(key).or_insert(([0.0; 3], 0.0));
        for (sum, x) in bin.0.iter_mut().zip(n) {
            *sum += x / 2.0;
        }
        bin.1 += len / 2.0;
    }
    let mut regions: Vec<([f64; 3], f64)> = bins.into_values().collect();
    regions.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.extend(
        regions
            .into_iter()
            .take(FLAT_CANDIDATES)
            .filter_map(|(n, _)| {
                let len = norm(n);
                (len > 0.0).then(|| n.map(|x| x / len))
            }),
    );
    out
}

/// The rotation taking unit vector `down` to -Z.
pub(crate) fn rotation_to_floor(down: [f64; 3]) -> [[f64; 3]; 3] {
    let t = [0.0, 0.0, -1.0];
    let c = down[2] * t[2];
    if c < -1.0 + 1e-12 {
        // Straight up: half a turn about X.
        return [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]];
    }
    let v = crate::mesh::cross(down, t);
    let k = [[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]];
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let k2: f64 = (0..3).map(|m| k[i][m] * k[m][j]).sum();
            r[i][j] = f64::from(u8::from(i == j)) + k[i][j] + k2 / (1.0 + c);
        }
    }
    r
}

pub(crate) fn rotate(mesh: &mut Mesh, r: &[[f64; 3]; 3]) {
    for v in &mut mesh.vertices {
        let p = v.map(f64::from);
        *v = [0, 1, 2].map(|i| (r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2]) as f32);
    }
}
