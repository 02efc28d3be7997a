//! What every mesh importer target checks besides "no panic".

use triposg_mesh::{Mesh, MeshIoError};

/// A mesh that an importer accepted must be usable: every face indexes an existing vertex.
pub fn check_import(result: Result<Mesh, MeshIoError>) {
    if let Ok(mesh) = result {
        let n = mesh.vertices.len();
        assert!(mesh.faces.iter().flatten().all(|&v| (v as usize) < n));
    }
}

/// The boundary of the committed upload forms (fuzz/make_seeds.py).
#[cfg(feature = "server")]
pub const FORM_CONTENT_TYPE: &str = "multipart/form-data; boundary=b0undary";

/// A job form, however broken, gives parameters within the server's bounds or a 4xx with a
/// sentence, never a panic or a 5xx.
#[cfg(feature = "server")]
pub fn check_job_form(data: &[u8]) {
    use std::sync::OnceLock;
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    });
    let read = triposg_server::read_job_form_body(FORM_CONTENT_TYPE, data.to_vec());
    match runtime.block_on(read) {
        Ok(params) => assert_eq!(params.validate(), Ok(())),
        Err((status, message)) => {
            assert!(status.is_client_error(), "{status} {message}");
            assert!(!message.is_empty(), "{status} without a sentence");
        }
    }
}
