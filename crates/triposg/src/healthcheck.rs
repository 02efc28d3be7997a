//! `triposg healthcheck`: exits 0 when the server answers its health check, for Docker's
//! HEALTHCHECK in an image without curl.

use std::time::Duration;

use anyhow::{bail, Result};

pub fn run(url: &str) -> Result<bool> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => bail!("{url}: {e}"),
    };
    let status = response.status();
    if status.is_success() {
        println!("healthy: {url} answered {status}");
        Ok(true)
    } else {
        println!("unhealthy: {url} answered {status}");
        Ok(false)
    }
}
