//! Progress reporting and cancellation shared by every stage of a job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decoding, background removal and framing of the photo.
    Prepare,
    /// DINOv2 condition tokens.
    Encode,
    /// The rectified-flow sampling loop.
    Denoise,
    /// VAE key/value tokens, then SDF queries on the octree.
    Decode,
    /// Iso-surface and cleanup.
    Surface,
    /// Closed solid in millimetres on the bed, with the printability report.
    Print,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StageStarted(Stage),
    /// `done` of `total` units of the current stage (steps, or query points while decoding).
    Progress {
        stage: Stage,
        done: usize,
        total: usize,
    },
    StageFinished {
        stage: Stage,
        elapsed: Duration,
    },
}

/// A flag the caller sets to stop a job at the next step boundary. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
