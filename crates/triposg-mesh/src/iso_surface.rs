//! Level-0 iso-surface extraction over dense or sparse grids of samples.
//!
//! Sign convention (upstream TripoSG's): the VAE's `decode` returns `-sdf`, so samples are
//! POSITIVE INSIDE the solid and NEGATIVE OUTSIDE; upstream hands `-logits` to its dual
//! marching cubes. A sample of exactly 0 counts as outside, which keeps 0 a regular value
//! (no vertex of the mesh sits on a grid point shared by several crossings).
//! Triangles are wound counter-clockwise seen from outside (normals towards negative values).

use ahash::AHashMap as HashMap;

use rayon::prelude::*;

use crate::marching_cubes::{cases, corner_offset, edge_origin};
use crate::mesh::Mesh;

mod streaming;
pub(crate) use streaming::StreamingExtraction;

/// Where samples sit: sample `(i, j, k)` is at `origin + (i, j, k) * spacing`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridGeometry {
    /// Samples per axis.
    pub dims: [usize; 3],
    pub origin: [f32; 3],
    pub spacing: [f32; 3],
}

impl GridGeometry {
    /// Linear index of a sample; x-major like upstream's `meshgrid(..., indexing="ij")`.
    pub fn index(&self, p: [usize; 3]) -> u64 {
        ((p[0] as u64 * self.dims[1] as u64) + p[1] as u64) * self.dims[2] as u64 + p[2] as u64
    }

    pub fn point(&self, index: u64) -> [usize; 3] {
        let k = index % self.dims[2] as u64;
        let rest = index / self.dims[2] as u64;
        [
            (rest / self.dims[1] as u64) as usize,
            (rest % self.dims[1] as u64) as usize,
            k as usize,
        ]
    }

    pub fn len(&self) -> u64 {
        self.dims.iter().map(|&d| d as u64).product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn position(&self, p: [f64; 3]) -> [f32; 3] {
        [0, 1, 2].map(|a| (self.origin[a] as f64 + p[a] * self.spacing[a] as f64) as f32)
    }

    /// Whether a sample is the lower corner of a cell, i.e. not on an upper face of the grid.
    fn is_cell(&self, index: u64) -> bool {
        let p = self.point(index);
        (0..3).all(|a| p[a] + 1 < self.dims[a])
    }
}

/// Every sample of a box, x-major. NaN marks a sample that was not evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseGrid {
    pub geometry: GridGeometry,
    pub values: Vec<f32>,
}

/// Only some samples of a box (those near the surface), sorted by linear index so lookups are
/// a binary search and memory is 12 bytes a sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseGrid {
    indices: Vec<u64>,
    values: Vec<f32>,
}

impl SparseGrid {
    /// From samples in any order; a repeated index keeps its last value.
    pub fn from_samples(mut samples: Vec<(u64, f32)>) -> Self {
        samples.sort_by_key(|&(i, _)| i);
        let mut grid = Self {
            indices: Vec::with_capacity(samples.len()),
            values: Vec::with_capacity(samples.len()),
        };
        for (i, v) in samples {
            if grid.indices.last() == Some(&i) {
                *grid.values.last_mut().expect("parallel vectors") = v;
            } else {
                grid.indices.push(i);
                grid.values.push(v);
            }
        }
        grid
    }

    /// From indices already sorted and unique and their values, without copying.
    ///
    /// # Panics
    /// If the lengths differ or the indices are not strictly increasing.
    pub fn from_sorted(indices: Vec<u64>, values: Vec<f32>) -> Self {
        assert_eq!(indices.len(), values.len());
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "indices must be sorted and unique"
        );
        Self { indices, values }
    }

    pub fn get(&self, index: u64) -> Option<f32> {
        self.indices
            .binary_search(&index)
            .ok()
            .map(|i| self.values[i])
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, f32)> + '_ {
        self.indices
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    pub fn indices(&self) -> &[u64] {
        &self.indices
    }

    /// The values, in the order of [`Self::indices`].
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

trait Samples {
    fn value(&self, index: u64) -> Option<f32>;

    /// The values at `cell + offset` for the eight `(offset, corner)` pairs, stored by corner;
    /// `None` when one is missing. Cells come in increasing order; `cursors` is the caller's
    /// (zeros at first) for sources that can resume their search.
    fn corners(
        &self,
        cell: u64,
        offsets: &[(u64, usize); 8],
        _cursors: &mut [usize; 8],
    ) -> Option<[f32; 8]> {
        let mut values = [0f32; 8];
        for &(offset, corner) in offsets {
            values[corner] = self.value(cell + offset)?;
        }
        Some(values)
    }
}

impl Samples for DenseGrid {
    fn value(&self, index: u64) -> Option<f32> {
        let v = self.values[index as usize];
        (!v.is_nan()).then_some(v)
    }
}

impl Samples for SparseGrid {
    fn value(&self, index: u64) -> Option<f32> {
        self.get(index).filter(|v| !v.is_nan())
    }

    /// Each corner's position by galloping forward from where the same corner of the previous
    /// cell was: with cells in increasing order each cursor only moves forward, a few places at
    /// a time, where eight binary searches over millions of samples made the extraction's cost.
    fn corners(
        &self,
        cell: u64,
        offsets: &[(u64, usize); 8],
        cursors: &mut [usize; 8],
    ) -> Option<[f32; 8]> {
        let mut values = [0f32; 8];
        for (&(offset, corner), cursor) in offsets.iter().zip(cursors.iter_mut()) {
            let v = self.values[seek(&self.indices, cursor, cell + offset)?];
            if v.is_nan() {
                return None;
            }
            values[corner] = v;
        }
        Some(values)
    }
}

/// The position of `target` in `sorted`, searched from `cursor` forward (and the cursor moved
/// to where the search ended): for lookups of increasing targets, each a few places after the
/// last, where a binary search over the whole list costs ~20 scattered reads each.
pub(crate) fn seek(sorted: &[u64], cursor: &mut usize, target: u64) -> Option<usize> {
    *cursor += gallop(&sorted[*cursor..], target);
    (sorted.get(*cursor) == Some(&target)).then_some(*cursor)
}

/// The first position in `sorted` whose value is at least `target`, probing 1, 2, 4, ...
/// places ahead before a binary search, so a near target costs a few steps.
fn gallop(sorted: &[u64], target: u64) -> usize {
    let mut bound = 1;
    while bound < sorted.len() && sorted[bound - 1] < target {
        bound *= 2;
    }
    let lo = bound / 2;
    let hi = bound.min(sorted.len());
    lo + sorted[lo..hi].partition_point(|&v| v < target)
}

/// Extracts the level-0 surface of a dense grid.
///
/// The result is a closed, consistently oriented 2-manifold whenever no sample on the grid's
/// boundary is inside (> 0) and no NaN sample neighbours the surface.
///
/// # Panics
/// If `values.len()` does not match the geometry.
pub fn extract_dense(grid: &DenseGrid) -> Mesh {
    assert_eq!(
        grid.values.len() as u64,
        grid.geometry.len(),
        "values do not match dims"
    );
    let g = grid.geometry;
    let cells = (0..g.dims[0].saturating_sub(1)).flat_map(move |i| {
        (0..g.dims[1].saturating_sub(1))
            .flat_map(move |j| (0..g.dims[2].saturating_sub(1)).map(move |k| [i, j, k]))
    });
    extract(grid, &g, cells)
}

/// Extracts the level-0 surface of a sparse grid: only cells whose eight corners are all
/// stored produce triangles, so the same guarantee as [`extract_dense`] holds when every cell
/// that the surface crosses is stored completely (the octree driver's band ensures this).
pub fn extract_sparse(grid: &SparseGrid, geometry: &GridGeometry) -> Mesh {
    let cells = grid
        .indices
        .iter()
        .filter(|&&i| geometry.is_cell(i))
        .map(|&i| geometry.point(i));
    extract(grid, geometry, cells)
}

/// [`extract_dense`] with everything beyond the grid counted as outside, so a solid cut by the
/// grid's bounds comes out capped (flat, half a sample spacing outside the bounds) and closed.
pub fn extract_dense_closed(grid: &DenseGrid) -> Mesh {
    assert_eq!(
        grid.values.len() as u64,
        grid.geometry.len(),
        "values do not match dims"
    );
    let closed = Closed::new(grid, grid.geometry);
    let g = closed.padded;
    let cells = (0..g.dims[0] - 1).flat_map(move |i| {
        (0..g.dims[1] - 1).flat_map(move |j| (0..g.dims[2] - 1).map(move |k| [i, j, k]))
    });
    extract(&closed, &g, cells)
}

/// [`extract_sparse`] with everything beyond the grid counted as outside (see
/// [`extract_dense_closed`]). Inside samples on the grid's faces must be stored, as the octree
/// driver does with [`crate::OctreeOptions::close_at_bounds`].
pub fn extract_sparse_closed(grid: &SparseGrid, geometry: &GridGeometry) -> Mesh {
    let closed = Closed::new(grid, *geometry);
    let padded = closed.padded;
    // A stored sample is the lower corner of its cell in the padded grid; on a lower face it
    // is also the upper corner of a frame cell, reached by stepping back on that axis.
    let cells = grid.indices.iter().flat_map(move |&i| {
        let p = geometry.point(i).map(|x| x + 1);
        (0..8usize).filter_map(move |back| {
            let mut cell = p;
            for (a, c) in cell.iter_mut().enumerate() {
                if back >> a & 1 == 1 {
                    if *c != 1 {
                        return None;
                    }
                    *c = 0;
                }
            }
            (0..3).all(|a| cell[a] + 1 < padded.dims[a]).then_some(cell)
        })
    });
    extract(&closed, &padded, cells)
}

/// A grid seen through a one-sample frame: a frame sample takes minus the magnitude of the
/// grid sample next to it, which is outside and puts any crossing at the midpoint, so caps
/// are flat.
struct Closed<'a, S> {
    inner: &'a S,
    real: GridGeometry,
    padded: GridGeometry,
}

impl<'a, S: Samples> Closed<'a, S> {
    fn new(inner: &'a S, real: GridGeometry) -> Self {
        let padded = GridGeometry {
            dims: real.dims.map(|d| d + 2),
            origin: [0, 1, 2].map(|a| real.origin[a] - real.spacing[a]),
            spacing: real.spacing,
        };
        Self {
            inner,
            real,
            padded,
        }
    }
}

impl<S: Samples> Samples for Closed<'_, S> {
    fn value(&self, index: u64) -> Option<f32> {
        let p = self.padded.point(index);
        let q = [0, 1, 2].map(|a| p[a].clamp(1, self.real.dims[a]) - 1);
        let v = self.inner.value(self.real.index(q))?;
        let in_grid = (0..3).all(|a| p[a] == q[a] + 1);
        Some(if in_grid { v } else { -v.abs() })
    }
}

/// Cells per parallel part of an extraction: each part welds its own vertices, and only
/// vertices on edges that a neighbouring part may also reach go through the final merge.
const CELLS_PER_PART: usize = 1 << 17;

/// Marching cubes over `cells` (lower corners), in parallel parts of consecutive cells. The
/// result is the same mesh, vertex for vertex, as one pass over the cells in index order.
fn extract(
    samples: &(impl Samples + Sync),
    g: &GridGeometry,
    cells: impl Iterator<Item = [usize; 3]>,
) -> Mesh {
    let mut cells: Vec<u64> = cells.map(|c| g.index(c)).collect();
    if !cells.is_sorted() {
        cells.par_sort_unstable();
    }
    let parts: Vec<Part> = cells
        .par_chunks(CELLS_PER_PART)
        .map(|chunk| extract_part(samples, g, chunk))
        .collect();
    merge_parts(parts, g)
}

/// The mesh of some consecutive cells, with the grid edge each vertex lies on (`None` for the
/// centres of polygons, which no other cell shares).
struct Part {
    mesh: Mesh,
    edge_of_vertex: Vec<Option<u64>>,
    first_cell: u64,
    last_cell: u64,
}

fn extract_part(samples: &impl Samples, g: &GridGeometry, cells: &[u64]) -> Part {
    let mut builder = Builder {
        geometry: g,
        mesh: Mesh::default(),
        edge_vertex: HashMap::new(),
        edge_of_vertex: Vec::new(),
    };
    // The grid index is linear in the position, so each corner is the cell's index plus a
    // constant offset.
    let offsets: [(u64, usize); 8] = std::array::from_fn(|c| (g.index(corner_offset(c)), c));
    let mut cursors = [0; 8];
    for &index in cells {
        if let Some(values) = samples.corners(index, &offsets, &mut cursors) {
            builder.add_cell(g.point(index), &values);
        }
    }
    Part {
        mesh: builder.mesh,
        edge_of_vertex: builder.edge_of_vertex,
        first_cell: cells.first().copied().unwrap_or(0),
        last_cell: cells.last().copied().unwrap_or(0),
    }
}

/// Joins the parts in order, welding the vertices of edges shared across parts. The cells
/// around an edge whose lower sample is `l` have indices in `l - reach ..= l`; an edge whose
/// whole range lies inside its part's cell range is used by that part alone.
fn merge_parts(parts: Vec<Part>, g: &GridGeometry) -> Mesh {
    let reach = (g.dims[1] * g.dims[2] + g.dims[2]) as u64;
    let mut shared: HashMap<u64, u32> = HashMap::new();
    let mut mesh = Mesh::default();
    for part in parts {
        let mut remap = Vec::with_capacity(part.mesh.vertices.len());
        for (&p, edge) in part.mesh.vertices.iter().zip(&part.edge_of_vertex) {
            let boundary = edge.filter(|&key| {
                let low = key / 3;
                low.saturating_sub(reach) < part.first_cell || low > part.last_cell
            });
            let next = mesh.vertices.len() as u32;
            let v = match boundary {
                Some(key) => *shared.entry(key).or_insert(next),
                None => next,
            };
            if v == next {
                mesh.vertices.push(p);
            }
            remap.push(v);
        }
        mesh.faces
            .extend(part.mesh.faces.iter().map(|f| f.map(|v| remap[v as usize])));
    }
    mesh
}

/// Vertices stay this fraction of an edge away from its samples. Unclamped, a sample whose
/// value is 0 or tiny next to its neighbours' puts the vertices of all its edges within a few
/// ulps of it: distinct vertices of one triangle that any weld (an STL reader, admesh, a slicer,
/// print repair) merges into degenerate faces and edges shared by more than two faces. One
/// percent of a cell moves the surface by far less than the sampling error.
const EDGE_MARGIN: f64 = 0.01;

struct Builder<'a> {
    geometry: &'a GridGeometry,
    mesh: Mesh,
    /// Grid edge (linear index of its lower sample * 3 + axis) -> mesh vertex: shared by the
    /// four cells around the edge, which is what makes the mesh welded and closed.
    edge_vertex: HashMap<u64, u32>,
    /// The inverse, per vertex (`None` for polygon centres), for merging parts.
    edge_of_vertex: Vec<Option<u64>>,
}

impl Builder<'_> {
    fn add_cell(&mut self, cell: [usize; 3], values: &[f32; 8]) {
        let config = (0..8).fold(0usize, |acc, c| acc | (usize::from(values[c] > 0.0) << c));
        let case = &cases()[config];
        for t in &case.triangles {
            let face = t.map(|e| self.vertex(cell, values, e));
            self.mesh.faces.push(face);
        }
        for polygon in &case.centred_polygons {
            let ring: Vec<u32> = polygon
                .iter()
                .map(|&e| self.vertex(cell, values, e))
                .collect();
            let mut centre = [0f64; 3];
            for &v in &ring {
                for (a, c) in centre.iter_mut().enumerate() {
                    *c += self.mesh.vertices[v as usize][a] as f64 / ring.len() as f64;
                }
            }
            let c = self.push_vertex(centre.map(|x| x as f32), None);
            for k in 0..ring.len() {
                self.mesh
                    .faces
                    .push([c, ring[k], ring[(k + 1) % ring.len()]]);
            }
        }
    }

    fn push_vertex(&mut self, p: [f32; 3], edge: Option<u64>) -> u32 {
        self.mesh.vertices.push(p);
        self.edge_of_vertex.push(edge);
        (self.mesh.vertices.len() - 1) as u32
    }

    fn vertex(&mut self, cell: [usize; 3], values: &[f32; 8], e: u8) -> u32 {
        let e = e as usize;
        let axis = e / 4;
        let a = edge_origin(e);
        let b = a | 1 << axis;
        let o = corner_offset(a);
        let low = [cell[0] + o[0], cell[1] + o[1], cell[2] + o[2]];
        let key = self.geometry.index(low) * 3 + axis as u64;
        if let Some(&v) = self.edge_vertex.get(&key) {
            return v;
        }
        let (va, vb) = (values[a] as f64, values[b] as f64);
        let mut p = low.map(|x| x as f64);
        p[axis] += (va / (va - vb)).clamp(EDGE_MARGIN, 1.0 - EDGE_MARGIN);
        let v = self.push_vertex(self.geometry.position(p), Some(key));
        self.edge_vertex.insert(key, v);
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Samples `f` (positive inside) on an `n`^3 grid spanning [-1, 1]^3.
    pub(crate) fn dense_from(n: usize, f: impl Fn([f32; 3]) -> f32) -> DenseGrid {
        let spacing = 2.0 / (n - 1) as f32;
        let geometry = GridGeometry {
            dims: [n; 3],
            origin: [-1.0; 3],
            spacing: [spacing; 3],
        };
        let values = (0..geometry.len())
            .map(|i| {
                let p = geometry.point(i).map(|x| x as f64);
                f(geometry.position(p))
            })
            .collect();
        DenseGrid { geometry, values }
    }

    pub(crate) fn sphere(r: f32) -> impl Fn([f32; 3]) -> f32 {
        move |p| r - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
    }

    pub(crate) fn torus(major: f32, minor: f32) -> impl Fn([f32; 3]) -> f32 {
        move |p| minor - ((p[0] * p[0] + p[1] * p[1]).sqrt() - major).hypot(p[2])
    }

    #[test]
    fn sphere_is_closed_outward_and_accurate() {
        let r = 0.6;
        let mesh = extract_dense(&dense_from(64, sphere(r)));
        let t = mesh.topology();
        assert!(t.is_closed_manifold(), "{t:?}");
        assert_eq!(t.euler_characteristic, 2);
        let exact_volume = 4.0 / 3.0 * std::f64::consts::PI * (r as f64).powi(3);
        let exact_area = 4.0 * std::f64::consts::PI * (r as f64).powi(2);
        // Chords of a convex surface lie inside it: both measures come out slightly low.
        let dv = (mesh.volume() - exact_volume) / exact_volume;
        let da = (mesh.area() - exact_area) / exact_area;
        assert!((-0.01..0.0).contains(&dv), "volume error {dv}");
        assert!((-0.01..0.01).contains(&da), "area error {da}");
        for v in &mesh.vertices {
            let radius = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((radius - r).abs() < 0.01, "vertex off the sphere: {radius}");
        }
    }

    #[test]
    fn torus_has_genus_one() {
        let mesh = extract_dense(&dense_from(48, torus(0.5, 0.2)));
        let t = mesh.topology();
        assert!(t.is_closed_manifold(), "{t:?}");
        assert_eq!(t.euler_characteristic, 0);
        assert!(mesh.volume() > 0.0);
    }

    /// Random signs hit every ambiguous face and cell configuration; the table must still
    /// give a closed manifold.
    #[test]
    fn noise_gives_closed_manifold() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20 {
            let mut grid = dense_from(10, |_| 0.0);
            let g = grid.geometry;
            for (i, v) in grid.values.iter_mut().enumerate() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let p = g.point(i as u64);
                let on_boundary = p.iter().any(|&x| x == 0 || x == 9);
                *v = if on_boundary {
                    -1.0
                } else {
                    (state % 1000) as f32 / 500.0 - 1.0
                };
            }
            let mesh = extract_dense(&grid);
            let t = mesh.topology();
            assert!(t.is_closed_manifold(), "{t:?}");
            assert!(mesh.volume() > 0.0);
        }
    }

    #[test]
    fn sparse_matches_dense_on_a_band() {
        let dense = dense_from(40, sphere(0.5));
        let g = dense.geometry;
        let band = SparseGrid::from_samples(
            dense
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.abs() < 0.1)
                .map(|(i, &v)| (i as u64, v))
                .collect(),
        );
        assert!(band.len() < dense.values.len() / 4);
        assert_eq!(extract_sparse(&band, &g), extract_dense(&dense));
    }

    #[test]
    fn closed_extraction_caps_solids_cut_by_the_bounds() {
        // A slab through the whole grid and a sphere poking out of one corner.
        let slab = |p: [f32; 3]| 0.3 - p[2].abs();
        let corner = sphere_at([1.0, 1.0, -1.0], 0.8);
        for field in [&slab as &dyn Fn([f32; 3]) -> f32, &corner] {
            let dense = dense_from(17, field);
            let mesh = extract_dense_closed(&dense);
            let t = mesh.topology();
            assert!(t.is_closed_manifold(), "{t:?}");
            assert!(mesh.volume() > 0.0);
            let band = SparseGrid::from_samples(
                dense
                    .values
                    .iter()
                    .enumerate()
                    .filter(|&(i, v)| {
                        let p = dense.geometry.point(i as u64);
                        v.abs() < 0.3 || (*v > 0.0 && p.iter().any(|&x| x == 0 || x == 16))
                    })
                    .map(|(i, &v)| (i as u64, v))
                    .collect(),
            );
            assert!(band.len() < dense.values.len());
            let sparse = extract_sparse_closed(&band, &dense.geometry);
            assert_eq!(sparse.faces.len(), mesh.faces.len());
            assert!((sparse.volume() - mesh.volume()).abs() < 1e-9);
        }
        // The slab's caps sit half a spacing outside x, y = +-1 (chamfered where they meet its
        // faces), so its volume lies between that of the grid's box and that of the caps' box.
        let volume = extract_dense_closed(&dense_from(17, slab)).volume();
        let side = 2.0 + 2.0 / 16.0;
        assert!(
            (2.0 * 2.0 * 0.6 + 0.2..side * side * 0.6).contains(&volume),
            "{volume}"
        );
        // Nothing touching the bounds: the same mesh as the open extraction.
        let inner = dense_from(12, sphere(0.5));
        assert_eq!(
            extract_dense_closed(&inner).faces.len(),
            extract_dense(&inner).faces.len()
        );
    }

    fn sphere_at(c: [f32; 3], r: f32) -> impl Fn([f32; 3]) -> f32 {
        move |p| r - ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)).sqrt()
    }

    #[test]
    fn vertices_keep_apart_where_samples_are_almost_zero() {
        // A box whose faces lie a hair (one f32 ulp) outside grid planes: every sample on
        // them is barely inside, so unclamped crossings would sit on those samples, three or
        // more vertices of one triangle within 1e-7 of each other.
        let half = 0.5f32 + f32::EPSILON;
        let field = |p: [f32; 3]| p.iter().fold(f32::INFINITY, |m, &x| m.min(half - x.abs()));
        let mut mesh = extract_dense(&dense_from(17, field));
        assert!(mesh.topology().is_closed_manifold());
        let spacing = 2.0 / 16.0;
        for &f in &mesh.faces {
            let [a, b, c] = mesh.corners(f);
            for (p, q) in [(a, b), (b, c), (c, a)] {
                let d = crate::mesh::norm(crate::mesh::sub(p, q));
                assert!(d >= 0.009 * spacing, "vertices {d} apart in {f:?}");
            }
        }
        // What a reader of STL, or repair, does: nothing merges, the surface stays closed.
        let vertices = mesh.vertices.len();
        mesh.weld(1e-5);
        assert_eq!(mesh.vertices.len(), vertices);
        assert!(mesh.topology().is_closed_manifold());
    }

    #[test]
    fn surface_through_the_boundary_stays_open_and_nan_cells_are_skipped() {
        let open = extract_dense(&dense_from(16, |p| 0.3 - p[2].abs()));
        assert!(open.topology().boundary_edges > 0);
        let mut grid = dense_from(16, sphere(0.5));
        let total = extract_dense(&grid).faces.len();
        let centre_top = grid.geometry.index([8, 8, 12]);
        grid.values[centre_top as usize] = f32::NAN;
        let holed = extract_dense(&grid);
        assert!(holed.faces.len() < total && !holed.topology().is_watertight());
    }
}
