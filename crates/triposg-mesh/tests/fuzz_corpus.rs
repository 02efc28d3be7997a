//! Replays the fuzzers' corpus and crash reproducers (fuzz/corpus, fuzz/regressions; see
//! docs/reliability.md) through every importer: each file loads as a usable mesh or fails with
//! an error, never a panic.

use std::path::PathBuf;

use triposg_mesh::io::{glb, obj, ply, stl, threemf};
use triposg_mesh::{Mesh, MeshIoError};

fn replay(target: &str, import: fn(&[u8]) -> Result<Mesh, MeshIoError>) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(mesh) = import(&bytes) {
                let n = mesh.vertices.len();
                assert!(
                    mesh.faces.iter().flatten().all(|&v| (v as usize) < n),
                    "{}",
                    path.display()
                );
            }
            files += 1;
        }
    }
    assert!(files >= 2, "no corpus for {target}");
}

#[test]
fn stl_corpus() {
    replay("mesh_stl", stl::from_bytes);
}

#[test]
fn obj_corpus() {
    replay("mesh_obj", obj::from_bytes);
}

#[test]
fn ply_corpus() {
    replay("mesh_ply", ply::from_bytes);
}

#[test]
fn glb_corpus() {
    replay("mesh_glb", glb::from_bytes);
}

#[test]
fn threemf_corpus() {
    replay("mesh_3mf", threemf::from_bytes);
}
