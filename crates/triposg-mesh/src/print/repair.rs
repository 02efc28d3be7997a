//! Surface repair for arbitrary user meshes: weld open seams, drop junk, cut apart surfaces
//! that touch along an edge or at a vertex, make the winding consistent, fill holes, turn
//! every shell outward (inner shells of hollow inputs inward).
//!
//! Written here because the maintained library for this, manifold3d (crates `manifold3d`,
//! `manifold-rs`), builds its C++ core with cmake from a git checkout at build time, which
//! neither our CI nor offline builds can do. What these steps cannot fix (one-sided surfaces,
//! self-intersections) goes to the voxel remesh in `solidify`.

use std::collections::BTreeMap;

use ahash::{AHashMap, AHashSet};

use super::cut::fill_plane;
use super::intersect::{self_intersections, SelfIntersections};
use super::report::RepairReport;
use super::{PrintError, Stop};
use crate::mesh::{cross, norm, sub, Mesh};
use crate::topology::{EdgeFaces, EdgeUse};
use crate::DEFAULT_MIN_COMPONENT_FRACTION;

/// Positions closer than this fraction of the bounding-box diagonal are one vertex.
const WELD_FRACTION: f64 = 1e-6;
/// Shells enclosing at most this fraction of the bounding-box diagonal cubed are flat.
const FLAT_VOLUME: f64 = 1e-12;
/// Above this many shells the nesting test (quadratic) is skipped and all face outward.
const MAX_NESTING_SHELLS: usize = 64;

/// Triangles kept for printing: at 100 mm, half a million faces are about 0.2 mm across,
/// finer than a nozzle draws; more only costs time and memory in every later step.
pub(crate) const MAX_PRINT_FACES: usize = 500_000;

/// Repairs `mesh` in place; with `check_crossings`, a surface that came out closed is also
/// tested for faces passing through each other (then `remaining_problem` says so), and that
/// test's result comes back beside the report.
pub(crate) fn repair(
    mesh: &mut Mesh,
    check_crossings: bool,
    stop: Stop,
) -> Result<(RepairReport, Option<SelfIntersections>), PrintError> {
    let decimated_from = (mesh.faces.len() > MAX_PRINT_FACES).then(|| {
        let faces = mesh.faces.len();
        mesh.simplify(MAX_PRINT_FACES, 1.0);
        faces
    });
    stop.check()?;
    let diagonal = diagonal(mesh);
    let welded_vertices = weld_open_seams(mesh, diagonal * WELD_FRACTION);
    let cleanup = mesh.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
    stop.check()?;
    let split = split_non_manifold(mesh);
    stop.check()?;
    let mut report = RepairReport {
        decimated_from,
        welded_vertices,
        degenerate_faces: cleanup.degenerate_faces,
        duplicate_faces: cleanup.duplicate_faces,
        floaters_removed: cleanup.small_components,
        floater_faces: cleanup.small_component_faces,
        non_manifold_edges_split: split.edges,
        non_manifold_vertices_split: split.vertices,
        ..RepairReport::default()
    };
    match orient_consistently(mesh) {
        Ok(flipped) => report.flipped_faces = flipped,
        Err(problem) => {
            report.remaining_problem = Some(problem);
            return Ok((report, None));
        }
    }
    stop.check()?;
    let (holes, added) = fill_holes(mesh, diagonal);
    report.holes_filled = holes;
    report.faces_added = added;
    // Filling closes slivers and cut-off fins into shells of their own: floaters again.
    let late = mesh.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
    let (flat, flat_faces) = drop_flat_shells(mesh, diagonal);
    report.floaters_removed += late.small_components + flat;
    report.floater_faces += late.small_component_faces + flat_faces;
    if mesh.faces.is_empty() {
        report.remaining_problem = Some("nothing is left that encloses a volume".into());
        return Ok((report, None));
    }
    stop.check()?;
    report.flipped_faces += orient_outward(mesh, diagonal);
    let t = mesh.topology();
    let mut crossings = None;
    report.remaining_problem = if !t.is_closed_manifold() {
        Some(format!(
            "still not a closed manifold after repair ({} open, {} non-manifold edges, {} non-manifold vertices)",
            t.boundary_edges, t.non_manifold_edges, t.non_manifold_vertices
        ))
    } else if mesh.volume() <= 0.0 {
        Some("the surface encloses no volume".into())
    } else if check_crossings {
        let found = self_intersections(mesh, stop)?;
        crossings = Some(found);
        found
            .any()
            .then(|| format!("{} pairs of faces pass through each other", found.pairs))
    } else {
        None
    };
    Ok((report, crossings))
}

/// Merges vertices of open edges that lie within `tolerance` of each other, which closes the
/// cracks of meshes exported as separate patches. Vertices inside closed surface are left
/// alone: merging two of them can only pinch the surface.
fn weld_open_seams(mesh: &mut Mesh, tolerance: f64) -> usize {
    let mut open = vec![false; mesh.vertices.len()];
    for ((a, b), faces) in EdgeFaces::of(mesh).iter() {
        if faces.len() == 1 {
            open[a as usize] = true;
            open[b as usize] = true;
        }
    }
    if !open.contains(&true) {
        return 0;
    }
    mesh.weld_selected(tolerance as f32, &open)
}

pub(crate) fn diagonal(mesh: &Mesh) -> f64 {
    mesh.bbox().map_or(0.0, |b| norm(sub(b.max, b.min)))
}

/// Flips faces so that neighbours walk shared edges in opposite directions, growing from the
/// first face of each connected patch; returns how many it flipped.
fn orient_consistently(mesh: &mut Mesh) -> Result<usize, String> {
    let edges = EdgeFaces::of(mesh);
    let crowded = edges.iter().filter(|(_, f)| f.len() > 2).count();
    if crowded > 0 {
        return Err(format!("{crowded} edges are shared by more than two faces"));
    }
    let mut neighbours: Vec<Vec<(u32, bool)>> = vec![Vec::new(); mesh.faces.len()];
    for (_, faces) in edges.iter() {
        if let [f, g] = faces {
            // Consistent neighbours walk the edge in opposite directions.
            let same_direction = f.forward == g.forward;
            neighbours[f.face as usize].push((g.face, same_direction));
            neighbours[g.face as usize].push((f.face, same_direction));
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

/// What [`split_non_manifold`] cut apart.
struct Split {
    edges: usize,
    vertices: usize,
}

/// Cuts apart surfaces that only touch: where more than two faces share an edge, faces are
/// glued in pairs that bound one wedge of solid and the others let go of the edge; then every
/// fan of faces around a vertex gets its own copy of the vertex. Copies move a hundredth of
/// the way into their own fan, so that a slicer, which welds STL by position, does not glue
/// them back together.
fn split_non_manifold(mesh: &mut Mesh) -> Split {
    let edges = EdgeFaces::of(mesh);
    let mut corners = UnionFind::new(mesh.faces.len() * 3);
    let corner = |mesh: &Mesh, f: u32, v: u32| {
        let k = mesh.faces[f as usize].iter().position(|&w| w == v);
        f as usize * 3 + k.expect("the face uses the vertex")
    };
    let mut crowded = 0;
    for ((lo, hi), faces) in edges.iter() {
        let pairs = match faces {
            [_] => continue,
            [f, g] => vec![(f.face, g.face)],
            _ => {
                crowded += 1;
                let attached = |f: u32| {
                    let face = mesh.faces[f as usize];
                    (0..3)
                        .filter(|&k| {
                            let (a, b) = (face[k], face[(k + 1) % 3]);
                            edges.faces_of(a, b).len() == 2
                        })
                        .count()
                };
                pair_around_edge(mesh, lo, hi, &drop_dangling(faces, attached))
            }
        };
        for (f, g) in pairs {
            for v in [lo, hi] {
                corners.union(corner(mesh, f, v), corner(mesh, g, v));
            }
        }
    }
    // Vertex of each group of corners, indexed by the group's root corner.
    let mut copy_of_group = vec![u32::MAX; mesh.faces.len() * 3];
    let mut groups = vec![0u32; mesh.vertices.len()];
    let original: Vec<u32> = mesh.faces.concat();
    for (c, &v) in original.iter().enumerate() {
        let group = corners.root(c);
        if copy_of_group[group] == u32::MAX {
            groups[v as usize] += 1;
            copy_of_group[group] = if groups[v as usize] == 1 {
                v
            } else {
                mesh.vertices.push(mesh.vertices[v as usize]);
                (mesh.vertices.len() - 1) as u32
            };
        }
        mesh.faces[c / 3][c % 3] = copy_of_group[group];
    }
    let split: Vec<bool> = original.iter().map(|&v| groups[v as usize] > 1).collect();
    nudge_into_fans(mesh, &split);
    Split {
        edges: crowded,
        vertices: groups.iter().filter(|&&g| g > 1).count(),
    }
}

/// Moves the vertex of every corner marked in `split` a hundredth of the way towards the
/// centre of the other corners of its faces.
fn nudge_into_fans(mesh: &mut Mesh, split: &[bool]) {
    let mut centre: AHashMap<u32, ([f64; 3], u32)> = AHashMap::new();
    for (c, _) in split.iter().enumerate().filter(|(_, &s)| s) {
        let f = mesh.faces[c / 3];
        let entry = centre.entry(f[c % 3]).or_insert(([0.0; 3], 0));
        for k in 1..3 {
            let p = mesh.vertices[f[(c % 3 + k) % 3] as usize];
            for (sum, x) in entry.0.iter_mut().zip(p) {
                *sum += x as f64;
            }
            entry.1 += 1;
        }
    }
    for (v, (sum, n)) in centre {
        let p = &mut mesh.vertices[v as usize];
        for a in 0..3 {
            let target = sum[a] / n as f64;
            p[a] = (p[a] as f64 + 0.01 * (target - p[a] as f64)) as f32;
        }
    }
}

/// The faces of a crowded edge less the excess of whichever direction walks it more often,
/// taking first those attached to the rest of the surface by the fewest edges (a fin hangs
/// by this edge alone).
fn drop_dangling(faces: &[EdgeUse], attached: impl Fn(u32) -> usize) -> Vec<EdgeUse> {
    let forward = faces.iter().filter(|f| f.forward).count();
    let backward = faces.len() - forward;
    let (excess, direction) = if forward > backward {
        (forward - backward, true)
    } else {
        (backward - forward, false)
    };
    let mut candidates: Vec<(usize, u32)> = faces
        .iter()
        .filter(|f| f.forward == direction)
        .map(|f| (attached(f.face), f.face))
        .collect();
    candidates.sort_unstable();
    let dropped: Vec<u32> = candidates[..excess].iter().map(|c| c.1).collect();
    faces
        .iter()
        .copied()
        .filter(|f| !dropped.contains(&f.face))
        .collect()
}

/// Pairs the faces around edge `lo` -> `hi` that bound one wedge of solid. Seen down the edge,
/// a face walking `hi` -> `lo` has the solid counter-clockwise of it, one walking `lo` -> `hi`
/// clockwise; so in counter-clockwise order, a backward face and the forward face after it
/// enclose solid between them.
fn pair_around_edge(mesh: &Mesh, lo: u32, hi: u32, faces: &[EdgeUse]) -> Vec<(u32, u32)> {
    let (a, b) = (mesh.vertices[lo as usize], mesh.vertices[hi as usize]);
    let d = sub(b, a);
    let d = d.map(|x| x / norm(d));
    let least = (0..3)
        .min_by(|&i, &j| d[i].abs().total_cmp(&d[j].abs()))
        .expect("three axes");
    let mut helper = [0.0; 3];
    helper[least] = 1.0;
    let e1 = cross(helper, d);
    let e2 = cross(d, e1);
    let mut around: Vec<(f64, u32, bool)> = faces
        .iter()
        .map(|&EdgeUse { face: f, forward }| {
            let face = mesh.faces[f as usize];
            let c = *face
                .iter()
                .find(|&&v| v != lo && v != hi)
                .expect("a face has three vertices");
            let u = sub(mesh.vertices[c as usize], a);
            let dot = |x: [f64; 3], y: [f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
            (dot(u, e2).atan2(dot(u, e1)), f, forward)
        })
        .collect();
    around.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = around.len();
    (0..n)
        .filter(|&k| !around[k].2 && around[(k + 1) % n].2)
        .map(|k| (around[k].1, around[(k + 1) % n].1))
        .collect()
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[a.max(b)] = a.min(b);
    }
}

/// Closes every boundary loop; returns (holes, faces added). Expects consistent winding.
/// Flat holes that share a plane (where a box or a cut sliced the surface, with islands and
/// holes of their own) are triangulated together so their caps nest instead of overlapping;
/// the others are triangulated as seen along their normal, or failing that get a fan around
/// their centroid.
fn fill_holes(mesh: &mut Mesh, diagonal: f64) -> (usize, usize) {
    let before = mesh.faces.len();
    let loops = boundary_loops(mesh);
    if loops.is_empty() {
        return (0, 0);
    }
    let mut edges = EdgeSet::of(mesh);
    let mut planes: BTreeMap<[i64; 4], Vec<usize>> = BTreeMap::new();
    let mut curved = Vec::new();
    for (i, ring) in loops.iter().enumerate() {
        match plane_key(mesh, ring, diagonal) {
            Some(key) => planes.entry(key).or_default().push(i),
            None => curved.push(i),
        }
    }
    for group in planes.into_values() {
        let rings: Vec<Vec<u32>> = group.iter().map(|&i| loops[i].clone()).collect();
        // The faces walk an outer loop clockwise seen from where the cap must face.
        let area = rings.iter().fold([0.0; 3], |acc, r| {
            let n = newell(mesh, r);
            [0, 1, 2].map(|a| acc[a] - n[a])
        });
        let length = norm(area);
        let kept = mesh.faces.len();
        let capped = length > 0.0
            && fill_plane(mesh, &rings, area.map(|x| x / length)).is_ok()
            && edges.take_new(mesh, kept);
        if !capped {
            mesh.faces.truncate(kept);
            curved.extend(group);
        }
    }
    curved.sort_unstable();
    for i in curved {
        if !cap_seen_from_its_normal(mesh, &loops[i], &mut edges) {
            close_ring(mesh, &loops[i]);
        }
    }
    (loops.len(), mesh.faces.len() - before)
}

/// The undirected edges of a mesh, so that a patch can be refused when one of its inner
/// edges already joins two vertices elsewhere (the edge would then have three faces).
struct EdgeSet(AHashSet<(u32, u32)>);

impl EdgeSet {
    fn of(mesh: &Mesh) -> Self {
        Self(mesh.faces.iter().flat_map(|&f| face_edges(f)).collect())
    }

    /// Whether the faces from `first` on add no edge the mesh has, apart from the boundary
    /// edges they close; if so their edges are recorded.
    fn take_new(&mut self, mesh: &Mesh, first: usize) -> bool {
        let mut uses: AHashMap<(u32, u32), usize> = AHashMap::new();
        for &f in &mesh.faces[first..] {
            for e in face_edges(f) {
                *uses.entry(e).or_default() += 1;
            }
        }
        // The patch uses a closed boundary edge once and an inner edge twice: that one must
        // be new.
        let fresh = uses.iter().all(|(e, &n)| n == 1 || !self.0.contains(e));
        if fresh {
            self.0.extend(uses.into_keys());
        }
        fresh
    }
}

fn face_edges(f: [u32; 3]) -> [(u32, u32); 3] {
    [0, 1, 2].map(|k| {
        let (a, b) = (f[k], f[(k + 1) % 3]);
        (a.min(b), a.max(b))
    })
}

/// Triangulates a loop that is not flat by its outline seen along its mean normal (as where
/// a surface was cut by two or three faces of a box); keeps the patch only if no triangle
/// folds back in that view, since a fold is where patches cross themselves. A centroid fan
/// would fold wherever the outline is not star-shaped.
fn cap_seen_from_its_normal(mesh: &mut Mesh, ring: &[u32], edges: &mut EdgeSet) -> bool {
    let n = newell(mesh, ring);
    let length = norm(n);
    if length == 0.0 {
        return false;
    }
    let normal = n.map(|x| -x / length);
    let kept = mesh.faces.len();
    let unfolded = fill_plane(mesh, &[ring.to_vec()], normal).is_ok()
        && mesh.faces[kept..].iter().all(|&f| {
            let c = mesh.face_cross(f);
            c[0] * normal[0] + c[1] * normal[1] + c[2] * normal[2] > 0.0
        })
        && edges.take_new(mesh, kept);
    if !unfolded {
        mesh.faces.truncate(kept);
    }
    unfolded
}

/// Twice the area vector of a vertex loop (Newell's method).
fn newell(mesh: &Mesh, ring: &[u32]) -> [f64; 3] {
    let mut n = [0.0; 3];
    for k in 0..ring.len() {
        let p = mesh.vertices[ring[k] as usize].map(f64::from);
        let q = mesh.vertices[ring[(k + 1) % ring.len()] as usize].map(f64::from);
        for (a, n) in n.iter_mut().enumerate() {
            let (u, v) = ((a + 1) % 3, (a + 2) % 3);
            *n += (p[u] - q[u]) * (p[v] + q[v]);
        }
    }
    n
}

/// For a loop that lies in one plane (within a millionth of the model), the plane quantised
/// (unit normal up to sign, offset) so that loops of one plane share the key.
fn plane_key(mesh: &Mesh, ring: &[u32], diagonal: f64) -> Option<[i64; 4]> {
    let n = newell(mesh, ring);
    let length = norm(n);
    if length == 0.0 {
        return None;
    }
    let largest = (0..3)
        .max_by(|&i, &j| n[i].abs().total_cmp(&n[j].abs()))
        .expect("three axes");
    let sign = n[largest].signum();
    let unit = n.map(|x| sign * x / length);
    let height = |v: u32| {
        let p = mesh.vertices[v as usize];
        (0..3).map(|a| unit[a] * p[a] as f64).sum::<f64>()
    };
    let offset = height(ring[0]);
    let tolerance = 1e-6 * diagonal;
    if ring.iter().any(|&v| (height(v) - offset).abs() > tolerance) {
        return None;
    }
    let q = |x: f64, step: f64| (x / step).round() as i64;
    Some([
        q(unit[0], 1e-6),
        q(unit[1], 1e-6),
        q(unit[2], 1e-6),
        q(offset, 10.0 * tolerance.max(f64::MIN_POSITIVE)),
    ])
}

/// The closed loops of edges used by one face, each in the direction its faces walk it.
/// Edges that do not close a loop of at least three are left out.
pub(crate) fn boundary_loops(mesh: &Mesh) -> Vec<Vec<u32>> {
    let edges = EdgeFaces::of(mesh);
    let mut outgoing: AHashMap<u32, Vec<u32>> = AHashMap::new();
    for ((lo, hi), faces) in edges.iter() {
        if let [only] = faces {
            let (a, b) = if only.forward { (lo, hi) } else { (hi, lo) };
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
    let volumes = shell_volumes(mesh, &labels);
    let count = volumes.len();
    let mut probe = vec![None; count];
    let mut bounds = vec![([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]); count];
    for (f, &c) in mesh.faces.iter().zip(&labels) {
        probe[c as usize].get_or_insert(f[0]);
        let (lo, hi) = &mut bounds[c as usize];
        for p in mesh.corners(*f) {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
    }
    // Only a shell whose box holds another's can hold the other: overlapping shells (parts
    // of a model exported as separate pieces) are not nested, whatever one probe point says.
    let holds = |outer: usize, inner: usize| {
        (0..3).all(|a| {
            bounds[outer].0[a] <= bounds[inner].0[a] && bounds[inner].1[a] <= bounds[outer].1[a]
        })
    };
    let depth = |c: usize| -> usize {
        if count > MAX_NESTING_SHELLS {
            return 0;
        }
        let p = mesh.vertices[probe[c].expect("every shell has a face") as usize];
        (0..count)
            .filter(|&other| other != c && holds(other, c))
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

/// Signed volume of each shell (component of `labels`).
fn shell_volumes(mesh: &Mesh, labels: &[u32]) -> Vec<f64> {
    let count = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut volumes = vec![0f64; count];
    for (f, &c) in mesh.faces.iter().zip(labels) {
        let [a, b, d] = mesh.corners(*f).map(|p| p.map(f64::from));
        let bd = cross(b, d);
        volumes[c as usize] += (a[0] * bd[0] + a[1] * bd[1] + a[2] * bd[2]) / 6.0;
    }
    volumes
}

/// Drops closed shells that enclose (next to) nothing, such as a lone face closed by its own
/// hole's patch; returns (shells, faces) dropped.
fn drop_flat_shells(mesh: &mut Mesh, diagonal: f64) -> (usize, usize) {
    let labels = mesh.face_components();
    let flat: Vec<bool> = shell_volumes(mesh, &labels)
        .iter()
        .map(|v| v.abs() <= FLAT_VOLUME * diagonal.powi(3))
        .collect();
    let before = mesh.faces.len();
    let mut label = labels.iter();
    mesh.faces
        .retain(|_| !flat[*label.next().expect("one label per face") as usize]);
    mesh.remove_unreferenced_vertices();
    (
        flat.iter().filter(|&&f| f).count(),
        before - mesh.faces.len(),
    )
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
