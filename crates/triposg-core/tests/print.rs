//! The print stage of a job on a generated mesh: cancellation reaches it.

use std::path::Path;

use triposg_core::{prepare_print_cancellable, Cancel, Event, JobError, Stage};
use triposg_mesh::print::PrintOptions;

#[test]
fn cancelling_the_print_stage_stops_it_with_the_cancelled_error() {
    let mesh = triposg_mesh::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/generated/tiny-surface-seed1.ply"),
    )
    .unwrap();
    let opts = PrintOptions::default();
    // Cancelled as the stage starts, as a user's cancel between two stages would be; the
    // mesh crate's tests cancel at every point inside the stage.
    let cancel = Cancel::new();
    let mut events = Vec::new();
    let r = prepare_print_cancellable(&mesh, &opts, &cancel, |e| {
        if let Event::StageStarted(Stage::Print) = e {
            cancel.cancel();
        }
        events.push(e);
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    assert!(
        matches!(events[..], [Event::StageStarted(Stage::Print)]),
        "{events:?}"
    );
}
