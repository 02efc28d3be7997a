//! Resource faults against a real server: a full disk under the outputs folder (a small tmpfs),
//! damaged weights, and clients that vanish mid-upload or mid-stream. Each gives a clear error,
//! the worker goes on with the next job, and nothing is left behind.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, cutout_photo, fixtures, start, Browser, FAST};
use reqwest::StatusCode;

/// A tmpfs of a few MiB on a fresh folder, unmounted when dropped. Mounting needs root: CI runs
/// as root and sets TRIPOSG_REQUIRE_VALIDATORS, so there the test fails instead of skipping.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var_os("TRIPOSG_REQUIRE_VALIDATORS").is_none(),
            "could not mount a tmpfs for the full-disk test (it needs root)"
        );
        eprintln!("SKIPPED: could not mount a tmpfs for the full-disk test (it needs root)");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Takes all but about `left` bytes with a filler file; returns it.
    fn fill_leaving(&self, left: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        let mut remaining = self.available().saturating_sub(left);
        while remaining > 0 {
            let n = remaining.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            remaining -= n as u64;
        }
        f.sync_all().unwrap();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Every file under `dir` whose name marks a half-written temporary file.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if entry.file_name().to_string_lossy().starts_with(".tmp") {
            found.push(path);
        }
    }
    found
}

fn job_folders(outputs: &Path) -> Vec<String> {
    std::fs::read_dir(outputs.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_clearly_and_the_server_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    let outputs = disk.path().join("outputs");
    // The job store on another disk: this is about the job files (a full store is not handled
    // yet, see docs/reliability.md).
    let store = tempfile::tempdir().unwrap();
    let mut c = config(&outputs);
    c.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        store.path().join("triposg.db").display()
    ));
    let server = start(c).await;
    let me = Browser::new(&server);

    // Full before the upload: refused with 507 and nothing half-stored.
    let filler = disk.fill_leaving(8 << 10);
    let r = me.upload("/api/jobs", cutout_photo(), &FAST).await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
    assert!(
        job_folders(&outputs).is_empty(),
        "{:?}",
        job_folders(&outputs)
    );
    std::fs::remove_file(&filler).unwrap();

    // Full while the job runs: it fails saying why.
    let (id, mut events) = me
        .submit_running(&[
            ("num_tokens", "16"),
            ("steps", "100"),
            ("octree_depth", "7"),
        ])
        .await;
    let filler = disk.fill_leaving(0);
    let (names, failed) = events.until_final().await;
    assert_eq!(names.last().unwrap(), "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    let (_, job) = me.json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        temp_files(&outputs).is_empty(),
        "{:?}",
        temp_files(&outputs)
    );

    // Deleting it frees its files; with space again the same worker runs the next job.
    let r = me.delete(&format!("/api/jobs/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        job_folders(&outputs).is_empty(),
        "{:?}",
        job_folders(&outputs)
    );
    std::fs::remove_file(&filler).unwrap();
    let id = me.submit(&FAST).await;
    let (names, done) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    assert!(
        temp_files(&outputs).is_empty(),
        "{:?}",
        temp_files(&outputs)
    );
    server.shutdown().await.unwrap();
}

/// The job store on a full disk: a job that ends then cannot be recorded. It is neither lost
/// nor failed for nothing: it stays running, and once space is back it gets its real outcome
/// and the same worker runs the next job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flaky: SQLite's WAL can take the final write from space it already holds, so the refusal this waits for does not always come (seen in a full-suite run); run alone with --ignored"]
async fn a_full_disk_under_the_store_holds_the_outcome_until_space_returns() {
    let Some(disk) = SmallDisk::mount(4) else {
        return;
    };
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("triposg.db").display()
    ));
    let server = start(c).await;
    let me = Browser::new(&server);
    let (id, mut events) = me
        .submit_running(&[("num_tokens", "16"), ("steps", "30"), ("octree_depth", "7")])
        .await;
    let filler = disk.fill_leaving(0);
    // Generous: on a loaded 2-core machine the rest of the job can take minutes.
    let deadline = Instant::now() + Duration::from_secs(600);
    while store_write_retries(&me).await == 0 {
        assert!(Instant::now() < deadline, "the outcome was never refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, job) = me.json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "running", "{job}");

    std::fs::remove_file(&filler).unwrap();
    let (names, done) = tokio::time::timeout(Duration::from_secs(60), events.until_final())
        .await
        .expect("no outcome after space returned");
    assert_eq!(names.last().unwrap(), "done", "{done}");
    let (_, job) = me.json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "done", "{job}");
    let next = me.submit(&FAST).await;
    let (names, done) = me.events(&next).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    server.shutdown().await.unwrap();
}

async fn store_write_retries(me: &Browser) -> u64 {
    let text = me.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("triposg_store_write_retries_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_weights_fail_the_job_clearly_and_repaired_weights_work_without_a_restart() {
    let weights = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(fixtures().join("tiny-surface/TripoSG"))
        .arg(weights.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let transformer = weights
        .path()
        .join("TripoSG/transformer/diffusion_pytorch_model.safetensors");
    let good = std::fs::read(&transformer).unwrap();
    std::fs::write(&transformer, &good[..good.len() / 2]).unwrap();

    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.weights = weights.path().to_path_buf();
    let server = start(c).await;
    let me = Browser::new(&server);
    let id = me.submit(&FAST).await;
    let (names, failed) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("check-weights"), "{error}");
    assert!(
        error.contains("transformer"),
        "names the damaged file: {error}"
    );

    std::fs::write(&transformer, &good).unwrap();
    let id = me.submit(&FAST).await;
    let (names, done) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    server.shutdown().await.unwrap();
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// 50 uploads cut off halfway and 50 event streams dropped mid-job: no job, no file, no file
/// handle is left of them, and the job they watched finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_upload_or_mid_stream_leave_nothing_behind() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let before = open_files();

    let photo = cutout_photo();
    for _ in 0..50 {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n\r\n",
            photo.len() + 200
        );
        tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut socket, &photo[..photo.len() / 2])
            .await
            .unwrap();
        drop(socket);
    }

    let id = me
        .submit(&[("num_tokens", "16"), ("steps", "30"), ("octree_depth", "7")])
        .await;
    for _ in 0..50 {
        let client = Browser {
            http: reqwest::Client::new(),
            ..me.clone()
        };
        let mut events = client.events(&id).await;
        events.next().await.unwrap();
        drop(events);
    }
    let (names, done) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");

    assert_eq!(job_folders(outputs.path()), std::slice::from_ref(&id));
    assert!(temp_files(outputs.path()).is_empty());
    let (_, list) = me.json("/api/jobs").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_no_handle_leaked(before).await;
    server.shutdown().await.unwrap();
}

/// Closed connections release their handles shortly after. Allowed growth: the job store's pool
/// fills up during a job (4 SQLite connections x db, -wal, -shm) plus a few keep-alive sockets
/// of our own client; 100 vanished clients leaking even one handle each exceed it.
async fn assert_no_handle_leaked(before: usize) {
    let allowed = before + 4 * 3 + 4;
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_files() > allowed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open_files() <= allowed,
        "{} open files, {before} before",
        open_files()
    );
}

/// With a memory limit, a job estimated past it fails before it starts, saying what it needs
/// and what to lower, and the same worker then runs a job within the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_the_memory_limit_fails_clearly_and_the_next_one_runs() {
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    // The tiny models with a depth-7 surface need about 110 MiB; depth 10 about 2 GiB.
    c.memory_limit = Some(300 << 20);
    let server = start(c).await;
    let me = Browser::new(&server);
    let before = open_files();
    let deep = me
        .submit(&[("num_tokens", "16"), ("steps", "2"), ("octree_depth", "10")])
        .await;
    let within = me.submit(&FAST).await;

    let (names, failed) = me.events(&deep).await.until_final().await;
    assert_eq!(names.last().unwrap(), "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    for part in [
        "needs about",
        "octree depth 10",
        "--memory-limit is 300.0 MiB",
        "lower the octree depth",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    let (names, done) = me.events(&within).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    let (_, job) = me.json(&format!("/api/jobs/{within}")).await;
    let r = me
        .get(job["files"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!r.bytes().await.unwrap().is_empty());

    assert!(temp_files(outputs.path()).is_empty());
    assert_no_handle_leaked(before).await;
    server.shutdown().await.unwrap();
}
