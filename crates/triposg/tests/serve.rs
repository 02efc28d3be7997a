//! `triposg serve` and `triposg healthcheck` as a container runs them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn triposg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triposg"))
}

/// Starts the server on a free port; returns it and its address from its start-up line.
fn serve(outputs: &std::path::Path) -> (Child, String) {
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
    let mut child = triposg()
        .args(["serve", "--port", "0", "--devices", "cpu"])
        .arg("--weights")
        .arg(weights)
        .arg("--outputs")
        .arg(outputs)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("serving on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server printed no address");
    (child, addr)
}

fn healthcheck(url: &str) -> std::process::Output {
    triposg()
        .args(["healthcheck", "--url", url])
        .output()
        .unwrap()
}

#[test]
fn healthcheck_passes_while_the_server_runs_and_fails_after_it_stops() {
    let outputs = tempfile::tempdir().unwrap();
    let (mut server, base) = serve(outputs.path());
    let url = format!("{base}/healthz");
    let up = healthcheck(&url);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stdout)
    );
    // Readiness with complete weights and a running worker, as the env var names it.
    let ready = triposg()
        .arg("healthcheck")
        .env("TRIPOSG_HEALTHCHECK_URL", format!("{base}/readyz"))
        .output()
        .unwrap();
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stdout)
    );

    // SIGTERM: a graceful stop, exit code 0, and the port closes.
    let stopped = Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = server.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let down = healthcheck(&url);
    assert_eq!(down.status.code(), Some(1));
    assert!(outputs.path().join("triposg.db").exists());
}

#[test]
fn serve_refuses_an_unknown_residency_with_the_accepted_spellings() {
    let out = triposg()
        .args(["serve", "--residency", "sometimes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("idle:MINUTES"), "{stderr}");
}
