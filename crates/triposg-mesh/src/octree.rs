//! Octree refinement of an SDF decoder, ported from upstream TripoSG's
//! `flash_extract_geometry` (triposg/inference_utils.py).
//!
//! Upstream evaluates a coarse grid of 63 cells (64^3 samples), then doubles the resolution
//! (126, 252, 504 for depth 9), each time querying only the fine samples near the previous
//! level's surface: samples whose sign differs from a face neighbour or whose |logit| < 0.95,
//! dilated by 2 coarse samples and 1 fine sample on intermediate levels, and by 2 fine samples
//! (and no coarse dilation) on the last level. Here the same sets are computed as a union of
//! boxes around the doubled marked samples, on sorted sparse index lists, so no level is ever
//! stored densely (upstream holds dense fp16 volumes on the GPU).
//!
//! Values follow upstream's logits convention: POSITIVE INSIDE, negative outside.

use rayon::prelude::*;

use crate::iso_surface::{
    extract_sparse, extract_sparse_closed, seek, GridGeometry, SparseGrid, StreamingExtraction,
};
use crate::join;
use crate::mesh::Mesh;

/// Upstream's `min_resolution` and `mini_grid_num`, which fix the coarse grid at 63 cells.
const MIN_RESOLUTION: usize = 63;
const MINI_GRID_NUM: usize = 4;
/// Upstream marks samples with |logit| below this as near the surface.
const BAND: f32 = 0.95;
/// Upstream fills unevaluated samples with -10000 and treats anything at or below -9000 as
/// "not evaluated"; an evaluated value that low is therefore ignored here too.
const INVALID_BELOW: f32 = -9000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OctreeOptions {
    /// Box corners; upstream's pipeline uses +-1.005.
    pub bbox_min: [f64; 3],
    pub bbox_max: [f64; 3],
    /// 7..=10; upstream's default 9 gives a final grid of 504 cells.
    pub depth: u32,
    /// Points per call of the query function (upstream uses 10 000).
    pub batch_size: usize,
    /// Where vertices are placed. See [`VertexFrame`].
    pub frame: VertexFrame,
    /// Count everything beyond the box as outside, so a solid that reaches the box is capped
    /// there and the mesh stays closed (upstream leaves such surfaces open).
    pub close_at_bounds: bool,
}

impl Default for OctreeOptions {
    fn default() -> Self {
        Self {
            bbox_min: [-1.005; 3],
            bbox_max: [1.005; 3],
            depth: 9,
            batch_size: 65_536,
            frame: VertexFrame::Upstream,
            close_at_bounds: true,
        }
    }
}

/// Upstream maps the final grid index `i` (0..=504 at depth 9) to `min + i / 2^depth * size`
/// although the sample was taken at `min + i / 504 * size`, shrinking its meshes by 504/512
/// towards `bbox_min`. `Upstream` reproduces that so meshes match the Python app's;
/// `Sampled` puts vertices where the samples were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VertexFrame {
    Upstream,
    Sampled,
}

#[derive(Debug, thiserror::Error)]
pub enum OctreeError<E> {
    #[error("invalid octree options: {0}")]
    InvalidOptions(String),
    #[error("SDF query failed: {0}")]
    Query(#[source] E),
    #[error("SDF query returned {got} values for {expected} points")]
    QueryLength { expected: usize, got: usize },
}

/// Grid sizes of each level, as upstream computes them: `[63, 126, 252, 504]` for depth 9.
pub fn resolutions(depth: u32) -> Vec<usize> {
    let mut resolution = 1usize << depth;
    let mut levels = Vec::new();
    if resolution < MIN_RESOLUTION {
        levels.push(resolution);
    }
    while resolution >= MIN_RESOLUTION {
        levels.push(resolution);
        resolution /= 2;
    }
    levels.reverse();
    let coarse = ((levels[0] as f64 / MINI_GRID_NUM as f64).round() as usize) * MINI_GRID_NUM - 1;
    (0..levels.len()).map(|i| coarse << i).collect()
}

/// One level of the octree: `resolution` cells, `resolution + 1` samples per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub resolution: usize,
    bbox_min: [f64; 3],
    bbox_max: [f64; 3],
    coarse: bool,
}

impl Level {
    pub fn samples_per_axis(&self) -> usize {
        self.resolution + 1
    }

    pub fn geometry(&self) -> GridGeometry {
        let n = self.samples_per_axis();
        GridGeometry {
            dims: [n; 3],
            origin: self.bbox_min.map(|x| x as f32),
            spacing: [0, 1, 2]
                .map(|a| ((self.bbox_max[a] - self.bbox_min[a]) / self.resolution as f64) as f32),
        }
    }

    /// Query position of sample `p`, rounded exactly as upstream computes it: `np.linspace`
    /// in f64 for the coarse grid, `index * f32(spacing) + f32(min)` in f32 afterwards.
    pub fn position(&self, p: [usize; 3]) -> [f32; 3] {
        [0, 1, 2].map(|a| {
            let (min, max) = (self.bbox_min[a], self.bbox_max[a]);
            let step = (max - min) / self.resolution as f64;
            if !self.coarse {
                return p[a] as f32 * step as f32 + min as f32;
            }
            if p[a] == self.resolution {
                max as f32
            } else {
                (p[a] as f64 * step + min) as f32
            }
        })
    }
}

/// Statistics of one refinement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelStats {
    pub resolution: usize,
    pub queries: usize,
}

/// The samples of the finest level, with what it took to get them.
#[derive(Debug, Clone)]
pub struct Refinement {
    pub level: Level,
    pub samples: SparseGrid,
    pub stats: Vec<LevelStats>,
}

impl OctreeOptions {
    fn validate<E>(&self) -> Result<(), OctreeError<E>> {
        let invalid = |m: String| Err(OctreeError::InvalidOptions(m));
        if !(7..=10).contains(&self.depth) {
            return invalid(format!("depth {} is outside 7..=10", self.depth));
        }
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        let ordered = (0..3).all(|a| {
            self.bbox_min[a].is_finite()
                && self.bbox_max[a].is_finite()
                && self.bbox_min[a] < self.bbox_max[a]
        });
        if !ordered {
            return invalid(format!(
                "bbox_min {:?} must be below bbox_max {:?} on every axis",
                self.bbox_min, self.bbox_max
            ));
        }
        Ok(())
    }

    fn level(&self, resolution: usize, coarse: bool) -> Level {
        Level {
            resolution,
            bbox_min: self.bbox_min,
            bbox_max: self.bbox_max,
            coarse,
        }
    }
}

/// Where the samples' values come from, in two steps: `submit` starts a batch and `collect`
/// waits for its values. The octree submits each batch before collecting the one before it, so
/// a GPU works through the next batch while the host takes the values of the last. A function
/// `FnMut(&[[f32; 3]]) -> Result<Vec<f32>, E>` is a source whose values are there at once (a
/// closure written in the call needs its argument's type: `|points: &[[f32; 3]]| ...`).
pub trait SdfSource {
    type Error;
    /// A submitted batch, until it is collected.
    type Pending;
    fn submit(&mut self, points: &[[f32; 3]]) -> Result<Self::Pending, Self::Error>;
    fn collect(&mut self, pending: Self::Pending) -> Result<Vec<f32>, Self::Error>;
}

impl<F, E> SdfSource for F
where
    F: FnMut(&[[f32; 3]]) -> Result<Vec<f32>, E>,
{
    type Error = E;
    type Pending = Vec<f32>;

    fn submit(&mut self, points: &[[f32; 3]]) -> Result<Vec<f32>, E> {
        self(points)
    }

    fn collect(&mut self, values: Vec<f32>) -> Result<Vec<f32>, E> {
        Ok(values)
    }
}

/// Runs the coarse grid and the refinement levels, submitting batches of at most
/// `options.batch_size` points to `source`; returns the finest level's samples.
pub fn refine<S: SdfSource>(
    options: &OctreeOptions,
    source: S,
) -> Result<Refinement, OctreeError<S::Error>> {
    Ok(refine_levels(options, source, false)?.0)
}

/// [`refine`], with the iso-surface of the finest level begun while its samples are decoded:
/// parts of it are meshed on rayon's pool as their samples come in, so the CPU works while
/// `source` waits on the GPU. [`SurfaceInProgress::finish`] gives the mesh [`surface`] would.
pub fn refine_with_surface<S: SdfSource>(
    options: &OctreeOptions,
    source: S,
) -> Result<(Refinement, SurfaceInProgress), OctreeError<S::Error>> {
    let (refinement, extraction) = refine_levels(options, source, true)?;
    let surface = SurfaceInProgress {
        options: *options,
        extraction,
    };
    Ok((refinement, surface))
}

/// The iso-surface of a [`refine_with_surface`], in parts that may still be running.
pub struct SurfaceInProgress {
    options: OctreeOptions,
    /// `None` where the extraction cannot start early: a surface closed at the bounds also
    /// needs cells outside the grid.
    extraction: Option<StreamingExtraction>,
}

impl SurfaceInProgress {
    /// The mesh of `refinement`, the one this surface was begun for.
    pub fn finish(self, refinement: &Refinement) -> Mesh {
        match self.extraction {
            Some(extraction) => {
                extraction.finish(refinement.samples.indices(), refinement.samples.values())
            }
            None => surface(&self.options, refinement),
        }
    }
}

fn refine_levels<S: SdfSource>(
    options: &OctreeOptions,
    mut source: S,
    stream_surface: bool,
) -> Result<(Refinement, Option<StreamingExtraction>), OctreeError<S::Error>> {
    options.validate()?;
    let resolutions = resolutions(options.depth);
    let mut level = options.level(resolutions[0], true);
    let all: Vec<u64> = (0..level.geometry().len()).collect();
    let values = evaluate(&level, &all, options.batch_size, &mut source, |_, _| {})?;
    let mut samples = SparseGrid::from_sorted(all, values);
    let mut stats = vec![LevelStats {
        resolution: level.resolution,
        queries: samples.len(),
    }];
    let mut extraction = None;
    for (i, &resolution) in resolutions.iter().enumerate().skip(1) {
        let last = i + 1 == resolutions.len();
        let marked = near_surface(&samples, &level.geometry(), options.close_at_bounds);
        let fine = options.level(resolution, false);
        // Intermediate levels: 2 coarse dilations then 1 fine one, which is a box of radius
        // 2 * 2 + 1 around each doubled sample; the last level: 2 fine dilations.
        let radius = if last { 2 } else { 5 };
        let fine_geometry = fine.geometry();
        let doubled = marked
            .into_iter()
            .map(|i| fine_geometry.index(level.geometry().point(i).map(|x| 2 * x)))
            .collect();
        let wanted = dilate(doubled, &fine_geometry, radius);
        level = fine;
        let values = if last && stream_surface && !options.close_at_bounds {
            let geometry = surface_geometry(options, &level);
            let (values, streaming) =
                evaluate_streaming(&level, &wanted, options.batch_size, &mut source, geometry)?;
            extraction = Some(streaming);
            values
        } else {
            evaluate(&level, &wanted, options.batch_size, &mut source, |_, _| {})?
        };
        samples = SparseGrid::from_sorted(wanted, values);
        stats.push(LevelStats {
            resolution,
            queries: samples.len(),
        });
    }
    let refinement = Refinement {
        level,
        samples,
        stats,
    };
    Ok((refinement, extraction))
}

/// [`refine`] followed by iso-surface extraction at level 0 in the chosen vertex frame.
pub fn extract_geometry<S: SdfSource>(
    options: &OctreeOptions,
    source: S,
) -> Result<Mesh, OctreeError<S::Error>> {
    let (refinement, surface) = refine_with_surface(options, source)?;
    Ok(surface.finish(&refinement))
}

/// Iso-surface at level 0 of a finished [`refine`], in the chosen vertex frame. Apart from
/// [`extract_geometry`] so that a caller can report the two stages separately.
pub fn surface(options: &OctreeOptions, refinement: &Refinement) -> Mesh {
    let geometry = surface_geometry(options, &refinement.level);
    if options.close_at_bounds {
        extract_sparse_closed(&refinement.samples, &geometry)
    } else {
        extract_sparse(&refinement.samples, &geometry)
    }
}

/// Where the vertices of `level`'s surface go: its samples' grid, or upstream's (see
/// [`VertexFrame`]).
fn surface_geometry(options: &OctreeOptions, level: &Level) -> GridGeometry {
    let mut geometry = level.geometry();
    if options.frame == VertexFrame::Upstream {
        let cells = (1u64 << options.depth) as f64;
        geometry.spacing =
            [0, 1, 2].map(|a| ((options.bbox_max[a] - options.bbox_min[a]) / cells) as f32);
    }
    geometry
}

/// The values at `indices`, submitted to `source` in batches; `decoded` is told of each
/// batch's arrival with all values so far.
fn evaluate<S: SdfSource>(
    level: &Level,
    indices: &[u64],
    batch_size: usize,
    source: &mut S,
    mut decoded: impl FnMut(&[u64], &[f32]),
) -> Result<Vec<f32>, OctreeError<S::Error>> {
    let geometry = level.geometry();
    let mut values = Vec::with_capacity(indices.len());
    let mut points = Vec::with_capacity(batch_size.min(indices.len()));
    // The batch submitted last, not yet collected: its length and handle.
    let mut in_flight: Option<(usize, S::Pending)> = None;
    let mut collect = |(expected, pending): (usize, S::Pending),
                       source: &mut S,
                       values: &mut Vec<f32>|
     -> Result<(), OctreeError<S::Error>> {
        let batch = source.collect(pending).map_err(OctreeError::Query)?;
        if batch.len() != expected {
            return Err(OctreeError::QueryLength {
                expected,
                got: batch.len(),
            });
        }
        values.extend(batch);
        decoded(indices, values);
        Ok(())
    };
    for chunk in indices.chunks(batch_size) {
        // On this thread, while the source works on the batch before: the pool's threads may
        // be meshing the finest level's parts, and work sent there would queue behind them
        // (on an H200 host the decode stage was ~0.03 s faster this way).
        points.clear();
        points.extend(chunk.iter().map(|&i| level.position(geometry.point(i))));
        let pending = source.submit(&points).map_err(OctreeError::Query)?;
        if let Some(previous) = in_flight.replace((points.len(), pending)) {
            collect(previous, source, &mut values)?;
        }
    }
    if let Some(last) = in_flight {
        collect(last, source, &mut values)?;
    }
    Ok(values)
}

/// [`evaluate`] of the finest level with its iso-surface begun as the samples come in. The
/// extraction's setup (finding the cells among millions of samples, tens of milliseconds)
/// runs on another thread while the first batches decode, rather than before them with the
/// GPU idle; parts start from the first batch after it is ready.
fn evaluate_streaming<S: SdfSource>(
    level: &Level,
    indices: &[u64],
    batch_size: usize,
    source: &mut S,
    geometry: GridGeometry,
) -> Result<(Vec<f32>, StreamingExtraction), OctreeError<S::Error>> {
    std::thread::scope(|scope| {
        let mut setup = Some(scope.spawn(|| StreamingExtraction::new(indices, geometry)));
        let mut extraction = None;
        let values = evaluate(level, indices, batch_size, source, |indices, values| {
            if setup.as_ref().is_some_and(|s| s.is_finished()) {
                extraction = setup.take().map(join);
            }
            if let Some(extraction) = &mut extraction {
                extraction.advance(indices, values);
            }
        });
        let setup = setup.map(join);
        Ok((values?, extraction.or(setup).expect("set up once")))
    })
}

fn sign(v: f32) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Upstream's `extract_near_surface_volume_fn(grid, 0) + (|grid| < 0.95)`: valid samples
/// whose sign differs from a valid face neighbour (missing or out-of-grid neighbours count as
/// the sample itself, or outside when `closed`), or whose magnitude is below the band.
/// Returns sorted indices.
fn near_surface(samples: &SparseGrid, geometry: &GridGeometry, closed: bool) -> Vec<u64> {
    let (indices, values) = (samples.indices(), samples.values());
    let strides = [
        (geometry.dims[1] * geometry.dims[2]) as u64,
        geometry.dims[2] as u64,
        1,
    ];
    // Chunks of consecutive samples, each neighbour direction with its own forward-moving
    // search cursor (`seek`).
    let chunk = indices
        .len()
        .div_ceil(rayon::current_num_threads() * 8)
        .max(1);
    (0..indices.len().div_ceil(chunk))
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut cursors = [0usize; 6];
            (c * chunk..((c + 1) * chunk).min(indices.len())).filter_map(move |at| {
                let (index, v) = (indices[at], values[at]);
                if v.abs() < BAND {
                    return Some(index);
                }
                // Also false for NaN, which upstream's `val > -9000` rejects the same way.
                let valid = v > INVALID_BELOW;
                if !valid {
                    return None;
                }
                let p = geometry.point(index);
                let mut cursors = cursors.iter_mut();
                let crosses = (0..3).any(|axis| {
                    [false, true].into_iter().any(|up| {
                        let cursor = cursors.next().expect("six directions");
                        let inside = if up {
                            p[axis] + 1 < geometry.dims[axis]
                        } else {
                            p[axis] > 0
                        };
                        if !inside {
                            return closed && v > 0.0;
                        }
                        let n = if up {
                            index + strides[axis]
                        } else {
                            index - strides[axis]
                        };
                        seek(indices, cursor, n).is_some_and(|i| {
                            let w = values[i];
                            w > INVALID_BELOW && sign(w) != sign(v)
                        })
                    })
                });
                crosses.then_some(index)
            })
        })
        .collect()
}

/// All samples within Chebyshev distance `radius` of `points`, clipped to the grid, sorted.
/// Works on runs along the fastest axis (z): the band around a surface crosses each grid row
/// in a few runs, so growing along y and then x copies and merges runs rather than samples,
/// and the samples come out already in order. (Growing and sorting sample lists once per axis
/// was two thirds of the octree's CPU time at depth 9.)
fn dilate(mut points: Vec<u64>, geometry: &GridGeometry, radius: usize) -> Vec<u64> {
    let [dx, dy, dz] = geometry.dims.map(|d| d as u64);
    let r = radius as u64;
    points.par_sort_unstable();
    points.dedup();
    let mut runs: Vec<Run> = Vec::new();
    for &p in &points {
        let (row, z) = (p / dz, p % dz);
        extend_runs(&mut runs, (row, z.saturating_sub(r), (z + r).min(dz - 1)));
    }
    // Rows are x * dy + y: y steps one row, x steps dy rows.
    let runs = grow_rows(&runs, r, 1, |row| (row % dy, dy));
    let runs = grow_rows(&runs, r, dy, |row| (row / dy, dx));
    expand(&runs, dz)
}

/// The samples of `runs` in order, in a list of their exact length filled in parallel, each
/// thread its own runs' stretch (a parallel `collect` of the flattened runs grew and copied
/// lists: ~40 ms for the 4M samples of the finest level on 2 cores, the GPU idle meanwhile).
fn expand(runs: &[Run], dz: u64) -> Vec<u64> {
    let len = |&(_, first, last): &Run| (last - first + 1) as usize;
    let mut samples = vec![0; runs.iter().map(len).sum()];
    let group = runs.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    let mut stretches = Vec::with_capacity(runs.len().div_ceil(group));
    let mut rest = samples.as_mut_slice();
    for runs in runs.chunks(group) {
        let (stretch, tail) = rest.split_at_mut(runs.iter().map(len).sum());
        stretches.push((runs, stretch));
        rest = tail;
    }
    stretches.into_par_iter().for_each(|(runs, stretch)| {
        let mut at = stretch.iter_mut();
        for &(row, first, last) in runs {
            // The range first: zip stops on it without taking a slot more.
            for (z, slot) in (first..=last).zip(at.by_ref()) {
                *slot = row * dz + z;
            }
        }
    });
    samples
}

/// Samples `first..=last` of one grid row (along z).
type Run = (u64, u64, u64);

/// Appends `run` to `runs` (sorted by row, then start), merging it into the last run when they
/// overlap or touch in the same row.
fn extend_runs(runs: &mut Vec<Run>, run: Run) {
    match runs.last_mut() {
        Some(last) if last.0 == run.0 && run.1 <= last.2 + 1 => last.2 = last.2.max(run.2),
        _ => runs.push(run),
    }
}

/// Copies every run to the rows up to `r` steps away along one axis (rows `step` apart;
/// `coord` gives a row's coordinate on the axis and the axis' size), then merges each row's.
fn grow_rows(
    runs: &[Run],
    r: u64,
    step: u64,
    coord: impl Fn(u64) -> (u64, u64) + Sync,
) -> Vec<Run> {
    let mut grown: Vec<Run> = runs
        .par_iter()
        .flat_map_iter(|&(row, first, last)| {
            let (c, size) = coord(row);
            let base = row - c * step;
            (c.saturating_sub(r)..=(c + r).min(size - 1))
                .map(move |c| (base + c * step, first, last))
        })
        .collect();
    grown.par_sort_unstable();
    let mut merged = Vec::with_capacity(grown.len());
    for run in grown {
        extend_runs(&mut merged, run);
    }
    merged
}

#[cfg(test)]
mod tests;
