//! Extraction of a sparse grid whose samples arrive in index order, part by part while the
//! rest is still being computed: the octree's finest level is decoded on the GPU in sorted
//! batches, and without this the CPU would wait for the last batch before meshing any of it.
//! The parts are the ones [`extract_sparse`](super::extract_sparse) makes, so the mesh is
//! the same, vertex for vertex.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};

use rayon::prelude::*;

use super::{extract_part, merge_parts, GridGeometry, Part, SparseGrid, CELLS_PER_PART};
use crate::mesh::Mesh;

type PartResult = std::thread::Result<Part>;

/// One part's cells and the samples its cells reach.
struct Chunk {
    /// Positions in the sample list: the part's cells are the samples in `first..end` that
    /// are lower corners of cells (not on an upper face of the grid).
    first: usize,
    end: usize,
    /// Samples before this position are all its cells' corners can be.
    needs: usize,
}

/// The parts of one extraction, each started on rayon's pool as soon as its samples are in.
pub(crate) struct StreamingExtraction {
    geometry: GridGeometry,
    samples: usize,
    chunks: Vec<Chunk>,
    started: usize,
    sender: Sender<(usize, PartResult)>,
    receiver: Receiver<(usize, PartResult)>,
}

impl StreamingExtraction {
    /// The extraction of the samples at `indices` (sorted, unique) of a grid with `geometry`,
    /// none of whose values is known yet.
    pub fn new(indices: &[u64], geometry: GridGeometry) -> Self {
        // In parallel: this runs between the last level's GPU batches.
        let cells: Vec<usize> = (0..indices.len())
            .into_par_iter()
            .filter(|&at| geometry.is_cell(indices[at]))
            .collect();
        // The farthest corner of a cell, (1, 1, 1) from its lower one.
        let reach = geometry.index([1, 1, 1]);
        let mut first = 0;
        let chunks = cells
            .chunks(CELLS_PER_PART)
            .map(|part| {
                let last = part[part.len() - 1];
                let end = if last == cells[cells.len() - 1] {
                    indices.len()
                } else {
                    last + 1
                };
                let needs = indices.partition_point(|&j| j <= indices[last] + reach);
                let chunk = Chunk { first, end, needs };
                first = end;
                chunk
            })
            .collect();
        let (sender, receiver) = channel();
        Self {
            geometry,
            samples: indices.len(),
            chunks,
            started: 0,
            sender,
            receiver,
        }
    }

    /// Starts every part whose samples are among `values`, the first values of `indices`.
    pub fn advance(&mut self, indices: &[u64], values: &[f32]) {
        while let Some(chunk) = self.chunks.get(self.started) {
            if chunk.needs > values.len() {
                return;
            }
            let samples = SparseGrid {
                indices: indices[chunk.first..chunk.needs].to_vec(),
                values: values[chunk.first..chunk.needs].to_vec(),
            };
            let (cells, geometry) = (chunk.end - chunk.first, self.geometry);
            let (k, sender) = (self.started, self.sender.clone());
            rayon::spawn(move || {
                // A panic is carried to `finish`, to resume on the caller's thread as the
                // extraction's would: in a pool thread it would abort the process.
                let part = panic::catch_unwind(AssertUnwindSafe(|| {
                    let cells: Vec<u64> = samples.indices[..cells]
                        .iter()
                        .copied()
                        .filter(|&i| geometry.is_cell(i))
                        .collect();
                    extract_part(&samples, &geometry, &cells)
                }));
                // The receiver is gone only when the job was abandoned (an error mid-decode).
                let _ = sender.send((k, part));
            });
            self.started += 1;
        }
    }

    /// The mesh, once every value of `indices`, the samples this extraction was made for, is
    /// in `values`.
    ///
    /// # Panics
    /// If `indices` or `values` is not the whole sample list, or with the panic of a part's
    /// extraction.
    pub fn finish(mut self, indices: &[u64], values: &[f32]) -> Mesh {
        assert!(
            indices.len() == self.samples && values.len() == self.samples,
            "every sample must be known"
        );
        self.advance(indices, values);
        let Self {
            geometry,
            chunks,
            started,
            sender,
            receiver,
            ..
        } = self;
        assert_eq!(started, chunks.len(), "every part has started");
        // Only the parts hold senders now: a part that never reports ends the wait.
        drop(sender);
        let mut parts: Vec<Option<Part>> = (0..chunks.len()).map(|_| None).collect();
        for (k, part) in receiver {
            parts[k] = Some(part.unwrap_or_else(|payload| panic::resume_unwind(payload)));
        }
        merge_parts(
            parts
                .into_iter()
                .map(|p| p.expect("every part reports its result"))
                .collect(),
            &geometry,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso_surface::extract_sparse;

    #[test]
    fn parts_start_as_their_samples_arrive_and_make_the_same_mesh() {
        // Every sample of a 96^3 grid (~7 parts), a bumpy sphere for varied cell cases.
        let n = 96;
        let geometry = GridGeometry {
            dims: [n; 3],
            origin: [-1.0; 3],
            spacing: [2.0 / (n - 1) as f32; 3],
        };
        let indices: Vec<u64> = (0..geometry.len()).collect();
        let values: Vec<f32> = indices
            .iter()
            .map(|&i| {
                let p = geometry
                    .point(i)
                    .map(|x| x as f32 * geometry.spacing[0] - 1.0);
                let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
                0.7 + 0.05 * (9.0 * p[0]).sin() * (7.0 * p[1]).cos() - r
            })
            .collect();
        let whole = extract_sparse(
            &SparseGrid::from_sorted(indices.clone(), values.clone()),
            &geometry,
        );
        let mut streaming = StreamingExtraction::new(&indices, geometry);
        assert!(streaming.chunks.len() > 4, "{}", streaming.chunks.len());
        let half = values.len() / 2;
        streaming.advance(&indices, &values[..half]);
        let started = streaming.started;
        assert!(
            started >= 2 && started < streaming.chunks.len(),
            "{started}"
        );
        // Each started part had every corner of its cells among the values given.
        for chunk in &streaming.chunks[..started] {
            assert!(chunk.needs <= half);
        }
        assert!(streaming.chunks[started].needs > half);
        let streamed = streaming.finish(&indices, &values);
        assert!(!whole.faces.is_empty());
        assert!(streamed == whole);
    }
}
