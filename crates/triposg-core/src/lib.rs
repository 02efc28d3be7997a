//! The job that turns a photo into a mesh, stage by stage, reporting progress and
//! honouring cancellation between steps. Knows nothing of HTTP; the CLI and the server drive it.

pub mod events;
pub mod job;
pub mod models;
pub mod residency;
pub mod shape;

pub use events::{Cancel, Event, Stage};
pub use job::{prepare_image, prepare_print_cancellable, run_job, JobOutput, LazyRmbg};
pub use models::{Models, Placement};
pub use shape::{generate_shape, JobError, ShapeParams};
