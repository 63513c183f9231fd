//! Instance quotas: how many instances of one app may run at once.
//!
//! Every request takes a permit from its app's quota and an instance slot:
//! one of the slots reserved for the app (`min_warm`) if one is free, else
//! one from the engine's shared pool (the node-wide bound). So no app runs
//! more than its quota, an app with reserved slots can always run that many
//! requests however busy the node is, and the pool is never oversubscribed.
//! Both bounds can be changed while requests run (`cloudware scale`).

use crate::engine::Engine;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A resizable bound on one app's concurrent instances. Cheap to clone;
/// clones share the bound.
#[derive(Clone, Debug)]
pub struct InstanceQuota {
    inner: Arc<QuotaInner>,
}

#[derive(Debug)]
struct QuotaInner {
    semaphore: Arc<Semaphore>,
    limit: Mutex<u32>,
    /// Free reserved slots.
    reserved_free: Arc<Semaphore>,
    reservation: Mutex<Reservation>,
}

/// Slots taken out of the engine's pool for this app alone.
#[derive(Debug, Default)]
struct Reservation {
    count: u32,
    /// The pool permits backing the reservation.
    held: Option<OwnedSemaphorePermit>,
}

impl InstanceQuota {
    /// A quota of `limit` concurrent instances.
    pub fn new(limit: u32) -> Self {
        InstanceQuota {
            inner: Arc::new(QuotaInner {
                semaphore: Arc::new(Semaphore::new(limit as usize)),
                limit: Mutex::new(limit),
                reserved_free: Arc::new(Semaphore::new(0)),
                reservation: Mutex::new(Reservation::default()),
            }),
        }
    }

    /// The current bound.
    pub fn limit(&self) -> u32 {
        *self
            .inner
            .limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Instances running now (approximate while a shrink is settling).
    pub fn busy(&self) -> u32 {
        let available = u32::try_from(self.inner.semaphore.available_permits()).unwrap_or(u32::MAX);
        self.limit().saturating_sub(available)
    }

    /// Changes the bound. Growing takes effect at once; shrinking takes
    /// free permits at once and the rest as running requests finish.
    pub fn set_limit(&self, limit: u32) {
        let mut current = self
            .inner
            .limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if limit > *current {
            self.inner
                .semaphore
                .add_permits((limit - *current) as usize);
        } else if limit < *current {
            let excess = (*current - limit) as usize;
            let forgotten = self.inner.semaphore.forget_permits(excess);
            let debt = excess - forgotten;
            if debt > 0 {
                let semaphore = self.inner.semaphore.clone();
                let debt = u32::try_from(debt).unwrap_or(u32::MAX);
                // Retire the rest as running requests return their permits.
                tokio::spawn(async move {
                    if let Ok(permits) = semaphore.acquire_many_owned(debt).await {
                        permits.forget();
                    }
                });
            }
        }
        *current = limit;
    }

    /// Slots of `engine`'s pool currently reserved for this app.
    pub fn reserved(&self) -> u32 {
        self.lock_reservation().count
    }

    /// Reserves `wanted` slots of `engine`'s pool for this app alone (its
    /// `min_warm`). Growing takes free slots at once — if the pool has too
    /// few free, nothing changes and a later call tries again; shrinking
    /// gives slots back as the app's running requests finish.
    pub fn set_reserved(&self, engine: &Engine, wanted: u32) {
        let mut reservation = self.lock_reservation();
        if wanted > reservation.count {
            let delta = wanted - reservation.count;
            match engine.slots().clone().try_acquire_many_owned(delta) {
                Ok(permit) => {
                    match reservation.held.as_mut() {
                        Some(held) => held.merge(permit),
                        None => reservation.held = Some(permit),
                    }
                    self.inner.reserved_free.add_permits(delta as usize);
                    reservation.count = wanted;
                }
                Err(_) => tracing::warn!(
                    wanted,
                    reserved = reservation.count,
                    "cannot reserve instance slots now: the pool is busy"
                ),
            }
        } else if wanted < reservation.count {
            let delta = reservation.count - wanted;
            let released = reservation
                .held
                .as_mut()
                .and_then(|held| held.split(delta as usize));
            reservation.count = wanted;
            let free = self.inner.reserved_free.clone();
            // Retire the reserved permits first (waiting for requests that
            // use them), then hand the slots back to the pool.
            tokio::spawn(async move {
                if let Ok(permits) = free.acquire_many_owned(delta).await {
                    permits.forget();
                }
                drop(released);
            });
        }
    }

    fn lock_reservation(&self) -> std::sync::MutexGuard<'_, Reservation> {
        self.inner
            .reservation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.inner.semaphore
    }

    /// A free reserved slot, if any.
    pub(crate) fn try_reserved_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.reserved_free.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_and_shrinks_live() {
        let quota = InstanceQuota::new(2);
        let a = quota
            .semaphore()
            .clone()
            .try_acquire_owned()
            .expect("first");
        let _b = quota
            .semaphore()
            .clone()
            .try_acquire_owned()
            .expect("second");
        assert!(quota.semaphore().clone().try_acquire_owned().is_err());
        assert_eq!(quota.busy(), 2);

        quota.set_limit(3);
        let c = quota
            .semaphore()
            .clone()
            .try_acquire_owned()
            .expect("grown");
        assert_eq!(quota.limit(), 3);

        // Shrink to 1 while three run: nothing new is admitted until two finish.
        quota.set_limit(1);
        drop(c);
        tokio::task::yield_now().await;
        assert!(quota.semaphore().clone().try_acquire_owned().is_err());
        drop(a);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            quota.semaphore().clone().try_acquire_owned().is_err(),
            "still one running"
        );
    }
}
