//! Pure-CPU mesh side of TripoSG: SDF octree refinement, iso-surface extraction, the mesh type
//! with cleanup and simplification, and mesh file formats.
//!
//! Sign convention throughout: sampled values follow upstream TripoSG's decoder logits,
//! POSITIVE INSIDE the solid and negative outside, surface at 0. Meshes are wound
//! counter-clockwise seen from outside.

pub mod cleanup;
pub mod io;
pub mod iso_surface;
mod marching_cubes;
pub mod mesh;
pub mod octree;
pub mod print;
mod rows;
pub mod simplify;
pub mod topology;

pub use cleanup::{CleanupReport, DEFAULT_MIN_COMPONENT_FRACTION};
pub use io::{load, save, save_each, Format, MeshIoError};
pub use iso_surface::{
    extract_dense, extract_dense_closed, extract_sparse, extract_sparse_closed, DenseGrid,
    GridGeometry, SparseGrid,
};
pub use mesh::{Aabb, Mesh};
pub use octree::{
    extract_geometry, refine, refine_with_surface, OctreeError, OctreeOptions, Refinement,
    SdfSource, SurfaceInProgress, VertexFrame,
};
pub use simplify::SimplifyReport;
pub use topology::Topology;

/// A scoped thread's result, its panic resumed on the joining thread as if the work had run
/// there.
pub(crate) fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
