//! Whether the TripoSG weights folder can be loaded, from configs and safetensors headers
//! alone (seconds, no memory): `triposg check-weights` prints it, the server's readiness and
//! the page's "weights missing" notice use it.

use std::path::{Path, PathBuf};

use triposg_model::checkpoint::{Checkpoint, Component, ComponentCheck};

/// One component's file and what checking it found (an error when it cannot be read at all).
pub struct ComponentStatus {
    pub component: Component,
    pub path: PathBuf,
    pub check: Result<ComponentCheck, String>,
}

impl ComponentStatus {
    pub fn is_ok(&self) -> bool {
        self.check.as_ref().is_ok_and(|c| c.problems.is_empty())
    }
}

/// Every component of `<weights>/TripoSG`.
pub fn check(weights: &Path) -> Vec<ComponentStatus> {
    let ckpt = Checkpoint::new(weights.join("TripoSG"));
    Component::ALL
        .into_iter()
        .map(|c| ComponentStatus {
            component: c,
            path: ckpt.weights_path(c),
            check: ckpt.verify(c).map_err(|e| e.to_string()),
        })
        .collect()
}

/// Short lines naming what is wrong (at most three problems per component); empty when the
/// weights load.
pub fn problems(weights: &Path) -> Vec<String> {
    check(weights)
        .iter()
        .flat_map(|s| match &s.check {
            Ok(check) => check
                .problems
                .iter()
                .take(3)
                .map(|p| format!("{}: {p}", s.component.folder()))
                .collect(),
            Err(e) => vec![format!("{}: {e}", s.component.folder())],
        })
        .collect()
}
