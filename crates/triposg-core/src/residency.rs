//! Keeping loaded models in memory between jobs, under a policy: loading TripoSG takes seconds to
//! minutes, but a shared GPU may need its memory back when no one is generating.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When loaded models are given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidencyPolicy {
    /// Stay loaded for the life of the process.
    Keep,
    /// Unload once nothing has used them for this long.
    Idle(Duration),
    /// Unload as soon as each job ends (the old app's behaviour, for GPUs shared with others).
    Unload,
}

impl Default for ResidencyPolicy {
    fn default() -> Self {
        Self::Idle(Duration::from_secs(10 * 60))
    }
}

impl FromStr for ResidencyPolicy {
    type Err = String;

    /// `keep`, `unload`, or `idle:MINUTES` (`idle` alone means the default 10 minutes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("unknown residency `{s}`: use keep, unload or idle:MINUTES (e.g. idle:10)");
        match s.trim() {
            "keep" => Ok(Self::Keep),
            "unload" => Ok(Self::Unload),
            "idle" => Ok(Self::default()),
            other => {
                let minutes = other.strip_prefix("idle:").ok_or_else(bad)?;
                let minutes: f64 = minutes.parse().map_err(|_| bad())?;
                if !(minutes.is_finite() && minutes >= 0.0) {
                    return Err(bad());
                }
                Ok(Self::Idle(Duration::from_secs_f64(minutes * 60.0)))
            }
        }
    }
}

impl fmt::Display for ResidencyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep => write!(f, "keep"),
            Self::Unload => write!(f, "unload"),
            Self::Idle(d) => write!(f, "idle:{}", d.as_secs_f64() / 60.0),
        }
    }
}

struct Slot<T> {
    value: Option<Arc<T>>,
    /// Jobs holding the value now: idle time only counts when there are none.
    users: usize,
    last_used: Instant,
}

/// A value (the models of one device) loaded on first use and dropped under a
/// [`ResidencyPolicy`]. Jobs [`acquire`](Resident::acquire) it and hold the returned guard while
/// they run; memory is freed when the last job holding an unloaded value ends.
pub struct Resident<T> {
    policy: ResidencyPolicy,
    slot: Mutex<Slot<T>>,
}

/// A loaded value in use by one job; dropping it marks the job done.
pub struct InUse<'a, T> {
    owner: &'a Resident<T>,
    value: Arc<T>,
}

impl<T> std::ops::Deref for InUse<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for InUse<'_, T> {
    fn drop(&mut self) {
        let mut slot = self.owner.lock();
        slot.users -= 1;
        slot.last_used = Instant::now();
        if self.owner.policy == ResidencyPolicy::Unload && slot.users == 0 {
            slot.value = None;
        }
    }
}

impl<T> Resident<T> {
    pub fn new(policy: ResidencyPolicy) -> Self {
        Self {
            policy,
            slot: Mutex::new(Slot {
                value: None,
                users: 0,
                last_used: Instant::now(),
            }),
        }
    }

    pub fn policy(&self) -> ResidencyPolicy {
        self.policy
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panic while holding the lock leaves the slot consistent (plain fields), so go on.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loaded value, loading it with `load` first if needed. Loading happens under the lock,
    /// so two jobs never load the same models twice.
    pub fn acquire<E>(&self, load: impl FnOnce() -> Result<T, E>) -> Result<InUse<'_, T>, E> {
        let mut slot = self.lock();
        let value = match &slot.value {
            Some(v) => v.clone(),
            None => {
                let v = Arc::new(load()?);
                slot.value = Some(v.clone());
                v
            }
        };
        slot.users += 1;
        slot.last_used = Instant::now();
        Ok(InUse { owner: self, value })
    }

    pub fn is_loaded(&self) -> bool {
        self.lock().value.is_some()
    }

    /// Drops the value if the policy says it has been idle long enough; returns whether it did.
    /// Call it periodically (the server does every few seconds).
    pub fn unload_if_idle(&self) -> bool {
        let ResidencyPolicy::Idle(limit) = self.policy else {
            return false;
        };
        let mut slot = self.lock();
        if slot.value.is_some() && slot.users == 0 && slot.last_used.elapsed() >= limit {
            slot.value = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn counting_load(count: &Cell<usize>) -> impl FnOnce() -> Result<String, ()> + '_ {
        move || {
            count.set(count.get() + 1);
            Ok("models".to_string())
        }
    }

    #[test]
    fn policies_parse_from_their_flag_spelling() {
        assert_eq!("keep".parse(), Ok(ResidencyPolicy::Keep));
        assert_eq!("unload".parse(), Ok(ResidencyPolicy::Unload));
        assert_eq!(
            "idle:2.5".parse(),
            Ok(ResidencyPolicy::Idle(Duration::from_secs(150)))
        );
        assert_eq!("idle".parse(), Ok(ResidencyPolicy::default()));
        for bad in ["idle:", "idle:-1", "sometimes", "idle:x"] {
            let err = bad.parse::<ResidencyPolicy>().unwrap_err();
            assert!(err.contains("idle:MINUTES"), "{err}");
        }
        let policy: ResidencyPolicy = "idle:10".parse().unwrap();
        assert_eq!(policy.to_string().parse(), Ok(policy));
    }

    #[test]
    fn keep_loads_once_for_many_jobs() {
        let loads = Cell::new(0);
        let r = Resident::new(ResidencyPolicy::Keep);
        for _ in 0..3 {
            let v = r.acquire(counting_load(&loads)).unwrap();
            assert_eq!(*v, "models");
        }
        assert_eq!(loads.get(), 1);
        assert!(!r.unload_if_idle());
        assert!(r.is_loaded());
    }

    #[test]
    fn unload_drops_after_the_last_concurrent_job() {
        let loads = Cell::new(0);
        let r = Resident::new(ResidencyPolicy::Unload);
        let a = r.acquire(counting_load(&loads)).unwrap();
        let b = r.acquire(counting_load(&loads)).unwrap();
        drop(a);
        assert!(r.is_loaded(), "still used by the second job");
        drop(b);
        assert!(!r.is_loaded());
        let _c = r.acquire(counting_load(&loads)).unwrap();
        assert_eq!(loads.get(), 2);
    }

    #[test]
    fn idle_unloads_only_when_unused_for_the_limit() {
        let loads = Cell::new(0);
        let r = Resident::new(ResidencyPolicy::Idle(Duration::ZERO));
        let job = r.acquire(counting_load(&loads)).unwrap();
        assert!(!r.unload_if_idle(), "a running job keeps its models");
        drop(job);
        assert!(r.unload_if_idle());
        assert!(!r.is_loaded());

        let long = Resident::new(ResidencyPolicy::Idle(Duration::from_secs(3600)));
        drop(long.acquire(counting_load(&loads)).unwrap());
        assert!(!long.unload_if_idle());
        assert!(long.is_loaded());
    }

    #[test]
    fn a_failed_load_leaves_nothing_loaded() {
        let r: Resident<String> = Resident::new(ResidencyPolicy::Keep);
        assert_eq!(
            r.acquire(|| Err("missing weights")).err(),
            Some("missing weights")
        );
        assert!(!r.is_loaded());
    }
}
