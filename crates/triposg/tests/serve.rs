//! `triposg serve` and `triposg healthcheck` as a container runs them.

#[path = "../../triposg-weights/tests/hub_standin/mod.rs"]
mod hub_standin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hub_standin::{start_hub, Behaviour};

fn triposg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triposg"))
}

/// Starts the server with the tiny weights on a free port; returns it and its address from
/// its start-up line.
fn serve(outputs: &Path) -> (Child, String) {
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
    serve_with(&weights, outputs, &[])
}

fn serve_with(weights: &Path, outputs: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = triposg()
        .args(["serve", "--port", "0", "--devices", "cpu"])
        .arg("--weights")
        .arg(weights)
        .arg("--outputs")
        .arg(outputs)
        .envs(env.iter().copied())
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

/// Sends SIGTERM, as `docker stop` and systemd do.
fn terminate(server: &Child) {
    let sent = Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
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
    terminate(&server);
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

/// One request over a plain socket; returns the whole response.
fn http(base: &str, method: &str, path: &str) -> String {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Ctrl-C or SIGTERM while the page's weights download runs stops the server within seconds:
/// the download stays where it got to (it resumes next time) instead of holding the exit until
/// gigabytes have arrived. The hub stand-in sends half a file and then nothing at all.
#[test]
fn a_stop_during_a_weights_download_exits_within_seconds() {
    let stalled = "transformer/diffusion_pytorch_model.safetensors";
    let hub = start_hub(Behaviour {
        stall: Some(stalled.into()),
        ..Default::default()
    });
    let (weights, outputs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hf_home = weights.path().join("hf-home");
    let (mut server, base) = serve_with(
        &weights.path().join("pretrained_weights"),
        outputs.path(),
        &[
            ("HF_ENDPOINT", hub.endpoint.as_str()),
            ("HF_HOME", hf_home.to_str().unwrap()),
        ],
    );
    let started = http(&base, "POST", "/api/weights/download?skip_rmbg=true");
    assert!(started.starts_with("HTTP/1.1 202"), "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hub
        .state
        .lock()
        .unwrap()
        .ranges
        .iter()
        .any(|(f, _)| f == stalled)
    {
        assert!(
            Instant::now() < deadline,
            "the download never reached {stalled}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            server.kill().unwrap();
            panic!("the server was still running 20 s after SIGTERM, waiting for the download");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
}
