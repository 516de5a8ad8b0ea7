//! A blocking etcd v3 client bounded by a timeout: the registry's calls are blocking
//! (they run on the agent's batch and blocking threads, and in the CLI), and etcd's
//! client is async, so a `Kv` drives its own runtime (one thread), which every thread
//! of the process that talks to the same cluster shares ([`Kv::shared`]): one
//! connection, not one per call.

use std::sync::{Arc, Mutex};

use etcd_client::{
    Certificate, Client, Compare, ConnectOptions, GetOptions, Identity, TlsOptions, TxnOp,
};

use crate::config::{ClusterSettings, ClusterTls};
use crate::error::{Error, Result};

/// A connection to etcd.
pub struct Kv {
    runtime: tokio::runtime::Runtime,
    client: Client,
    settings: ClusterSettings,
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A key's value and its revision of last change.
pub struct Versioned {
    /// The value.
    pub value: Vec<u8>,
    /// Its `mod_revision`.
    pub revision: i64,
}

impl Kv {
    /// Connects to the cluster (within the timeout).
    pub fn connect(settings: &ClusterSettings) -> Result<Kv> {
        // Its own worker drives the connection, so several threads' calls run at once.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            .map_err(|e| Error::failed(format!("etcd client runtime: {e}")))?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.timeout)
            .with_timeout(settings.timeout);
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let endpoints = settings.endpoints.clone();
        let client = bounded(
            &runtime,
            settings,
            "connect",
            Client::connect(endpoints, Some(options)),
        )?;
        Ok(Kv {
            runtime,
            client,
            settings: settings.clone(),
        })
    }

    /// The process's connection to the cluster `settings` names, made on first use.
    pub fn shared(settings: &ClusterSettings) -> Result<Arc<Kv>> {
        static OPEN: Mutex<Vec<(String, Arc<Kv>)>> = Mutex::new(Vec::new());
        let key = format!("{settings:?}");
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, kv)) = open.iter().find(|(k, _)| *k == key) {
            return Ok(kv.clone());
        }
        let kv = Arc::new(Kv::connect(settings)?);
        open.push((key, kv.clone()));
        Ok(kv)
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The full key of `parts` below the cluster's prefix.
    pub fn key(&self, parts: &[&str]) -> Vec<u8> {
        let mut key = self.settings.prefix.clone();
        for part in parts {
            key.push('/');
            key.push_str(part);
        }
        key.into_bytes()
    }

    /// The value of `key` and its revision, if it exists.
    pub fn get(&self, key: &[u8]) -> Result<Option<Versioned>> {
        let mut client = self.client.clone();
        let response = self.bounded("get", client.get(key, None))?;
        Ok(response.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
        }))
    }

    /// Every key below `prefix` with its value, in key order, from `start` on (a key
    /// below the prefix) and at most `limit` of them (0: all), and the store's revision
    /// they were read at.
    pub fn range(
        &self,
        prefix: &[u8],
        start: Option<&[u8]>,
        limit: i64,
    ) -> Result<(Vec<Entry>, i64)> {
        let mut client = self.client.clone();
        let end = prefix_end(prefix);
        let options = GetOptions::new().with_range(end).with_limit(limit);
        let from = start.unwrap_or(prefix).to_vec();
        let response = self.bounded("range", client.get(from, Some(options)))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        Ok((kvs, revision))
    }

    /// How many keys are below `prefix`, and the store's revision it was counted at.
    pub fn count(&self, prefix: &[u8]) -> Result<(i64, i64)> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix().with_count_only();
        let response = self.bounded("count", client.get(prefix, Some(options)))?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok((response.count(), revision))
    }

    /// Reads every key below each of `prefixes` at one revision, in one round trip: the
    /// entries of each prefix, in key order, and that revision. The read is
    /// linearizable: it sees every write acknowledged before it.
    pub fn read_prefixes(&self, prefixes: &[Vec<u8>]) -> Result<(Vec<Vec<Entry>>, i64)> {
        self.read(prefixes, false)
    }

    /// The same from the member asked alone (serializable: it may miss the latest
    /// writes), only for a read a transaction then guards: one that compares every key
    /// it read as unchanged since the revision returned fails if the read was stale.
    pub fn read_guarded(&self, prefixes: &[Vec<u8>]) -> Result<(Vec<Vec<Entry>>, i64)> {
        self.read(prefixes, true)
    }

    fn read(&self, prefixes: &[Vec<u8>], serializable: bool) -> Result<(Vec<Vec<Entry>>, i64)> {
        let mut client = self.client.clone();
        let options = || {
            let o = GetOptions::new().with_prefix();
            if serializable {
                o.with_serializable()
            } else {
                o
            }
        };
        let gets = prefixes
            .iter()
            .map(|p| TxnOp::get(p.clone(), Some(options())))
            .collect::<Vec<_>>();
        let txn = etcd_client::Txn::new().and_then(gets);
        let response = self.bounded("read", client.txn(txn))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let entries = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                etcd_client::TxnOpResponse::Get(got) => got
                    .kvs()
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        Ok((entries, revision))
    }

    /// Puts `key` under a new lease of `ttl`: etcd deletes it when the lease runs out
    /// unless [`Kv::keep_alive`] renews it. Returns the lease.
    pub fn put_leased(&self, key: &[u8], value: &[u8], ttl: std::time::Duration) -> Result<i64> {
        let mut client = self.client.clone();
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = self.bounded("lease grant", client.lease_grant(secs, None))?;
        let options = etcd_client::PutOptions::new().with_lease(lease.id());
        self.bounded("put", client.put(key, value, Some(options)))?;
        Ok(lease.id())
    }

    /// Renews `lease` once; whether it was still alive (an expired lease's keys are gone).
    pub fn keep_alive(&self, lease: i64) -> Result<bool> {
        let mut client = self.client.clone();
        let ttl = self.bounded("lease keep-alive", async move {
            let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(stream.message().await?.map_or(0, |r| r.ttl()))
        })?;
        Ok(ttl > 0)
    }

    /// Runs `then` if every comparison holds, as one transaction; whether it ran.
    pub fn txn(&self, when: Vec<Compare>, then: Vec<TxnOp>) -> Result<bool> {
        let mut client = self.client.clone();
        let txn = etcd_client::Txn::new().when(when).and_then(then);
        Ok(self.bounded("txn", client.txn(txn))?.succeeded())
    }

    fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        bounded(&self.runtime, &self.settings, what, call)
    }
}

/// The client side of TLS: etcd's CA, and this host's certificate and key.
fn tls_options(tls: &ClusterTls) -> Result<TlsOptions> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| Error::failed(format!("etcd TLS: {what} {}: {e}", path.display())))
    };
    Ok(TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read("ca", &tls.ca)?))
        .identity(Identity::from_pem(
            read("cert", &tls.cert)?,
            read("key", &tls.key)?,
        )))
}

/// Runs `call` on `runtime`, at most the configured timeout; an error names etcd.
fn bounded<T>(
    runtime: &tokio::runtime::Runtime,
    settings: &ClusterSettings,
    what: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    let failed = |why: String| {
        Error::failed(format!(
            "etcd ({}): {what}: {why}",
            settings.endpoints.join(", ")
        ))
    };
    // The timer is made inside the runtime (it needs its clock).
    let started = std::time::Instant::now();
    let result = runtime.block_on(async { tokio::time::timeout(settings.timeout, call).await });
    tracing::trace!(what, us = started.elapsed().as_micros(), "etcd call");
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer within {} ms",
            settings.timeout.as_millis()
        ))),
    }
}

/// The first key after every key that starts with `prefix` (etcd's range end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes: every key after it (etcd reads "\0" as "to the end").
    vec![0]
}
