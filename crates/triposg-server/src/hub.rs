//! The in-memory side of jobs: the bounded queue the workers take from, and each unfinished
//! job's cancel flag and event channel (what SSE subscribers follow). The store is the record;
//! this is rebuilt from it at start-up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{broadcast, Notify};
use triposg_core::Cancel;

use crate::view::JobView;

/// What an SSE subscriber of a job sees, as `event: <type>` with the JSON as data.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// Waiting; `position` 1 is next.
    Queued {
        position: usize,
    },
    /// A worker took the job.
    Started {
        device: String,
    },
    /// A stage began (prepare, encode, denoise, decode, surface, save) for candidate
    /// `candidate` (1-based) of `candidates`.
    Stage {
        stage: String,
        candidate: u64,
        candidates: u64,
    },
    /// `done` of `total` steps of the stage; total 0 means unknown (decode: points so far).
    Step {
        stage: String,
        done: usize,
        total: usize,
        candidate: u64,
        candidates: u64,
    },
    Done {
        job: Box<JobView>,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

impl JobEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Started { .. } => "started",
            Self::Stage { .. } => "stage",
            Self::Step { .. } => "step",
            Self::Done { .. } => "done",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Failed { .. } | Self::Cancelled
        )
    }
}

/// An unfinished job's live state.
pub struct Live {
    pub events: broadcast::Sender<JobEvent>,
    pub cancel: Cancel,
    /// The latest progress event, replayed to late subscribers.
    last: Mutex<Option<JobEvent>>,
}

impl Live {
    pub fn send(&self, event: JobEvent) {
        if matches!(
            event,
            JobEvent::Stage { .. } | JobEvent::Step { .. } | JobEvent::Started { .. }
        ) {
            *lock(&self.last) = Some(event.clone());
        }
        // No subscribers is fine: nobody is watching this job.
        let _ = self.events.send(event);
    }

    pub fn last(&self) -> Option<JobEvent> {
        lock(&self.last).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent if a holder panicked (single assignments), so go on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct QueueFull {
    pub waiting: usize,
}

pub struct Hub {
    queue: Mutex<VecDeque<String>>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    wake: Notify,
    limit: usize,
}

impl Hub {
    pub fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            live: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Registers a job's live state without queueing it (it is about to be queued).
    fn register(&self, id: &str) -> Arc<Live> {
        let live = Arc::new(Live {
            // Step events come fast; a subscriber that falls this far behind skips ahead.
            events: broadcast::channel(256).0,
            cancel: Cancel::new(),
            last: Mutex::new(None),
        });
        lock(&self.live).insert(id.to_string(), live.clone());
        live
    }

    /// Queues a new job, or says the queue is full.
    pub fn submit(&self, id: &str) -> Result<Arc<Live>, QueueFull> {
        let mut queue = lock(&self.queue);
        if queue.len() >= self.limit {
            return Err(QueueFull {
                waiting: queue.len(),
            });
        }
        let live = self.register(id);
        queue.push_back(id.to_string());
        drop(queue);
        self.queue_changed();
        Ok(live)
    }

    /// Queues a job found unfinished at start-up: the limit applies to new submissions only.
    pub fn resume(&self, id: &str) {
        self.register(id);
        lock(&self.queue).push_back(id.to_string());
        self.queue_changed();
    }

    /// The next job for a worker, waiting until there is one.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.wake.notified();
            let next = lock(&self.queue).pop_front();
            if let Some(id) = next {
                self.queue_changed();
                return id;
            }
            notified.await;
        }
    }

    /// Takes a job out of the queue; false if it was not waiting (running or gone).
    pub fn unqueue(&self, id: &str) -> bool {
        let mut queue = lock(&self.queue);
        let Some(at) = queue.iter().position(|q| q == id) else {
            return false;
        };
        queue.remove(at);
        drop(queue);
        self.queue_changed();
        true
    }

    pub fn live(&self, id: &str) -> Option<Arc<Live>> {
        lock(&self.live).get(id).cloned()
    }

    /// Forgets a finished job's live state; its subscribers still receive what was sent.
    pub fn forget(&self, id: &str) {
        lock(&self.live).remove(id);
    }

    pub fn depth(&self) -> usize {
        lock(&self.queue).len()
    }

    /// 1-based place in the queue, if waiting.
    pub fn position(&self, id: &str) -> Option<usize> {
        lock(&self.queue)
            .iter()
            .position(|q| q == id)
            .map(|p| p + 1)
    }

    /// Cancels every running job (shutdown); queued ones simply stay in the store as queued.
    pub fn cancel_all(&self) {
        for live in lock(&self.live).values() {
            live.cancel.cancel();
        }
    }

    fn queue_changed(&self) {
        let queue: Vec<String> = lock(&self.queue).iter().cloned().collect();
        let live = lock(&self.live);
        for (i, id) in queue.iter().enumerate() {
            if let Some(l) = live.get(id) {
                l.send(JobEvent::Queued { position: i + 1 });
            }
        }
        drop(live);
        if !queue.is_empty() {
            self.wake.notify_one();
        }
    }
}
