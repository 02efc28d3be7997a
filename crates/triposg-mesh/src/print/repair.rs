//! Surface repair for arbitrary user meshes: weld, drop junk, make the winding consistent,
//! fill holes, turn every shell outward (inner shells of hollow inputs inward).
//!
//! Written here because the maintained library for this, manifold3d (crates `manifold3d`,
//! `manifold-rs`), builds its C++ core with cmake from a git checkout at build time, which
//! neither our CI nor offline builds can do. What these steps cannot fix (edges shared by
//! more than two faces, one-sided surfaces) goes to the voxel remesh in `solidify`.

use std::collections::HashMap;

use super::report::RepairReport;
use crate::mesh::{norm, sub, Mesh};
use crate::DEFAULT_MIN_COMPONENT_FRACTION;

/// Positions closer than this fraction of the bounding-box diagonal are one vertex.
const WELD_FRACTION: f64 = 1e-6;
/// Above this many shells the nesting test (quadratic) is skipped and all face outward.
const MAX_NESTING_SHELLS: usize = 64;

pub(crate) fn repair(mesh: &mut Mesh) -> RepairReport {
    let diagonal = diagonal(mesh);
    let before = mesh.vertices.len();
    // Welding a surface that is closed already (like every extracted one) can only merge
    // distinct close vertices into non-manifold edges.
    if !mesh.topology().is_watertight() {
        mesh.weld((diagonal * WELD_FRACTION) as f32);
    }
    let cleanup = mesh.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
    let mut report = RepairReport {
        welded_vertices: before - mesh.vertices.len() - cleanup.unreferenced_vertices,
        degenerate_faces: cleanup.degenerate_faces,
        duplicate_faces: cleanup.duplicate_faces,
        floaters_removed: cleanup.small_components,
        floater_faces: cleanup.small_component_faces,
        ..RepairReport::default()
    };
    match orient_consistently(mesh) {
        Ok(flipped) => report.flipped_faces = flipped,
        Err(problem) => {
            report.remaining_problem = Some(problem);
            return report;
        }
    }
    let (holes, added) = fill_holes(mesh);
    report.holes_filled = holes;
    report.faces_added = added;
    report.flipped_faces += orient_outward(mesh, diagonal);
    let t = mesh.topology();
    report.remaining_problem = if !t.is_closed_manifold() {
        Some(format!(
            "still not a closed manifold after repair ({} open, {} non-manifold edges, {} non-manifold vertices)",
            t.boundary_edges, t.non_manifold_edges, t.non_manifold_vertices
        ))
    } else if mesh.volume() <= 0.0 {
        Some("the surface encloses no volume".into())
    } else {
        None
    };
    report
}

pub(crate) fn diagonal(mesh: &Mesh) -> f64 {
    mesh.bbox().map_or(0.0, |b| norm(sub(b.max, b.min)))
}

/// Faces on each undirected edge, with whether they walk it low -> high.
fn edge_faces(mesh: &Mesh) -> HashMap<(u32, u32), Vec<(u32, bool)>> {
    let mut edges: HashMap<(u32, u32), Vec<(u32, bool)>> =
        HashMap::with_capacity(mesh.faces.len() * 3 / 2);
    for (i, f) in mesh.faces.iter().enumerate() {
        for (a, b) in [(f[0], f[1]), (f[1], f[2]), (f[2], f[0])] {
            edges
                .entry((a.min(b), a.max(b)))
                .or_default()
                .push((i as u32, a < b));
        }
    }
    edges
}

/// Flips faces so that neighbours walk shared edges in opposite directions, growing from the
/// first face of each connected patch; returns how many it flipped.
fn orient_consistently(mesh: &mut Mesh) -> Result<usize, String> {
    let edges = edge_faces(mesh);
    let crowded = edges.values().filter(|f| f.len() > 2).count();
    if crowded > 0 {
        return Err(format!("{crowded} edges are shared by more than two faces"));
    }
    let mut neighbours: Vec<Vec<(u32, bool)>> = vec![Vec::new(); mesh.faces.len()];
    for faces in edges.values() {
        if let [(f, fwd_f), (g, fwd_g)] = faces[..] {
            // Consistent neighbours walk the edge in opposite directions.
            let same_direction = fwd_f == fwd_g;
            neighbours[f as usize].push((g, same_direction));
            neighbours[g as usize].push((f, same_direction));
        }
    }
    let mut flip: Vec<Option<bool>> = vec![None; mesh.faces.len()];
    let mut stack = Vec::new();
    for seed in 0..mesh.faces.len() {
        if flip[seed].is_some() {
            continue;
        }
        flip[seed] = Some(false);
        stack.push(seed as u32);
        let mut patch = Vec::new();
        while let Some(f) = stack.pop() {
            patch.push(f);
            let flip_f = flip[f as usize].expect("visited");
            for &(g, same_direction) in &neighbours[f as usize] {
                let wanted = flip_f ^ same_direction;
                match flip[g as usize] {
                    None => {
                        flip[g as usize] = Some(wanted);
                        stack.push(g);
                    }
                    Some(existing) if existing != wanted => {
                        return Err("the surface is one-sided (like a Moebius strip)".into())
                    }
                    Some(_) => {}
                }
            }
        }
        // Keep the majority's winding: the fewest flips, and the one most likely outward.
        let flipped = patch
            .iter()
            .filter(|&&f| flip[f as usize] == Some(true))
            .count();
        if 2 * flipped > patch.len() {
            for &f in &patch {
                flip[f as usize] = flip[f as usize].map(|x| !x);
            }
        }
    }
    let mut flipped = 0;
    for (face, f) in mesh.faces.iter_mut().zip(flip) {
        if f == Some(true) {
            face.swap(1, 2);
            flipped += 1;
        }
    }
    Ok(flipped)
}

/// Closes every boundary loop with a fan around its centroid (one triangle for a 3-loop);
/// returns (holes, faces added). Expects consistent winding.
fn fill_holes(mesh: &mut Mesh) -> (usize, usize) {
    let before = mesh.faces.len();
    let loops = boundary_loops(mesh);
    for ring in &loops {
        close_ring(mesh, ring);
    }
    (loops.len(), mesh.faces.len() - before)
}

/// The closed loops of edges used by one face, each in the direction its faces walk it.
/// Edges that do not close a loop of at least three are left out.
pub(crate) fn boundary_loops(mesh: &Mesh) -> Vec<Vec<u32>> {
    let edges = edge_faces(mesh);
    let mut outgoing: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&(lo, hi), faces) in &edges {
        if let [(_, forward)] = faces[..] {
            let (a, b) = if forward { (lo, hi) } else { (hi, lo) };
            outgoing.entry(a).or_default().push(b);
        }
    }
    let mut starts: Vec<u32> = outgoing.keys().copied().collect();
    starts.sort_unstable();
    let mut loops = Vec::new();
    for start in starts {
        while let Some(first) = outgoing.get_mut(&start).and_then(Vec::pop) {
            let mut ring = vec![start];
            let mut at = first;
            while at != start {
                ring.push(at);
                match outgoing.get_mut(&at).and_then(Vec::pop) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            if at == start && ring.len() >= 3 {
                loops.push(ring);
            }
        }
    }
    loops
}

/// `ring` lists a hole's vertices in the direction its faces walk them; the patch walks
/// them backwards.
fn close_ring(mesh: &mut Mesh, ring: &[u32]) {
    if let [a, b, c] = ring[..] {
        mesh.faces.push([c, b, a]);
        return;
    }
    let mut centre = [0f64; 3];
    for &v in ring {
        for (a, c) in centre.iter_mut().enumerate() {
            *c += mesh.vertices[v as usize][a] as f64 / ring.len() as f64;
        }
    }
    mesh.vertices.push(centre.map(|x| x as f32));
    let c = (mesh.vertices.len() - 1) as u32;
    for k in 0..ring.len() {
        let (a, b) = (ring[k], ring[(k + 1) % ring.len()]);
        mesh.faces.push([b, a, c]);
    }
}

/// Turns each closed shell so its volume is positive, or negative when it lies inside an odd
/// number of other shells (the inner wall of a hollow input); returns faces flipped.
fn orient_outward(mesh: &mut Mesh, diagonal: f64) -> usize {
    let labels = mesh.face_components();
    let count = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut volumes = vec![0f64; count];
    let mut probe = vec![None; count];
    for (f, &c) in mesh.faces.iter().zip(&labels) {
        let [a, b, d] = mesh.corners(*f).map(|p| p.map(f64::from));
        let bd = crate::mesh::cross(b, d);
        volumes[c as usize] += (a[0] * bd[0] + a[1] * bd[1] + a[2] * bd[2]) / 6.0;
        probe[c as usize].get_or_insert(f[0]);
    }
    let depth = |c: usize| -> usize {
        if count > MAX_NESTING_SHELLS {
            return 0;
        }
        let p = mesh.vertices[probe[c].expect("every shell has a face") as usize];
        (0..count)
            .filter(|&other| other != c)
            .filter(|&other| {
                let faces = mesh
                    .faces
                    .iter()
                    .zip(&labels)
                    .filter(|(_, &l)| l as usize == other)
                    .map(|(f, _)| *f);
                crossings_above(mesh, faces, p, diagonal) % 2 == 1
            })
            .count()
    };
    let wrong: Vec<bool> = (0..count)
        .map(|c| (volumes[c] < 0.0) == (depth(c) % 2 == 0))
        .collect();
    let mut flipped = 0;
    for (f, &c) in mesh.faces.iter_mut().zip(&labels) {
        if wrong[c as usize] {
            f.swap(1, 2);
            flipped += 1;
        }
    }
    flipped
}

/// How many of `faces` a vertical ray up from `p` crosses. The ray is moved off `p` by an
/// irrational fraction of the model size so it misses edges and vertices.
pub(crate) fn crossings_above(
    mesh: &Mesh,
    faces: impl Iterator<Item = [u32; 3]>,
    p: [f32; 3],
    diagonal: f64,
) -> usize {
    let (x, y) = (
        p[0] as f64 + diagonal * 1.234_567e-7,
        p[1] as f64 + diagonal * 2.718_281e-7,
    );
    faces
        .filter(|&f| {
            let [a, b, c] = mesh.corners(f).map(|q| q.map(f64::from));
            let edge =
                |u: [f64; 3], v: [f64; 3]| (v[0] - u[0]) * (y - u[1]) - (v[1] - u[1]) * (x - u[0]);
            let (e0, e1, e2) = (edge(a, b), edge(b, c), edge(c, a));
            let inside = (e0 > 0.0 && e1 > 0.0 && e2 > 0.0) || (e0 < 0.0 && e1 < 0.0 && e2 < 0.0);
            if !inside {
                return false;
            }
            let total = e0 + e1 + e2;
            // Barycentric weights of a, b, c are the edge functions opposite them.
            let z = (e1 * a[2] + e2 * b[2] + e0 * c[2]) / total;
            z > p[2] as f64
        })
        .count()
}
