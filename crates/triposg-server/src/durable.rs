//! Files that a crash or a concurrent download never sees half-written.

use std::path::{Path, PathBuf};

use triposg_mesh::MeshIoError;

/// Replaces `path` with `bytes` at once (temporary file, fsync, rename, then the folder synced
/// so the rename itself survives a power cut).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    triposg_mesh::io::write_atomically(path, bytes).map_err(|e| match e {
        MeshIoError::Io(e) => e,
        other => std::io::Error::other(other),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// [`write`] off the async threads.
pub async fn write_async(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write(&path, &bytes))
        .await
        .map_err(std::io::Error::other)?
}
