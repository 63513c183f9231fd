//! Instance quotas: how many instances of one app may run at once.
//!
//! Every request takes a permit from its app's quota and one from the
//! engine's pool (the node-wide bound), so no app can starve the others of
//! more than its quota, and the pool is never oversubscribed. A quota can be
//! resized while requests run (`cloudware scale`).

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

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
}

impl InstanceQuota {
    /// A quota of `limit` concurrent instances.
    pub fn new(limit: u32) -> Self {
        InstanceQuota {
            inner: Arc::new(QuotaInner {
                semaphore: Arc::new(Semaphore::new(limit as usize)),
                limit: Mutex::new(limit),
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

    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.inner.semaphore
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
