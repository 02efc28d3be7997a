//! Ctrl-C and SIGTERM, for the commands that stop cleanly instead of dying mid-write.

/// Resolves on the first Ctrl-C (or SIGTERM on Unix).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Sets `cancel` on the first stop signal, so a running job ends at its next step and leaves
/// only complete files; a second signal exits at once.
pub fn cancel_on_signal(cancel: triposg_core::Cancel) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            stop_signal().await;
            eprintln!("\nstopping after the current step (press Ctrl-C again to quit at once)");
            cancel.cancel();
            stop_signal().await;
            std::process::exit(130);
        });
    });
}
