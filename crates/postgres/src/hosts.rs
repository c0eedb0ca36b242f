//! Host resolution for login services: `Host` header → instance, and verified domain →
//! organization within an instance, answered from an in-process cache.
//!
//! - **Bounded**: at most `capacity` entries, least recently used out first.
//! - **Negative entries** for unknown hosts, with a short TTL.
//! - **Misses are batched**: a few workers each take every miss waiting and answer them
//!   with one query, so a flood of distinct unknown hosts costs the database a bounded
//!   number of queries per second, not one per host; beyond `max_waiting` misses, lookups
//!   fail at once instead of queueing without bound.
//! - **Invalidation** by LISTEN/NOTIFY on `tenancy_hosts` (triggers of migration 0006 send
//!   the domains a committed change touched). A TTL is the safety net; when the listening
//!   connection drops, the cache forgets everything and stores nothing until it listens
//!   again.
//! - **No stale write-back**: a lookup stores its answer only if no invalidation of its key
//!   (nor a flush) happened since its query started: per-key generation counters, striped
//!   by hash so that their memory stays fixed.
//! - **Replicas** ([`crate::replicas`]): misses may be answered by a streaming replica,
//!   which can still show a row an invalidation already announced. So each invalidation
//!   also notes the primary's WAL position when it arrived (per stripe, and for flushes),
//!   and a miss is answered by a replica only if that replica has replayed the position
//!   noted for its keys; otherwise by the primary. Until the position is known, the
//!   stripe's misses go to the primary.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lru::LruCache;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::value::DomainName;
use tenancy_core::{Error, Result};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::MapDb;
use crate::replicas::{Lsn, ReadPools, Served, current_lsn};

/// The channel migration 0006's triggers notify.
pub const HOSTS_CHANNEL: &str = "tenancy_hosts";

const STRIPES: usize = 4096;

/// What is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostKey {
    /// A live custom domain of a live instance (lower case).
    Host(String),
    /// A verified domain of a live organization of `instance_id` (lower case).
    OrgDomain {
        /// The instance the organization belongs to.
        instance_id: String,
        /// The domain, lower case.
        domain: String,
    },
}

impl HostKey {
    fn domain(&self) -> &str {
        match self {
            Self::Host(domain) | Self::OrgDomain { domain, .. } => domain,
        }
    }
}

/// Answers misses: the id each key maps to (instance id, or org id); absent = unknown.
#[async_trait]
pub trait HostSource: Send + Sync {
    /// The answers as of a state that includes every commit up to `at_least` (the primary's
    /// WAL position; [`Lsn`]`(0)`: any state the source has).
    async fn resolve(&self, keys: &[HostKey], at_least: Lsn) -> Result<HashMap<HostKey, String>>;
}

/// The tables, two indexed queries per batch at most; on a replica that has replayed
/// what the batch needs, else on the primary.
#[derive(Debug, Clone)]
pub struct PgHostSource {
    reads: ReadPools,
}

impl PgHostSource {
    /// Every miss answered by the primary.
    pub fn new(pool: PgPool) -> Self {
        Self {
            reads: ReadPools::primary_only(pool),
        }
    }

    /// Misses answered by the replicas of `reads` where they are far enough.
    pub fn with_read_pools(reads: ReadPools) -> Self {
        Self { reads }
    }
}

#[async_trait]
impl HostSource for PgHostSource {
    async fn resolve(&self, keys: &[HostKey], at_least: Lsn) -> Result<HashMap<HostKey, String>> {
        let (pool, served) = self.reads.read_pool(at_least);
        match resolve_on(pool, keys).await {
            Err(error) if served != Served::Primary => {
                // The replica failed: out of the rotation, and this batch to the primary.
                self.reads.report_failure(served, &error.to_string());
                resolve_on(self.reads.primary(), keys).await
            }
            answered => answered,
        }
    }
}

async fn resolve_on(pool: &PgPool, keys: &[HostKey]) -> Result<HashMap<HostKey, String>> {
    let mut hosts = Vec::new();
    let (mut org_instances, mut org_domains) = (Vec::new(), Vec::new());
    for key in keys {
        match key {
            HostKey::Host(domain) => hosts.push(domain.as_str()),
            HostKey::OrgDomain {
                instance_id,
                domain,
            } => {
                org_instances.push(instance_id.as_str());
                org_domains.push(domain.as_str());
            }
        }
    }
    let mut found = HashMap::new();
    if !hosts.is_empty() {
        // instance_domains_custom_key on lower(domain).
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT lower(d.domain COLLATE \"C\"), d.instance_id
               FROM instance_domains d JOIN instances i ON i.id = d.instance_id
              WHERE d.type = 'custom' AND lower(d.domain COLLATE \"C\") = ANY($1) AND i.deleted_at IS NULL",
        )
        .bind(&hosts)
        .fetch_all(pool)
        .await
        .db()?;
        found.extend(rows.into_iter().map(|(d, i)| (HostKey::Host(d), i)));
    }
    if !org_domains.is_empty() {
        // org_domains_verified_key on (instance_id, lower(domain)) WHERE is_verified.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT d.instance_id, lower(d.domain COLLATE \"C\"), d.org_id
               FROM unnest($1::text[], $2::text[]) AS k(instance_id, domain)
               JOIN org_domains d
                 ON d.instance_id = k.instance_id AND lower(d.domain COLLATE \"C\") = k.domain AND d.is_verified
               JOIN organizations o
                 ON o.instance_id = d.instance_id AND o.id = d.org_id AND o.deleted_at IS NULL",
        )
        .bind(&org_instances)
        .bind(&org_domains)
        .fetch_all(pool)
        .await
        .db()?;
        found.extend(rows.into_iter().map(|(instance_id, domain, org)| {
            (
                HostKey::OrgDomain {
                    instance_id,
                    domain,
                },
                org,
            )
        }));
    }
    Ok(found)
}

/// Sizes and times of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResolverConfig {
    /// Entries kept, positive and negative together.
    pub capacity: usize,
    /// How long a found mapping is kept without a notification (the safety net).
    pub ttl: Duration,
    /// How long "unknown" is kept.
    pub negative_ttl: Duration,
    /// Most keys answered by one query.
    pub max_batch: usize,
    /// Misses waiting beyond this fail at once (load shedding).
    pub max_waiting: usize,
    /// Concurrent miss queries.
    pub workers: usize,
}

impl Default for HostResolverConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            max_batch: 500,
            max_waiting: 10_000,
            workers: 2,
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostResolverStats {
    /// Lookups answered from the cache (negative entries included).
    pub hits: u64,
    /// Lookups that had to ask the source.
    pub misses: u64,
    /// Queries sent to the source (each answers a batch of misses).
    pub source_queries: u64,
    /// Misses refused because too many were waiting.
    pub shed: u64,
    /// Answers not stored because their key was invalidated while they were looked up.
    pub discarded: u64,
    /// Keys forgotten because a notification named them.
    pub invalidations: u64,
    /// Times the whole cache was forgotten (`*` notifications, a lost listener).
    pub flushes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    source_queries: AtomicU64,
    shed: AtomicU64,
    discarded: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Option<String>,
    expires: Instant,
}

type Reply = oneshot::Sender<Result<Option<String>>>;

#[derive(Debug)]
struct Waiting {
    key: HostKey,
    reply: Reply,
}

struct Inner {
    config: HostResolverConfig,
    cache: Mutex<LruCache<HostKey, Entry>>,
    /// Per-key generations, by the hash of the key's domain.
    stripes: Box<[AtomicU64]>,
    /// Bumped by every flush.
    epoch: AtomicU64,
    /// Stores are allowed only while notifications can arrive.
    listening: AtomicBool,
    /// With replicas: per stripe, the primary's WAL position when its last invalidation
    /// arrived ([`PENDING`] until known); a miss must be answered at or after it.
    stripe_positions: Box<[AtomicU64]>,
    /// The same for the last flush.
    flush_position: AtomicU64,
    /// Whether positions are noted (a source with replicas).
    track_positions: bool,
    counters: Counters,
    queue: mpsc::Sender<Waiting>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A position not known yet: misses go to the primary.
const PENDING: u64 = u64::MAX;

/// What one notification invalidated: stripes, or everything.
#[derive(Debug, Default)]
struct Touched {
    stripes: Vec<usize>,
    flushed: bool,
}

fn stripe(domain: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    domain.hash(&mut hasher);
    (hasher.finish() as usize) % STRIPES
}

impl Inner {
    fn cached(&self, key: &HostKey) -> Option<Option<String>> {
        let mut cache = lock(&self.cache);
        match cache.get(key) {
            Some(entry) if entry.expires > Instant::now() => Some(entry.value.clone()),
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    fn generation(&self, key: &HostKey) -> u64 {
        self.stripes[stripe(key.domain())].load(Ordering::Acquire)
    }

    /// The position a miss of `key` must be answered at or after.
    fn required(&self, key: &HostKey) -> Lsn {
        if !self.track_positions {
            return Lsn(0);
        }
        let position = self.stripe_positions[stripe(key.domain())].load(Ordering::Acquire);
        Lsn(position.max(self.flush_position.load(Ordering::Acquire)))
    }

    /// Records the primary's position for what a notification touched.
    fn noted(&self, touched: &Touched, at: Lsn) {
        for stripe in &touched.stripes {
            self.stripe_positions[*stripe].store(at.0, Ordering::Release);
        }
        if touched.flushed {
            self.flush_position.store(at.0, Ordering::Release);
        }
    }

    /// After a reconnect: every position still pending becomes `at`.
    fn noted_everything(&self, at: Lsn) {
        for position in &*self.stripe_positions {
            let _ = position.compare_exchange(PENDING, at.0, Ordering::AcqRel, Ordering::Acquire);
        }
        self.flush_position.store(at.0, Ordering::Release);
    }

    /// Forgets `domain` (as a host, and as an org domain of `instance_id`).
    fn invalidate(&self, instance_id: &str, domain: &str) -> usize {
        let stripe = stripe(domain);
        // Pending before the generation moves: a miss that sees the new generation also
        // sees that its answer must come from the primary until the position is known.
        if self.track_positions {
            self.stripe_positions[stripe].store(PENDING, Ordering::Release);
        }
        self.stripes[stripe].fetch_add(1, Ordering::AcqRel);
        let mut cache = lock(&self.cache);
        cache.pop(&HostKey::Host(domain.to_owned()));
        cache.pop(&HostKey::OrgDomain {
            instance_id: instance_id.to_owned(),
            domain: domain.to_owned(),
        });
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        stripe
    }

    fn flush(&self) {
        if self.track_positions {
            self.flush_position.store(PENDING, Ordering::Release);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        lock(&self.cache).clear();
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// A notification's payload: `*`, or lines `<instance_id> <domain>`.
    fn apply(&self, payload: &str) -> Touched {
        let mut touched = Touched::default();
        if payload.trim() == "*" {
            self.flush();
            touched.flushed = true;
            return touched;
        }
        for line in payload.lines() {
            match line.split_once(' ') {
                Some((instance_id, domain)) => {
                    touched.stripes.push(self.invalidate(instance_id, domain));
                }
                // Not ours to parse: be safe.
                None => {
                    self.flush();
                    touched.flushed = true;
                    return touched;
                }
            }
        }
        touched
    }

    /// Stores answers whose keys saw no invalidation since `generations` were read.
    fn store(&self, key: HostKey, value: Option<String>, generation: u64, epoch: u64) {
        let ttl = if value.is_some() {
            self.config.ttl
        } else {
            self.config.negative_ttl
        };
        let mut cache = lock(&self.cache);
        // Checked under the cache lock, which invalidations also take after bumping.
        if !self.listening.load(Ordering::Acquire)
            || self.epoch.load(Ordering::Acquire) != epoch
            || self.generation(&key) != generation
        {
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        cache.put(
            key,
            Entry {
                value,
                expires: Instant::now() + ttl,
            },
        );
    }
}

/// Stops the background tasks when the last resolver handle is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The cache; cheap to clone (one shared cache).
#[derive(Clone)]
pub struct HostResolver {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for HostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostResolver")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl HostResolver {
    /// A resolver over the tables of `pool`'s database, listening for their changes;
    /// returns once it listens.
    pub async fn start(pool: PgPool, config: HostResolverConfig) -> Result<Self> {
        Self::start_with_read_pools(ReadPools::primary_only(pool), config).await
    }

    /// As [`Self::start`], with misses answered by the replicas of `reads` where they
    /// have replayed what the answer needs (see the module docs); it listens on the
    /// primary.
    pub async fn start_with_read_pools(
        reads: ReadPools,
        config: HostResolverConfig,
    ) -> Result<Self> {
        let pool = reads.primary().clone();
        let listener = connect_listener(&pool).await?;
        let track = reads.has_replicas();
        let source = Arc::new(PgHostSource::with_read_pools(reads));
        let (inner, mut tasks) = build(source, config, track);
        if track {
            let at = current_lsn(&pool).await?;
            inner.noted_everything(at);
        }
        inner.listening.store(true, Ordering::Release);
        tasks.push(tokio::spawn(listen(Arc::downgrade(&inner), pool, listener)));
        Ok(Self {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// A resolver over any source; the caller feeds invalidations (tests, other stores).
    /// It stores nothing until [`Invalidations::listening`] says notifications can arrive.
    pub fn with_source(
        source: Arc<dyn HostSource>,
        config: HostResolverConfig,
    ) -> (Self, Invalidations) {
        let (inner, tasks) = build(source, config, false);
        let invalidations = Invalidations {
            inner: Arc::downgrade(&inner),
        };
        let resolver = Self {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        };
        (resolver, invalidations)
    }

    /// The live instance whose live custom domain is `host` (a `Host` header: port and
    /// case do not matter); NotFound when none is.
    pub async fn instance_by_host(&self, host: &str) -> Result<InstanceId> {
        let domain = DomainName::from_host(host)?;
        let key = HostKey::Host(domain.as_str().to_owned());
        match self.lookup(key).await? {
            Some(id) => InstanceId::new(id),
            None => Err(Error::not_found("instance for host", domain)),
        }
    }

    /// The live organization of `instance_id` that verified `domain`; NotFound when none
    /// did.
    pub async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId> {
        let domain = DomainName::from_host(domain)?;
        let key = HostKey::OrgDomain {
            instance_id: instance_id.as_str().to_owned(),
            domain: domain.as_str().to_owned(),
        };
        match self.lookup(key).await? {
            Some(id) => OrgId::new(id),
            None => Err(Error::not_found("organization for domain", domain)),
        }
    }

    async fn lookup(&self, key: HostKey) -> Result<Option<String>> {
        let counters = &self.inner.counters;
        if let Some(value) = self.inner.cached(&key) {
            counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        match self.inner.queue.try_send(Waiting { key, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.shed.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Unavailable(format!(
                    "host resolution is overloaded: {} lookups are waiting for the database",
                    self.inner.config.max_waiting
                )));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(Error::internal("host resolution stopped"));
            }
        }
        answer
            .await
            .map_err(|_| Error::internal("host resolution stopped"))?
    }

    /// Whether invalidations can currently arrive (answers are cached only then).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Entries held now (expired ones included until touched).
    pub fn len(&self) -> usize {
        lock(&self.inner.cache).len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters since start.
    pub fn stats(&self) -> HostResolverStats {
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HostResolverStats {
            hits: load(&c.hits),
            misses: load(&c.misses),
            source_queries: load(&c.source_queries),
            shed: load(&c.shed),
            discarded: load(&c.discarded),
            invalidations: load(&c.invalidations),
            flushes: load(&c.flushes),
        }
    }
}

/// The invalidation side of a resolver built [`HostResolver::with_source`].
#[derive(Debug, Clone)]
pub struct Invalidations {
    inner: Weak<Inner>,
}

impl Invalidations {
    /// Applies a `tenancy_hosts` payload.
    pub fn notify(&self, payload: &str) {
        if let Some(inner) = self.inner.upgrade() {
            inner.apply(payload);
        }
    }

    /// Notifications can (`true`) or cannot (`false`, everything is forgotten) arrive.
    pub fn listening(&self, listening: bool) {
        if let Some(inner) = self.inner.upgrade() {
            if !listening {
                inner.listening.store(false, Ordering::Release);
            }
            // Forget what was stored while notifications could not arrive; a lookup that
            // started before this flush does not store its answer.
            inner.flush();
            if listening {
                inner.listening.store(true, Ordering::Release);
            }
        }
    }
}

fn build(
    source: Arc<dyn HostSource>,
    config: HostResolverConfig,
    track_positions: bool,
) -> (Arc<Inner>, Vec<JoinHandle<()>>) {
    let (queue, receiver) = mpsc::channel(config.max_waiting.max(1));
    let capacity = NonZeroUsize::new(config.capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
    let inner = Arc::new(Inner {
        cache: Mutex::new(LruCache::new(capacity)),
        stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        epoch: AtomicU64::new(0),
        listening: AtomicBool::new(false),
        stripe_positions: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        flush_position: AtomicU64::new(0),
        track_positions,
        counters: Counters::default(),
        queue,
        config,
    });
    let receiver = Arc::new(AsyncMutex::new(receiver));
    let tasks = (0..inner.config.workers.max(1))
        .map(|_| {
            tokio::spawn(work(
                Arc::downgrade(&inner),
                source.clone(),
                receiver.clone(),
            ))
        })
        .collect();
    (inner, tasks)
}

/// One miss worker: takes every miss waiting (up to `max_batch`), answers them with one
/// source call, stores what no invalidation overtook.
async fn work(
    inner: Weak<Inner>,
    source: Arc<dyn HostSource>,
    receiver: Arc<AsyncMutex<mpsc::Receiver<Waiting>>>,
) {
    loop {
        let max_batch = match inner.upgrade() {
            Some(inner) => inner.config.max_batch.max(1),
            None => return,
        };
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(waiting) => batch.push(waiting),
                    Err(_) => break,
                }
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut replies: HashMap<HostKey, Vec<Reply>> = HashMap::new();
        for waiting in batch {
            // Answered meanwhile by another batch: no query.
            if let Some(value) = inner.cached(&waiting.key) {
                let _ = waiting.reply.send(Ok(value));
                continue;
            }
            replies.entry(waiting.key).or_default().push(waiting.reply);
        }
        if replies.is_empty() {
            continue;
        }
        let keys: Vec<HostKey> = replies.keys().cloned().collect();
        // Read before the query: an invalidation after this point prevents the store.
        let epoch = inner.epoch.load(Ordering::Acquire);
        let generations: Vec<u64> = keys.iter().map(|k| inner.generation(k)).collect();
        // After the generations: an invalidation they show has its position (or PENDING).
        let at_least = keys
            .iter()
            .map(|k| inner.required(k))
            .max()
            .unwrap_or_default();
        inner
            .counters
            .source_queries
            .fetch_add(1, Ordering::Relaxed);
        match source.resolve(&keys, at_least).await {
            Ok(mut found) => {
                for (key, generation) in keys.into_iter().zip(generations) {
                    let value = found.remove(&key);
                    let waiting = replies.remove(&key).unwrap_or_default();
                    // Stored before the answer goes out: the caller's next lookup hits.
                    inner.store(key, value.clone(), generation, epoch);
                    for reply in waiting {
                        let _ = reply.send(Ok(value.clone()));
                    }
                }
            }
            Err(error) => {
                let message = error.to_string();
                for reply in replies.into_values().flatten() {
                    let _ =
                        reply.send(Err(Error::internal(format!("resolving a host: {message}"))));
                }
            }
        }
    }
}

/// Listens on [`HOSTS_CHANNEL`]; on a dropped connection forgets everything, reconnects,
/// and allows stores again once it listens.
async fn listen(inner: Weak<Inner>, pool: PgPool, mut listener: PgListener) {
    let invalidations = Invalidations {
        inner: inner.clone(),
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        // Ok(None) or Err: the connection is gone.
        while let Ok(Some(notification)) = listener.try_recv().await {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let touched = inner.apply(notification.payload());
            if inner.track_positions {
                // Delivered after its commit: the position now is at or after it. If it
                // cannot be read, the stripes stay pending (primary) until the reconnect.
                match current_lsn(&mut listener).await {
                    Ok(at) => inner.noted(&touched, at),
                    Err(_) => break,
                }
            }
        }
        tracing::warn!("host resolution lost its notifications; forgetting the cache");
        invalidations.listening(false);
        loop {
            if inner.strong_count() == 0 {
                return;
            }
            match connect_listener(&pool).await {
                Ok(fresh) => {
                    listener = fresh;
                    // The flush of `listening(true)` leaves every position pending; read
                    // the primary's position after it, so that none stays pending.
                    invalidations.listening(true);
                    if let Some(inner) = inner.upgrade()
                        && inner.track_positions
                    {
                        match current_lsn(&mut listener).await {
                            Ok(at) => inner.noted_everything(at),
                            Err(_) => continue,
                        }
                    }
                    backoff = Duration::from_millis(100);
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "host resolution cannot listen yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.db()?;
    listener.listen(HOSTS_CHANNEL).await.db()?;
    Ok(listener)
}

#[async_trait::async_trait]
impl tenancy_core::ports::HostLookup for HostResolver {
    async fn instance_by_host(&self, host: &str) -> Result<InstanceId> {
        HostResolver::instance_by_host(self, host).await
    }
    async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId> {
        HostResolver::org_by_domain(self, instance_id, domain).await
    }
}
