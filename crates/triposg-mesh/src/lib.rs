//! Pure-CPU mesh side of TripoSG: SDF octree refinement, iso-surface extraction, the mesh type
//! with cleanup and simplification, and mesh file formats.

pub mod iso_surface;
mod marching_cubes;
pub mod mesh;
pub mod topology;

pub use iso_surface::{extract_dense, extract_sparse, DenseGrid, GridGeometry, SparseGrid};
pub use mesh::{Aabb, Mesh};
pub use topology::Topology;
pub mod cleanup;
pub mod io;
pub mod octree;
pub mod simplify;
