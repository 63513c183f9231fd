//! The host side of the four interfaces: generated bindings and their
//! implementation over the deployment's [`KeyValueGrant`].
//!
//! Every backend call is bounded by the request's deadline (a guest cannot
//! be interrupted while the host awaits). Bad input and storage failures
//! reach the guest as `error::other` with a message; calls without a grant,
//! and opens of a bucket not granted, as `error::access-denied`.

use crate::KeyValueGrant;
use crate::backend::{DEFAULT_PAGE, Found, KvBackend, KvError, Namespace};
use cloudware_engine::http::RequestState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable, ResourceTableError};

mod bindings {
    wasmtime::component::bindgen!({
        inline: "
            package cloudware:keyvalue-host;

            world host {
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasi:keyvalue/batch@0.2.0-draft;
                import cloudware:platform/keyvalue-ext@0.1.0;
            }
        ",
        path: "../../../wit",
        world: "cloudware:keyvalue-host/host",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::HostError,
        },
    });
}

use bindings::cloudware::platform::keyvalue_ext;
use bindings::wasi::keyvalue::{atomics, batch, store};

/// The most keys one batch call may name.
const MAX_BATCH: usize = 1000;

/// An open bucket: the `bucket` resource of `wasi:keyvalue/store`, shared
/// by the other interfaces.
pub struct Bucket {
    ns: Namespace,
    backend: Arc<dyn KvBackend>,
}

/// A failed call: an error for the guest, or a trap.
pub enum HostError {
    Denied,
    Other(String),
    Trap(wasmtime::Error),
}

impl From<KvError> for HostError {
    fn from(err: KvError) -> Self {
        HostError::Other(err.to_string())
    }
}

impl From<ResourceTableError> for HostError {
    fn from(err: ResourceTableError) -> Self {
        HostError::Trap(err.into())
    }
}

type HostResult<T> = Result<T, HostError>;

/// Adds the four interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    store::add_to_linker::<RequestState, KvData>(linker, view)?;
    atomics::add_to_linker::<RequestState, KvData>(linker, view)?;
    batch::add_to_linker::<RequestState, KvData>(linker, view)?;
    keyvalue_ext::add_to_linker::<RequestState, KvData>(linker, view)?;
    Ok(())
}

fn view(state: &mut RequestState) -> KvView<'_> {
    let ctx = state.capability::<KeyValueGrant>();
    KvView {
        grant: ctx.grant,
        table: ctx.table,
        deadline: ctx.deadline,
    }
}

struct KvData;

impl HasData for KvData {
    type Data<'a> = KvView<'a>;
}

/// What the host functions see of a request's store.
struct KvView<'a> {
    grant: Option<&'a KeyValueGrant>,
    table: &'a mut ResourceTable,
    deadline: Instant,
}

impl KvView<'_> {
    /// The namespace and backend of an open bucket.
    fn bucket(&self, bucket: &Resource<Bucket>) -> HostResult<(Namespace, Arc<dyn KvBackend>)> {
        if self.grant.is_none() {
            return Err(HostError::Denied);
        }
        let bucket = self.table.get(bucket)?;
        Ok((bucket.ns.clone(), bucket.backend.clone()))
    }
}

/// Awaits a backend call, at most until `deadline` (the request's).
async fn run<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, KvError>>,
) -> HostResult<T> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(HostError::Other(
            "timed out: the request's deadline passed".into(),
        )),
    }
}

fn check_batch(len: usize) -> HostResult<()> {
    if len > MAX_BATCH {
        return Err(HostError::Other(format!(
            "batch too large: {len} keys, limit {MAX_BATCH}"
        )));
    }
    Ok(())
}

impl store::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> HostResult<Resource<Bucket>> {
        let Some(grant) = self.grant else {
            return Err(HostError::Denied);
        };
        if !grant.buckets.contains(&identifier) {
            return Err(HostError::Denied);
        }
        let bucket = Bucket {
            ns: Namespace::new(&grant.tenant, &identifier),
            backend: grant.backend.clone(),
        };
        Ok(self.table.push(bucket)?)
    }

    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<store::Error> {
        match err {
            HostError::Denied => Ok(store::Error::AccessDenied),
            HostError::Other(message) => Ok(store::Error::Other(message)),
            HostError::Trap(trap) => Err(trap),
        }
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> HostResult<Option<Vec<u8>>> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(self.deadline, backend.get(&ns, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> HostResult<()> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(self.deadline, backend.set(&ns, &key, value, None)).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> HostResult<()> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(self.deadline, backend.delete(&ns, &key)).await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> HostResult<bool> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(self.deadline, backend.exists(&ns, &key)).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> HostResult<store::KeyResponse> {
        let (ns, backend) = self.bucket(&bucket)?;
        let page = run(self.deadline, backend.list_keys(&ns, cursor, DEFAULT_PAGE)).await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> HostResult<u64> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(self.deadline, backend.increment(&ns, &key, delta)).await
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> HostResult<Found> {
        let (ns, backend) = self.bucket(&bucket)?;
        check_batch(keys.len())?;
        run(self.deadline, backend.get_many(&ns, keys)).await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> HostResult<()> {
        let (ns, backend) = self.bucket(&bucket)?;
        check_batch(key_values.len())?;
        run(self.deadline, backend.set_many(&ns, key_values)).await
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> HostResult<()> {
        let (ns, backend) = self.bucket(&bucket)?;
        check_batch(keys.len())?;
        run(self.deadline, backend.delete_many(&ns, keys)).await
    }
}

impl keyvalue_ext::Host for KvView<'_> {
    async fn compare_and_swap(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> HostResult<bool> {
        let (ns, backend) = self.bucket(&bucket)?;
        run(
            self.deadline,
            backend.compare_and_swap(&ns, &key, expected, value),
        )
        .await
    }

    async fn set_with_ttl(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> HostResult<()> {
        let (ns, backend) = self.bucket(&bucket)?;
        let ttl = Some(Duration::from_millis(ttl_ms));
        run(self.deadline, backend.set(&ns, &key, value, ttl)).await
    }
}
