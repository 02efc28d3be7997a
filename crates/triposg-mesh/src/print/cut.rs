//! Flat-bottom cut: clip the solid at a horizontal plane, keep the part above, and close the
//! opening with a flat cap (or hand it to the base, which fuses into it).

use ahash::AHashMap;

use super::repair::{boundary_loops, diagonal};
use super::PrintError;
use crate::mesh::{cross, norm, Mesh};

/// The open bottom left by [`cut_open`]: loops of vertices at height `z`.
pub(crate) struct Section {
    pub loops: Vec<Vec<u32>>,
    pub z: f64,
}

/// Removes everything below `z`, splitting the faces that cross it.
pub(crate) fn cut_open(mesh: &mut Mesh, z: f64) -> Result<Section, PrintError> {
    let z = off_vertices(mesh, z);
    let top = mesh.bbox().expect("non-empty").max[2] as f64;
    if z >= top {
        return Err(PrintError::InvalidOption(format!(
            "the cut at {z:.2} mm is above the model's top ({top:.2} mm): choose a lower cut height"
        )));
    }
    let above: Vec<bool> = mesh.vertices.iter().map(|v| v[2] as f64 > z).collect();
    let mut crossing: AHashMap<(u32, u32), u32> = AHashMap::new();
    let mut faces = Vec::with_capacity(mesh.faces.len());
    for f in std::mem::take(&mut mesh.faces) {
        let up = f.map(|v| above[v as usize]);
        match up.iter().filter(|&&u| u).count() {
            3 => faces.push(f),
            0 => {}
            n => {
                // Rotate so the lone vertex (above for n = 1, below for n = 2) comes first.
                let lone = (0..3).find(|&i| up[i] == (n == 1)).expect("mixed face");
                let [a, b, c] = [0, 1, 2].map(|k| f[(lone + k) % 3]);
                let mut point = |u: u32, v: u32| crossing_vertex(mesh, &mut crossing, u, v, z);
                if n == 1 {
                    let (ab, ca) = (point(a, b), point(c, a));
                    faces.push([a, ab, ca]);
                } else {
                    // `a` is below: the kept quad is ab, b, c, ca.
                    let (ab, ca) = (point(a, b), point(c, a));
                    faces.push([ab, b, c]);
                    faces.push([ab, c, ca]);
                }
            }
        }
    }
    mesh.faces = faces;
    mesh.remove_unreferenced_vertices();
    Ok(Section {
        loops: boundary_loops(mesh),
        z,
    })
}

/// A height near `z` that no vertex sits on, so every crossing is a proper one.
fn off_vertices(mesh: &Mesh, z: f64) -> f64 {
    let step = 1e-6 * diagonal(mesh).max(1e-9);
    let mut z = z;
    while mesh.vertices.iter().any(|v| (v[2] as f64 - z).abs() < step) {
        z += 2.0 * step;
    }
    z
}

fn crossing_vertex(
    mesh: &mut Mesh,
    crossing: &mut AHashMap<(u32, u32), u32>,
    u: u32,
    v: u32,
    z: f64,
) -> u32 {
    *crossing.entry((u.min(v), u.max(v))).or_insert_with(|| {
        let (p, q) = (mesh.vertices[u as usize], mesh.vertices[v as usize]);
        let t = (z - p[2] as f64) / (q[2] as f64 - p[2] as f64);
        let lerp = |a: usize| (p[a] as f64 + t * (q[a] as f64 - p[a] as f64)) as f32;
        mesh.vertices.push([lerp(0), lerp(1), z as f32]);
        (mesh.vertices.len() - 1) as u32
    })
}

pub(crate) const UP: [f64; 3] = [0.0, 0.0, 1.0];
pub(crate) const DOWN: [f64; 3] = [0.0, 0.0, -1.0];

/// Closes the cut with a flat cap facing down.
pub(crate) fn cap(mesh: &mut Mesh, section: &Section) -> Result<(), PrintError> {
    fill_plane(mesh, &section.loops, DOWN)
}

/// Triangulates the region bounded by `rings` (vertex loops in one plane, nested any number
/// of levels: even depth bounds filled area, odd depth a hole) and adds the triangles facing
/// `normal` (a unit vector across that plane).
pub(crate) fn fill_plane(
    mesh: &mut Mesh,
    rings: &[Vec<u32>],
    normal: [f64; 3],
) -> Result<(), PrintError> {
    let [e1, e2] = plane_basis(normal);
    let points: Vec<Vec<[f64; 2]>> = rings
        .iter()
        .map(|r| {
            r.iter()
                .map(|&v| {
                    let p = mesh.vertices[v as usize].map(f64::from);
                    [dot(p, e1), dot(p, e2)]
                })
                .collect()
        })
        .collect();
    let contains = |outer: usize, inner: usize| inside(&points[outer], points[inner][0]);
    let depth: Vec<usize> = (0..rings.len())
        .map(|i| {
            (0..rings.len())
                .filter(|&j| j != i && contains(j, i))
                .count()
        })
        .collect();
    let mut earcut = earcut::Earcut::new();
    let mut triangles: Vec<u32> = Vec::new();
    for outer in (0..rings.len()).filter(|&i| depth[i].is_multiple_of(2)) {
        let holes: Vec<usize> = (0..rings.len())
            .filter(|&h| depth[h] == depth[outer] + 1 && contains(outer, h))
            .collect();
        let mut ids: Vec<u32> = rings[outer].clone();
        let mut data: Vec<[f64; 2]> = points[outer].clone();
        let mut starts: Vec<u32> = Vec::new();
        for &h in &holes {
            starts.push(data.len() as u32);
            ids.extend(&rings[h]);
            data.extend(&points[h]);
        }
        earcut.earcut(data.iter().copied(), &starts, &mut triangles);
        let mut ring_of = vec![(0usize, 0usize); data.len()];
        let mut offset = 0;
        for (r, &ring) in std::iter::once(&outer).chain(&holes).enumerate() {
            for k in 0..rings[ring].len() {
                ring_of[offset + k] = (r, offset);
            }
            offset += rings[ring].len();
        }
        let lens: Vec<usize> = std::iter::once(&outer)
            .chain(&holes)
            .map(|&r| rings[r].len())
            .collect();
        let mut used = vec![false; data.len()];
        for &t in &triangles {
            used[t as usize] = true;
        }
        for t in triangles.chunks_exact(3) {
            let corners = [t[0], t[1], t[2]].map(|i| i as usize);
            let polygon = restore_dropped(corners, &used, &ring_of, &lens);
            let (pa, pb, pc) = (data[corners[0]], data[corners[1]], data[corners[2]]);
            // Counter-clockwise in (e1, e2) faces `normal`, since e1 x e2 = normal.
            let ccw = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0]) > 0.0;
            // Fan from the corner opposite the restored chain (the last one).
            let apex = polygon[polygon.len() - 1];
            for w in polygon[..polygon.len() - 1].windows(2) {
                let face = [ids[w[0]], ids[w[1]], ids[apex]];
                mesh.faces.push(if ccw {
                    face
                } else {
                    [face[0], face[2], face[1]]
                });
            }
            for &v in &polygon {
                used[v] = true;
            }
        }
        if let Some(missing) = used.iter().position(|&u| !u) {
            return Err(PrintError::NotSolid(format!(
                "could not triangulate a flat face: point {missing} of {} left out (the cut crosses itself)",
                data.len()
            )));
        }
    }
    Ok(())
}

/// Two unit vectors across `normal` with e1 x e2 = normal.
fn plane_basis(normal: [f64; 3]) -> [[f64; 3]; 2] {
    let least = (0..3)
        .min_by(|&a, &b| normal[a].abs().total_cmp(&normal[b].abs()))
        .expect("three axes");
    let mut helper = [0.0; 3];
    helper[least] = 1.0;
    let e1 = cross(helper, normal);
    let e1 = e1.map(|x| x / norm(e1));
    [e1, cross(normal, e1)]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Earcut drops ring points that are collinear with or equal to their neighbours; the faces
/// beside the flat face still use them, so they go back into the triangle whose edge spans
/// them. Returns the triangle as a polygon whose last corner sees every other one.
fn restore_dropped(
    corners: [usize; 3],
    used: &[bool],
    ring_of: &[(usize, usize)],
    lens: &[usize],
) -> Vec<usize> {
    // The chain of dropped points strictly between `p` and `q` along their ring, if `q` is the
    // next used point after `p`.
    let chain = |p: usize, q: usize| -> Option<Vec<usize>> {
        let ((rp, start), (rq, _)) = (ring_of[p], ring_of[q]);
        if rp != rq {
            return None;
        }
        let len = lens[rp];
        let mut out = Vec::new();
        let mut k = (p - start + 1) % len;
        while start + k != q {
            if used[start + k] || out.len() >= len {
                return None;
            }
            out.push(start + k);
            k = (k + 1) % len;
        }
        (!out.is_empty()).then_some(out)
    };
    for i in 0..3 {
        let (p, q, apex) = (corners[i], corners[(i + 1) % 3], corners[(i + 2) % 3]);
        let between = chain(p, q).or_else(|| chain(q, p).map(|c| c.into_iter().rev().collect()));
        if let Some(between) = between {
            let mut polygon = vec![p];
            polygon.extend(between);
            polygon.extend([q, apex]);
            return polygon;
        }
    }
    corners.to_vec()
}

/// Even-odd point in polygon.
pub(crate) fn inside(polygon: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut result = false;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[(i + 1) % polygon.len()]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                result = !result;
            }
        }
    }
    result
}
