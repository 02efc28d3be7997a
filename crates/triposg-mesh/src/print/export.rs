//! The print files of one prepared solid: binary STL and 3MF in millimetres (Z up), the GLB
//! for viewing (the same triangles turned back to glTF's Y up, in metres) and the report.

use std::path::{Path, PathBuf};

use super::placement::to_y_up_metres;
use super::PrintResult;
use crate::io::threemf::{self, Metadata};
use crate::io::{glb, stl, write_all_atomically, MeshIoError};

/// Where a model came from, recorded in the 3MF.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrintMetadata {
    /// Object name (3MF object and Title).
    pub name: String,
    pub source_image: Option<String>,
    pub seed: Option<u64>,
    /// Generation parameters (steps, guidance, ...), stored with the print options.
    pub generation: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputFiles {
    pub stl: PathBuf,
    pub three_mf: PathBuf,
    pub glb: PathBuf,
    pub report: PathBuf,
}

/// Writes `<dir>/<stem>.{stl,3mf,glb,report.json}`. Every file is encoded and written to a
/// temporary file before the first is renamed into place, so a failure to encode or write
/// leaves no partial file and replaces none.
pub fn write_outputs(
    result: &PrintResult,
    dir: &Path,
    stem: &str,
    meta: &PrintMetadata,
) -> Result<OutputFiles, MeshIoError> {
    let files = OutputFiles {
        stl: dir.join(format!("{stem}.stl")),
        three_mf: dir.join(format!("{stem}.3mf")),
        glb: dir.join(format!("{stem}.glb")),
        report: dir.join(format!("{stem}.report.json")),
    };
    let report = serde_json::to_vec_pretty(&result.report)
        .map_err(|e| MeshIoError::Io(std::io::Error::other(e)))?;
    // The 3MF's deflate takes about as long as the other two encodings together.
    let (three_mf, (stl, glb)) = rayon::join(
        || threemf::to_bytes_with(&result.mesh, &metadata(result, meta)),
        || {
            rayon::join(
                || stl::to_bytes(&result.mesh),
                || glb::to_bytes(&to_y_up_metres(&result.mesh)),
            )
        },
    );
    let encoded = [
        (&files.stl, stl?),
        (&files.three_mf, three_mf?),
        (&files.glb, glb?),
        (&files.report, report),
    ];
    let encoded: Vec<(&Path, &[u8])> = encoded
        .iter()
        .map(|(path, bytes)| (path.as_path(), bytes.as_slice()))
        .collect();
    write_all_atomically(&encoded)?;
    Ok(files)
}

fn metadata(result: &PrintResult, meta: &PrintMetadata) -> Metadata {
    let mut entries = vec![
        ("Title".to_string(), meta.name.clone()),
        ("Application".to_string(), result.report.tool.clone()),
    ];
    if let Some(image) = &meta.source_image {
        entries.push(("triposg:source_image".into(), image.clone()));
    }
    if let Some(seed) = meta.seed {
        entries.push(("triposg:seed".into(), seed.to_string()));
    }
    let parameters = serde_json::json!({
        "print": result.report.options,
        "generation": meta.generation,
    });
    entries.push(("triposg:parameters".into(), parameters.to_string()));
    Metadata {
        object_name: Some(meta.name.clone()),
        entries,
    }
}
