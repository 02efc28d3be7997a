//! Mesh file formats. Every writer goes to a temporary file in the destination's folder and
//! renames it into place, so a reader never sees a half-written file; every reader reports
//! malformed input as an error instead of panicking.

pub mod glb;
pub mod obj;
pub mod ply;
pub mod stl;
pub mod threemf;

use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::mesh::Mesh;

#[derive(Debug, thiserror::Error)]
pub enum MeshIoError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid {format} file: {message}")]
    Malformed {
        format: &'static str,
        message: String,
    },
    #[error("unknown mesh format for {0:?}: use .glb, .stl, .obj, .ply or .3mf")]
    UnknownFormat(String),
    #[error("mesh index {index} does not fit the {format} format's {limit}")]
    TooLarge {
        format: &'static str,
        index: usize,
        limit: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, MeshIoError>;

pub(crate) fn malformed(format: &'static str, message: impl Into<String>) -> MeshIoError {
    MeshIoError::Malformed {
        format,
        message: message.into(),
    }
}

/// File formats, chosen by extension in [`save`] and [`load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Glb,
    Stl,
    Obj,
    Ply,
    ThreeMf,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("glb") => Ok(Self::Glb),
            Some("stl") => Ok(Self::Stl),
            Some("obj") => Ok(Self::Obj),
            Some("ply") => Ok(Self::Ply),
            Some("3mf") => Ok(Self::ThreeMf),
            _ => Err(MeshIoError::UnknownFormat(path.display().to_string())),
        }
    }
}

/// Writes `mesh` in the format named by `path`'s extension.
pub fn save(mesh: &Mesh, path: &Path) -> Result<()> {
    let bytes = match Format::from_path(path)? {
        Format::Glb => glb::to_bytes(mesh)?,
        Format::Stl => stl::to_bytes(mesh)?,
        Format::Obj => obj::to_bytes(mesh),
        Format::Ply => ply::to_bytes(mesh)?,
        Format::ThreeMf => threemf::to_bytes(mesh)?,
    };
    write_atomically(path, &bytes)
}

/// [`save`] to several paths side by side on the thread pool, each file written as `save`
/// writes it: a job saves up to five formats, and the 3MF's deflate alone takes about as long
/// as the others together. Each path's result, in the order given.
pub fn save_each<P: AsRef<Path> + Sync>(mesh: &Mesh, paths: &[P]) -> Vec<Result<()>> {
    paths.par_iter().map(|p| save(mesh, p.as_ref())).collect()
}

/// Reads a mesh in the format named by `path`'s extension. Triangle soups (STL) come back
/// welded on exact positions.
pub fn load(path: &Path) -> Result<Mesh> {
    let format = Format::from_path(path)?;
    let bytes = std::fs::read(path)?;
    match format {
        Format::Glb => glb::from_bytes(&bytes),
        Format::Stl => stl::from_bytes(&bytes),
        Format::Obj => obj::from_bytes(&bytes),
        Format::Ply => ply::from_bytes(&bytes),
        Format::ThreeMf => threemf::from_bytes(&bytes),
    }
}

/// Text for every item, `write` formatting one: in chunks formatted side by side on the thread
/// pool, returned in order. A 3MF or OBJ of an 850k-face mesh is ~70 MB of text, and formatting
/// its numbers was all of the OBJ's writing time and about half of the 3MF's (deflate is the
/// rest).
pub(crate) fn format_chunks<T: Sync>(
    items: &[T],
    write: impl Fn(&mut String, &T) + Sync,
) -> Vec<String> {
    const CHUNK: usize = 1 << 15;
    items
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut text = String::with_capacity(chunk.len() * 48);
            for item in chunk {
                write(&mut text, item);
            }
            text
        })
        .collect()
}

/// Replaces `path` with `bytes` all at once (temporary file in the same folder, fsync, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomically(&[(path, bytes)])
}

/// [`write_atomically`] for several files: every file is written and synced to its temporary
/// first, and only then are they renamed into place, so a failed write (a full disk) replaces
/// none of them. Temporaries never outlive a failure.
pub fn write_all_atomically(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for &(path, bytes) in files {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut writer = BufWriter::new(tempfile::NamedTempFile::new_in(dir)?);
        writer.write_all(bytes)?;
        let temp = writer.into_inner().map_err(|e| e.into_error())?;
        temp.as_file().sync_all()?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(path).map_err(|e| e.error)?;
    }
    Ok(())
}

/// Faces as u32 indices checked against the vertex count, for formats that read indices back.
pub(crate) fn check_indices(mesh: &Mesh, format: &'static str) -> Result<()> {
    match mesh
        .faces
        .iter()
        .flatten()
        .find(|&&v| v as usize >= mesh.vertices.len())
    {
        Some(&v) => Err(malformed(
            format,
            format!("face index {v} but only {} vertices", mesh.vertices.len()),
        )),
        None => Ok(()),
    }
}

/// Little-endian cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    format: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], format: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            format,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                malformed(
                    self.format,
                    format!("truncated: needed {n} bytes at offset {}", self.pos),
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::iso_surface::{extract_dense, tests::dense_from, tests::sphere};

    pub(crate) fn sample_mesh() -> Mesh {
        extract_dense(&dense_from(12, sphere(0.7)))
    }

    /// Same faces up to a rotation of each face's corners and the same positions.
    pub(crate) fn assert_same_mesh(a: &Mesh, b: &Mesh, tolerance: f32) {
        assert_eq!(a.faces.len(), b.faces.len());
        let canon = |m: &Mesh| -> Vec<[[i64; 3]; 3]> {
            let q = |p: [f32; 3]| p.map(|x| (x / tolerance.max(1e-7)).round() as i64);
            let mut faces: Vec<_> = m
                .faces
                .iter()
                .map(|f| {
                    let c = f.map(|v| q(m.vertices[v as usize]));
                    let r = (0..3).min_by_key(|&i| c[i]).expect("three corners");
                    [c[r], c[(r + 1) % 3], c[(r + 2) % 3]]
                })
                .collect();
            faces.sort();
            faces
        };
        assert_eq!(canon(a), canon(b));
    }

    #[test]
    fn every_format_round_trips_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = sample_mesh();
        for ext in ["glb", "stl", "obj", "ply", "3mf"] {
            let path = dir.path().join(format!("m.{ext}"));
            save(&mesh, &path).unwrap();
            let back = load(&path).unwrap();
            assert_same_mesh(&mesh, &back, 1e-5);
            assert!(back.topology().is_closed_manifold(), "{ext}");
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 5, "temporary files left behind");
        assert!(matches!(
            save(&mesh, &dir.path().join("m.xyz")),
            Err(MeshIoError::UnknownFormat(_))
        ));
    }

    #[test]
    fn formatted_chunks_join_to_the_text_in_order() {
        use std::fmt::Write as _;
        let items: Vec<u32> = (0..100_000).collect();
        let chunks = format_chunks(&items, |out, i| write!(out, "{i} ").unwrap());
        assert!(chunks.len() > 1, "one chunk tests nothing here");
        let sequential: String = items.iter().map(|i| format!("{i} ")).collect();
        assert_eq!(chunks.concat(), sequential);
    }

    #[test]
    fn save_each_writes_what_save_writes_and_reports_each_path() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = sample_mesh();
        let exts = ["glb", "stl", "obj", "ply", "3mf"];
        let one_by_one: Vec<Vec<u8>> = exts
            .iter()
            .map(|ext| {
                let path = dir.path().join(format!("single.{ext}"));
                save(&mesh, &path).unwrap();
                std::fs::read(path).unwrap()
            })
            .collect();
        let mut paths: Vec<_> = exts
            .iter()
            .map(|ext| dir.path().join(format!("each.{ext}")))
            .collect();
        paths.insert(2, dir.path().join("each.xyz"));
        let results = save_each(&mesh, &paths);
        assert_eq!(results.len(), paths.len());
        assert!(matches!(results[2], Err(MeshIoError::UnknownFormat(_))));
        for (ext, single) in exts.iter().zip(&one_by_one) {
            let each = std::fs::read(dir.path().join(format!("each.{ext}"))).unwrap();
            assert!(each == *single, "{ext} differs from save's file");
        }
        assert!(results
            .iter()
            .enumerate()
            .all(|(i, r)| (i == 2) == r.is_err()));
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.stl");
        save(&sample_mesh(), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let mut bad = sample_mesh();
        bad.faces.push([0, 1, u32::MAX]);
        assert!(save(&bad, &path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
