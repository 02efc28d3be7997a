//! What every mesh importer target checks besides "no panic".

use triposg_mesh::{Mesh, MeshIoError};

/// A mesh that an importer accepted must be usable: every face indexes an existing vertex.
pub fn check_import(result: Result<Mesh, MeshIoError>) {
    if let Ok(mesh) = result {
        let n = mesh.vertices.len();
        assert!(mesh.faces.iter().flatten().all(|&v| (v as usize) < n));
    }
}
