//! Print options through the API: bad values are refused with a sentence before anything is
//! queued; good ones give STL, 3MF and GLB of one final mesh at the asked size in mm, with a
//! report whose numbers the job lists.

mod common;

use common::{config, start, Browser, FAST};
use reqwest::StatusCode;
use triposg_mesh::Mesh;

fn load(bytes: &[u8], ext: &str) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("m.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    triposg_mesh::load(&path).unwrap_or_else(|e| panic!("{ext}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_print_options_are_refused_with_what_to_do() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    for (field, value, expect) in [
        (
            "size",
            "huge",
            "size: invalid print option: `huge` is not a positive number of mm",
        ),
        ("size", "5000", "size must be 5 to 1000 mm"),
        ("size", "width:50", "use a number of mm, height:N"),
        ("orientation", "sideways", "use upright or lay-flat"),
        (
            "printer",
            "toaster",
            "unknown printer `toaster`: use one of",
        ),
        ("base", "star", "use round or rect"),
        ("hollow", "0.1", "hollow must be 0.4 to 20 mm of wall"),
        ("solid", "melt", "use repair or solidify"),
        ("fit_printer", "true", "needs a printer"),
    ] {
        let fields: Vec<_> = FAST.iter().copied().chain([(field, value)]).collect();
        let r = me
            .upload("/api/jobs", common::cutout_photo(), &fields)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{field}={value}");
        let body: serde_json::Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(expect), "{field}={value}: {error}");
    }
    assert_eq!(me.json("/api/jobs").await.1, serde_json::json!([]));
    server.shutdown().await.unwrap();
}

/// One job with print options: the print STL, 3MF and GLB are the same mesh at 40 mm high,
/// standing on the bed, and the job's summary matches the report file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_files_are_one_mesh_at_the_asked_size_in_mm() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let fields: Vec<_> = FAST
        .iter()
        .copied()
        .chain([
            ("size", "height:40"),
            ("printer", "prusa-mk4"),
            ("orientation", "upright"),
            ("technology", "fdm"),
            // The fixture's random weights make a ragged surface: a coarse voxel rebuild keeps
            // the print stage to seconds.
            ("solid", "solidify"),
            ("pitch", "1"),
        ])
        .collect();
    let id = me.submit(&fields).await;
    let (names, done) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    let job = &done["job"];
    let candidate = &job["result"]["candidates"][0];
    assert!(candidate["print_error"].is_null(), "{candidate}");
    let summary = &candidate["print"];
    let height = summary["size_mm"][2].as_f64().unwrap();
    assert!((height - 40.0).abs() < 0.05, "{summary}");
    assert_eq!(summary["solid"], true, "{summary}");
    assert_eq!(summary["printer"], "Original Prusa MK4");
    assert_eq!(summary["fits_printer"], true);

    let files = job["files"].as_array().unwrap();
    let print: Vec<&serde_json::Value> = files.iter().filter(|f| f["kind"] == "print").collect();
    let formats: Vec<&str> = print
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["stl", "3mf", "glb", "report"], "{files:?}");
    // The raw mesh comes as GLB (the viewer's toggle) and OBJ by default.
    let raw: Vec<&str> = files
        .iter()
        .filter(|f| f["kind"] == "raw")
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(raw, ["glb", "obj"]);

    let mut meshes = Vec::new();
    for f in &print {
        let r = me.get(f["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{f}");
        let bytes = r.bytes().await.unwrap();
        match f["format"].as_str().unwrap() {
            "report" => {
                let report: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(report["bbox_mm"], summary["size_mm"]);
                assert_eq!(report["volume_cm3"], summary["volume_cm3"]);
                assert_eq!(report["faces"], summary["faces"]);
            }
            ext => meshes.push((ext, load(&bytes, ext))),
        }
    }
    let faces = summary["faces"].as_u64().unwrap() as usize;
    for (ext, mesh) in &meshes {
        assert_eq!(mesh.faces.len(), faces, "{ext}");
        let b = mesh.bbox().unwrap();
        // STL and 3MF are in mm, Z up; the GLB is glTF's metres, Y up.
        let (up, scale) = if *ext == "glb" { (1, 1000.0) } else { (2, 1.0) };
        let h = (b.max[up] - b.min[up]) as f64 * scale;
        assert!((h - height).abs() < 0.01, "{ext}: {h} mm high");
        assert!(
            (b.min[up] as f64 * scale).abs() < 1e-3,
            "{ext} on the bed: {b:?}"
        );
    }
    server.shutdown().await.unwrap();
}
