//! Replaying instances that share custom domains in what they have left to project, caught
//! up together in the store's global order.
//!
//! Instances are projected each at its own pace, and a custom domain moving between them
//! makes one wait for another (`crate::claims`): after an outage in which domains moved,
//! the instances behind advanced as a wavefront, a few events per round each (450–775
//! events/s measured, against 10.5k without moves). Here such instances — a component of
//! the graph "has a custom domain add or removal past its cursor in common" — are merged
//! into one stream in the global sort-key order, the order the store judged the domains
//! in: within the component nobody waits, since every earlier event of every member comes
//! first. The stream is taken a window at a time (2,000 events); a window is split into
//! bins of instances that add or remove no custom domain in common within it, and the
//! bins are applied side by side, one transaction each, set-based (`workers` at most). The
//! next window starts when every bin of this one has committed.
//!
//! What the order alone does not cover keeps its rules:
//! - a member that another process holds (its lock taken) or has moved since: its bin
//!   commits nothing, the run ends after the window, and the component is tried again
//!   (busy);
//! - an add of a domain that an instance outside the component added earlier and has not
//!   projected yet: the window ends before it (deferred), as `crate::claims` asks;
//! - a domain still held by an instance outside the component that has yet to reach its
//!   release: the insert conflicts, the bin is redone event by event, and the add waits
//!   (`engine::waits_for_other_instance`).
//!
//! Any other error of an event is its own (the order is the store's): it is recorded with
//! every attempt spent and skipped, as the bulk fold does with the events it rejects.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use rust_decimal::Decimal;
use tenancy_core::event::{INSTANCE_AGGREGATE, INSTANCE_DOMAIN_ADDED, SortKey, StoredEvent};
use tenancy_core::ports::UnitOfWork;
use tenancy_core::{Error, Result};
use tenancy_eventstore::projection_state::{FailureKey, PendingAdd};
use tenancy_postgres::{PgSession, PgStore, on_constraint};
use tokio::task::{JoinHandle, JoinSet};

use crate::claims::Blockers;
use crate::engine::{Engine, Isolated, apply_isolated_event, clear_recovered};
use crate::outcome::{Outcome, ReplayV3};
use crate::relational;

/// Events per window of an ordered catch-up. Larger windows join more instances into one
/// bin through the domains they move (in the benchmark's stream half of a window is one
/// bin), smaller ones cost more statements per event; 800 and 1,000 measured no better,
/// nor did 1,500 with at most two bins. Nor did overlapping windows: each window's largest
/// group waits for the one before (benchmarks.md, outage).
const BATCH_EVENTS: usize = 2_000;
/// Events read ahead across the members of a component (what the merge holds at most),
/// and the bounds of each member's share.
const READ_AHEAD: usize = 32_768;
const MEMBER_READ_AHEAD: (usize, usize) = (16, 512);
/// An instance removed gives up every custom domain it holds, named by no event.
const INSTANCE_REMOVED: &str = "instance.removed";
/// Instances per statement of the entanglement query.
const ENTANGLE_CHUNK: usize = 4_096;

impl Engine {
    /// Splits `instances` into the components of replaying instances (with a cursor) that
    /// share a custom domain in what they have left up to `target`, two or more each (see
    /// the module), and the others, in their order.
    pub(crate) async fn entangled(
        &self,
        instances: Vec<String>,
        target: Option<Decimal>,
    ) -> Result<(Vec<Vec<String>>, Vec<String>)> {
        if instances.len() < 2 {
            return Ok((Vec::new(), instances));
        }
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        let mut pairs = Vec::new();
        for chunk in instances.chunks(ENTANGLE_CHUNK) {
            pairs.extend(
                self.state()
                    .unprojected_custom_domains(&mut conn, chunk, target)
                    .await?,
            );
        }
        drop(conn);
        let index: HashMap<&str, usize> = instances
            .iter()
            .enumerate()
            .map(|(n, i)| (i.as_str(), n))
            .collect();
        let mut sets = DisjointSets::new(instances.len());
        let mut first_with: HashMap<&str, usize> = HashMap::new();
        for (instance, domain) in &pairs {
            let Some(&n) = index.get(instance.as_str()) else {
                continue;
            };
            match first_with.get(domain.as_str()) {
                Some(&m) => sets.union(m, n),
                None => {
                    first_with.insert(domain, n);
                }
            }
        }
        let roots: Vec<usize> = (0..instances.len()).map(|n| sets.find(n)).collect();
        let mut sizes: HashMap<usize, usize> = HashMap::new();
        for root in &roots {
            *sizes.entry(*root).or_default() += 1;
        }
        let mut components: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut rest = Vec::new();
        for (instance, root) in instances.into_iter().zip(roots) {
            if sizes[&root] > 1 {
                components.entry(root).or_default().push(instance);
            } else {
                rest.push(instance);
            }
        }
        Ok((components.into_values().collect(), rest))
    }

    /// Catches the members of one component up to `target` (the newest position now,
    /// without one) in the store's global order (see the module): the outcome of each.
    pub(crate) async fn catch_up_ordered(
        &self,
        members: Vec<String>,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Vec<(String, Outcome)>> {
        // Without a target the merge could meet one member's events up to one moment and
        // another's up to a later one, and take them out of order.
        let target = match target {
            Some(target) => Some(target),
            None => self.newest_position().await?,
        };
        let mut merge = Merge::new(&members);
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut analysing = None;
        let stop = match target {
            None => None,
            Some(target) => loop {
                let step = self
                    .ordered_batch(&mut merge, target, replay, &mut outcomes, &mut analysing)
                    .await;
                match step {
                    Ok(Step::More) => {}
                    Ok(Step::Done) => break None,
                    Ok(Step::Stopped(stop)) => break Some(stop),
                    Err(e) => {
                        finish_analysis(analysing).await;
                        return Err(e);
                    }
                }
            },
        };
        finish_analysis(analysing).await;
        Ok(members
            .into_iter()
            .enumerate()
            .map(|(n, instance)| {
                let mut outcome = outcomes.remove(&instance).unwrap_or_default();
                if merge.members[n].is_done() {
                    outcome.caught_up = true;
                } else {
                    match stop {
                        Some(Stop::Busy) => outcome.busy = true,
                        Some(Stop::Deferred) | None => outcome.deferred += 1,
                    }
                }
                (instance, outcome)
            })
            .collect())
    }

    /// One window of an ordered catch-up: the next events in global order, split into
    /// bins of instances that share no custom domain within the window, the bins applied
    /// side by side, one transaction each (`workers` at most).
    async fn ordered_batch(
        &self,
        merge: &mut Merge,
        target: Decimal,
        replay: Option<ReplayV3>,
        outcomes: &mut HashMap<String, Outcome>,
        analysing: &mut Option<JoinHandle<()>>,
    ) -> Result<Step> {
        let started = Instant::now();
        let ids = merge.ids();
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        // Another process may have moved a member since the last window: it goes on from
        // where that process left it (each bin checks again under its locks).
        let cursors = self.state().cursors(&mut conn, &ids).await?;
        merge.follow(&cursors);
        let mut events = merge.next_batch(self, target, BATCH_EVENTS).await?;
        let read_at = started.elapsed();
        let mut stop = None;
        // An add that an instance outside the component has to reach first ends the window.
        if let Some(at) = self
            .first_blocked_add(&mut conn, &events, &ids, replay)
            .await?
        {
            merge.put_back(events.split_off(at));
            stop = Some(Stop::Deferred);
        }
        drop(conn);
        if events.is_empty() {
            return Ok(stop.map_or(Step::Done, Step::Stopped));
        }
        let checked_at = started.elapsed();
        let window = events.len();
        let split = bins_of(events, self.config().workers.max(1));
        let sizes: Vec<usize> = split.iter().map(Vec::len).collect();
        let mut bins = JoinSet::new();
        for bin in split {
            let expected: HashMap<String, Option<SortKey>> = bin
                .iter()
                .map(|e| (e.instance_id.clone(), merge.passed_of(&e.instance_id)))
                .collect();
            let engine = self.clone();
            bins.spawn(async move {
                let result = engine.apply_bin(&bin, &expected, replay).await;
                (bin, result)
            });
        }
        // The next window's events are read while this one's bins apply (a read between
        // windows was a fifth of a run).
        let topped_up = merge.top_up(self, target).await;
        let mut batch = Outcome::default();
        let mut written = 0;
        let mut first_error = topped_up.err();
        while let Some(joined) = bins.join_next().await {
            let (mut bin, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    first_error.get_or_insert(Error::internal_with("an ordered bin panicked", e));
                    continue;
                }
            };
            match result {
                Ok(applied) => {
                    for (instance, outcome) in applied.counts {
                        batch.add(outcome);
                        outcomes.entry(instance).or_default().add(outcome);
                    }
                    written += applied.written;
                    let rest = bin.split_off(applied.done);
                    merge.passed(&bin);
                    merge.put_back(rest);
                    if applied.stop.is_some() {
                        stop = stop.or(applied.stop);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        tracing::debug!(
            events = window,
            bins = ?sizes,
            read_ms = read_at.as_millis() as u64,
            claims_ms = (checked_at - read_at).as_millis() as u64,
            apply_ms = (started.elapsed() - checked_at).as_millis() as u64,
            "ordered window"
        );
        // Beside the next windows rather than between them (it took 0.1-0.2 s each time):
        // ANALYZE does not block writes.
        if self.wrote(written).await? && analysing.as_ref().is_none_or(|a| a.is_finished()) {
            let engine = self.clone();
            *analysing = Some(tokio::spawn(async move {
                if let Err(error) = engine.analyze().await {
                    tracing::warn!(error = %error.chain(), "analysing the tables failed");
                }
            }));
        }
        Ok(stop.map_or(Step::More, Step::Stopped))
    }

    /// One bin of a window in one transaction, under the locks of its instances and only
    /// if their cursors are where the merge left them (else another process moved them:
    /// busy).
    async fn apply_bin(
        &self,
        events: &[StoredEvent],
        expected: &HashMap<String, Option<SortKey>>,
        replay: Option<ReplayV3>,
    ) -> Result<Applied> {
        let started = Instant::now();
        let store = PgStore::new(self.pool().clone());
        let instances: Vec<String> = expected.keys().cloned().collect();
        let busy = Applied {
            stop: Some(Stop::Busy),
            ..Applied::default()
        };
        let mut session = store.transaction().await?;
        if !self.take_bin(&mut session, &instances, expected).await? {
            session.rollback().await?;
            return Ok(busy);
        }
        let failures = self
            .state()
            .failures_among(session.conn()?, &instances)
            .await?;
        let applied = match self
            .apply_ordered(&mut session, events, &failures, replay)
            .await
        {
            Ok((counts, written)) => Applied {
                done: events.len(),
                counts,
                written,
                stop: None,
            },
            Err(Error::Internal { message, source }) => {
                let _ = session.rollback().await;
                return Err(Error::Internal { message, source });
            }
            Err(_) => {
                // Event by event, each in a savepoint, under the same locks taken again.
                let _ = session.rollback().await;
                session = store.transaction().await?;
                if !self.take_bin(&mut session, &instances, expected).await? {
                    session.rollback().await?;
                    return Ok(busy);
                }
                let (done, counts, waits) = self
                    .apply_ordered_isolated(&mut session, events, &failures, replay)
                    .await?;
                Applied {
                    done,
                    counts,
                    written: 0,
                    stop: waits.then_some(Stop::Deferred),
                }
            }
        };
        session.commit().await?;
        let mut total = Outcome::default();
        for outcome in applied.counts.values() {
            total.add(*outcome);
        }
        let newest = events[..applied.done].last().map(|e| e.created_at);
        self.observe_batch(started, &total, newest);
        Ok(applied)
    }

    /// Takes the locks of a bin's instances and checks their cursors: false when another
    /// process holds one or has moved one.
    async fn take_bin(
        &self,
        session: &mut PgSession,
        instances: &[String],
        expected: &HashMap<String, Option<SortKey>>,
    ) -> Result<bool> {
        let locked = self
            .state()
            .try_lock_all(session.conn()?, instances)
            .await?;
        if locked.len() < instances.len() {
            return Ok(false);
        }
        let now = self.state().cursors(session.conn()?, instances).await?;
        Ok(expected
            .iter()
            .all(|(instance, cursor)| now.get(instance) == cursor.as_ref()))
    }

    /// The index of the first add among `events` that must wait for an instance outside
    /// `members` (`crate::claims`), if any.
    async fn first_blocked_add(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[StoredEvent],
        members: &[String],
        replay: Option<ReplayV3>,
    ) -> Result<Option<usize>> {
        let (at, adds): (Vec<usize>, Vec<PendingAdd>) = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event_type == INSTANCE_DOMAIN_ADDED)
            .filter_map(|(n, e)| {
                let domain = e.payload.as_ref()?.get("domain")?.as_str()?;
                Some((
                    n,
                    PendingAdd {
                        instance_id: e.instance_id.clone(),
                        domain: domain.to_owned(),
                        position: e.position,
                        in_tx_order: e.in_tx_order,
                    },
                ))
            })
            .unzip();
        let blocked = self
            .state()
            .blocked_adds(conn, &adds, members, replay.map(|ReplayV3(until)| until))
            .await?;
        let mut blockers = Blockers::new(self.state(), self.fresh(), self.config().bulk_limit);
        for (n, blocker, has_cursor) in blocked {
            if blockers.replays(conn, blocker, has_cursor).await? {
                return Ok(at.get(n).copied());
            }
        }
        Ok(None)
    }

    /// The fast path: the net effect of `events` (several instances, in global order)
    /// written set-based, and each instance's cursor moved to its last event.
    async fn apply_ordered(
        &self,
        session: &mut PgSession,
        events: &[StoredEvent],
        failures: &HashMap<String, HashMap<FailureKey, i16>>,
        replay: Option<ReplayV3>,
    ) -> Result<(HashMap<String, Outcome>, u64)> {
        let none = HashMap::new();
        let mut counts: HashMap<String, Outcome> = HashMap::new();
        let mut changes = Vec::new();
        let mut applied = Vec::new();
        for event in events {
            let failed = failures.get(&event.instance_id).unwrap_or(&none);
            let count = counts.entry(event.instance_id.clone()).or_default();
            if !Self::wanted(event, failed, self.config().max_failure_count, replay) {
                count.skipped += 1;
                continue;
            }
            changes.extend(
                relational::changes(event)?
                    .into_iter()
                    .map(|c| (c, event.created_at)),
            );
            applied.push(event);
        }
        let written = tenancy_postgres::batch::apply_batch(session.conn()?, &changes).await?;
        for event in applied {
            let failed = failures.get(&event.instance_id).unwrap_or(&none);
            clear_recovered(self.state(), session, event, failed).await?;
            counts.entry(event.instance_id.clone()).or_default().applied += 1;
        }
        self.state()
            .set_cursors(session.conn()?, &last_of_each(events))
            .await?;
        Ok((counts, written))
    }

    /// The exact path: event by event in a savepoint, each instance's cursor moved with
    /// each event (the holder check of a conflict reads them). Returns how many events it
    /// passed, the outcome of each instance, and whether it stopped at an add that waits.
    async fn apply_ordered_isolated(
        &self,
        session: &mut PgSession,
        events: &[StoredEvent],
        failures: &HashMap<String, HashMap<FailureKey, i16>>,
        replay: Option<ReplayV3>,
    ) -> Result<(usize, HashMap<String, Outcome>, bool)> {
        let none = HashMap::new();
        let attempts = self.config().max_failure_count.max(1);
        let mut counts: HashMap<String, Outcome> = HashMap::new();
        for (n, event) in events.iter().enumerate() {
            let failed = failures.get(&event.instance_id).unwrap_or(&none);
            let count = counts.entry(event.instance_id.clone()).or_default();
            if !Self::wanted(event, failed, self.config().max_failure_count, replay) {
                count.skipped += 1;
                self.state().set_cursor(session.conn()?, event).await?;
                continue;
            }
            match apply_isolated_event(self.state(), session, event, failed).await? {
                Isolated::Applied => count.applied += 1,
                Isolated::Waits => return Ok((n, counts, true)),
                Isolated::Failed(error) => {
                    self.state()
                        .record_failure(session.conn()?, event, &error.to_string(), attempts)
                        .await?;
                    count.failed += 1;
                    count.skipped += 1;
                    tracing::warn!(instance_id = %event.instance_id, aggregate_id = %event.aggregate_id, sequence = event.sequence, event_type = %event.event_type, error = %error.chain(), "event failed");
                }
            }
            self.state().set_cursor(session.conn()?, event).await?;
        }
        Ok((events.len(), counts, false))
    }
}

/// How one transaction of an ordered catch-up ended.
enum Step {
    /// It committed a batch; there may be more.
    More,
    /// Nothing is left up to the target.
    Done,
    /// It stopped before an event that has to wait (what came before is committed).
    Stopped(Stop),
}

/// Why an ordered catch-up stopped before the target.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// A member is held by another process.
    Busy,
    /// An add waits for an instance outside the component.
    Deferred,
}

/// Waits for the `ANALYZE` started beside the windows, so that none outlives the catch-up.
async fn finish_analysis(analysing: Option<JoinHandle<()>>) {
    if let Some(analysis) = analysing {
        let _ = analysis.await;
    }
}

/// The last event of each instance among `events`.
fn last_of_each(events: &[StoredEvent]) -> Vec<&StoredEvent> {
    let mut last: HashMap<&str, &StoredEvent> = HashMap::new();
    for event in events {
        last.insert(&event.instance_id, event);
    }
    last.into_values().collect()
}

/// What one bin of a window did.
#[derive(Debug, Default)]
struct Applied {
    /// Events of the bin passed (committed), from its start.
    done: usize,
    /// The outcome of each instance.
    counts: HashMap<String, Outcome>,
    /// Rows written (the fast path).
    written: u64,
    /// Why it stopped before its end.
    stop: Option<Stop>,
}

/// A window's events split into at most `bins` bins, each in global order: instances that
/// add or remove one custom domain within the window share a bin, and the groups are
/// spread by their number of events. An instance's removal gives up domains its events do
/// not name: a window holding one is a single bin.
///
/// No more bins than it takes to keep each no larger than the largest group: the window
/// lasts as long as that group's bin, and further bins only take the server's cores from
/// it (the outage benchmark's windows, one group of 1,000–1,350 events of 2,000: four bins
/// 13.2k events/s, two 15.0–16.0k, on 2 cores).
fn bins_of(events: Vec<StoredEvent>, bins: usize) -> Vec<Vec<StoredEvent>> {
    if bins <= 1 || events.iter().any(|e| e.event_type == INSTANCE_REMOVED) {
        return vec![events];
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        let next = index.len();
        index.entry(event.instance_id.as_str()).or_insert(next);
    }
    let mut sets = DisjointSets::new(index.len());
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for event in &events {
        if event.aggregate_type != INSTANCE_AGGREGATE {
            continue;
        }
        let Some(domain) = event
            .payload
            .as_ref()
            .and_then(|p| p.get("domain"))
            .and_then(|d| d.as_str())
        else {
            continue;
        };
        let n = index[event.instance_id.as_str()];
        match first_with.get(&domain.to_ascii_lowercase()) {
            Some(&m) => sets.union(m, n),
            None => {
                first_with.insert(domain.to_ascii_lowercase(), n);
            }
        }
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for event in &events {
        *sizes
            .entry(sets.find(index[event.instance_id.as_str()]))
            .or_default() += 1;
    }
    // Largest groups first, each to the bin with the fewest events so far.
    let mut groups: Vec<(usize, usize)> = sizes.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let largest = groups.first().map_or(1, |g| g.1.max(1));
    let bins = bins.min(events.len().div_ceil(largest)).max(1);
    let mut load = vec![0usize; bins];
    let mut bin_of: HashMap<usize, usize> = HashMap::new();
    for (root, size) in groups {
        let (bin, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .unwrap_or((0, &0));
        load[bin] += size;
        bin_of.insert(root, bin);
    }
    let mut out: Vec<Vec<StoredEvent>> = vec![Vec::new(); bins];
    let roots: Vec<usize> = events
        .iter()
        .map(|e| sets.find(index[e.instance_id.as_str()]))
        .collect();
    drop(index);
    for (event, root) in events.into_iter().zip(roots) {
        out[bin_of[&root]].push(event);
    }
    out.retain(|bin| !bin.is_empty());
    out
}

/// One member of a merge: its events read ahead after its cursor.
#[derive(Debug)]
struct Member {
    instance_id: String,
    /// The last event projected (the cursor), as far as this merge knows.
    passed: Option<SortKey>,
    /// The last event a batch took (in flight until committed or put back).
    taken: Option<SortKey>,
    /// Read ahead, in order, after `taken` (or `passed`).
    buffer: VecDeque<StoredEvent>,
    /// No event after the buffer up to the target.
    exhausted: bool,
}

impl Member {
    fn is_done(&self) -> bool {
        self.exhausted && self.buffer.is_empty()
    }

    /// Where the next read starts.
    fn read_after(&self) -> Option<SortKey> {
        self.buffer
            .back()
            .map(StoredEvent::sort_key)
            .or_else(|| self.taken.clone())
            .or_else(|| self.passed.clone())
    }
}

/// The members' events merged in global sort-key order, read ahead a bounded number at a
/// time; what a batch takes stays in flight until [`Merge::passed`] or [`Merge::put_back`].
#[derive(Debug)]
struct Merge {
    members: Vec<Member>,
    index: HashMap<String, usize>,
    /// Each member's next event, for those that have one read.
    heads: BinaryHeap<Reverse<(SortKey, usize)>>,
    /// Events read per member and read.
    read_ahead: u32,
    /// The cursors have been read once (the first batch sets `passed`).
    started: bool,
}

impl Merge {
    fn new(instances: &[String]) -> Self {
        let share =
            (READ_AHEAD / instances.len().max(1)).clamp(MEMBER_READ_AHEAD.0, MEMBER_READ_AHEAD.1);
        Self {
            members: instances
                .iter()
                .map(|instance| Member {
                    instance_id: instance.clone(),
                    passed: None,
                    taken: None,
                    buffer: VecDeque::new(),
                    exhausted: false,
                })
                .collect(),
            index: instances
                .iter()
                .enumerate()
                .map(|(n, i)| (i.clone(), n))
                .collect(),
            heads: BinaryHeap::new(),
            read_ahead: u32::try_from(share).unwrap_or(u32::MAX),
            started: false,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.instance_id.clone()).collect()
    }

    /// Takes the cursors read under the locks: a member whose cursor is not where this
    /// merge left it (the first time, or moved by another process) starts again there.
    fn follow(&mut self, cursors: &HashMap<String, SortKey>) {
        let first = !std::mem::replace(&mut self.started, true);
        let mut changed = false;
        for member in &mut self.members {
            let cursor = cursors.get(&member.instance_id);
            if first || member.passed.as_ref() != cursor {
                member.passed = cursor.cloned();
                member.taken = None;
                member.buffer.clear();
                member.exhausted = false;
                changed = true;
            }
        }
        if changed {
            self.rebuild_heads();
        }
    }

    /// Where the merge left `instance`'s cursor.
    fn passed_of(&self, instance: &str) -> Option<SortKey> {
        self.index
            .get(instance)
            .and_then(|&n| self.members[n].passed.clone())
    }

    /// Up to `limit` events in global order.
    async fn next_batch(
        &mut self,
        engine: &Engine,
        target: Decimal,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut batch = Vec::new();
        self.fill(engine, target).await?;
        while batch.len() < limit {
            let Some(Reverse((_, n))) = self.heads.pop() else {
                return Ok(batch);
            };
            let member = &mut self.members[n];
            let Some(event) = member.buffer.pop_front() else {
                continue;
            };
            member.taken = Some(event.sort_key());
            batch.push(event);
            match member.buffer.front() {
                Some(next) => self.heads.push(Reverse((next.sort_key(), n))),
                // Its next event may come before every head: read before going on.
                None if !member.exhausted => self.fill(engine, target).await?,
                None => {}
            }
        }
        Ok(batch)
    }

    /// Reads ahead for every member that has nothing read but may have more — all of them
    /// in one statement, with those running low — so the smallest head is known.
    async fn fill(&mut self, engine: &Engine, target: Decimal) -> Result<()> {
        if !self
            .members
            .iter()
            .any(|m| m.buffer.is_empty() && !m.exhausted)
        {
            return Ok(());
        }
        self.top_up(engine, target).await
    }

    /// Reads ahead, in one statement, for every member that may have more and has fewer
    /// than a quarter of its share read, whether or not one has nothing read: also while a
    /// window applies, so that the next one finds its events read.
    async fn top_up(&mut self, engine: &Engine, target: Decimal) -> Result<()> {
        let low = (self.read_ahead as usize / 4).max(1);
        let wanted: Vec<usize> = (0..self.members.len())
            .filter(|&n| !self.members[n].exhausted && self.members[n].buffer.len() < low)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let after: Vec<(String, Option<SortKey>)> = wanted
            .iter()
            .map(|&n| {
                let m = &self.members[n];
                (m.instance_id.clone(), m.read_after())
            })
            .collect();
        let events = engine
            .events()
            .read_each_after(
                &after,
                &relational::aggregate_types(),
                &relational::event_types(),
                Some(target),
                self.read_ahead,
            )
            .await?;
        let mut read: HashMap<usize, u32> = wanted.iter().map(|&n| (n, 0)).collect();
        for event in events {
            let Some(&n) = self.index.get(&event.instance_id) else {
                continue;
            };
            *read.entry(n).or_default() += 1;
            self.members[n].buffer.push_back(event);
        }
        for (n, count) in read {
            if count < self.read_ahead {
                self.members[n].exhausted = true;
            }
        }
        self.rebuild_heads();
        Ok(())
    }

    /// The events of a batch are projected (committed): each member's cursor moves.
    fn passed(&mut self, events: &[StoredEvent]) {
        for event in events {
            if let Some(&n) = self.index.get(&event.instance_id) {
                self.members[n].passed = Some(event.sort_key());
            }
        }
    }

    /// Events taken but not projected go back to the front of their members, in order.
    fn put_back(&mut self, events: Vec<StoredEvent>) {
        for event in events.into_iter().rev() {
            if let Some(&n) = self.index.get(&event.instance_id) {
                self.members[n].buffer.push_front(event);
            }
        }
        self.rebuild_heads();
    }

    fn rebuild_heads(&mut self) {
        self.heads = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(n, m)| m.buffer.front().map(|e| Reverse((e.sort_key(), n))))
            .collect();
    }
}

/// Union-find over instance indexes.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(size: usize) -> Self {
        Self {
            parent: (0..size).collect(),
        }
    }

    fn find(&mut self, mut n: usize) -> usize {
        while self.parent[n] != n {
            self.parent[n] = self.parent[self.parent[n]];
            n = self.parent[n];
        }
        n
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[b] = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use tenancy_core::event::StoredEvent;

    use super::{DisjointSets, bins_of};

    fn event(instance: &str, n: i64, domain: Option<&str>) -> StoredEvent {
        let (aggregate_type, event_type, payload) = match domain {
            Some(domain) => (
                "instance",
                "instance.domain.added",
                serde_json::json!({"domain": domain}),
            ),
            None => ("org", "org.changed", serde_json::json!({"name": "n"})),
        };
        StoredEvent {
            instance_id: instance.into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: instance.into(),
            event_type: event_type.into(),
            sequence: n,
            revision: 1,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            payload: Some(payload),
            creator: "u".into(),
            owner: instance.into(),
            position: Decimal::new(n, 0),
            in_tx_order: 1,
            written_by_v3: false,
        }
    }

    fn instances_of(bin: &[StoredEvent]) -> Vec<&str> {
        let mut instances: Vec<&str> = bin.iter().map(|e| e.instance_id.as_str()).collect();
        instances.sort_unstable();
        instances.dedup();
        instances
    }

    #[test]
    fn a_window_gets_no_more_bins_than_its_largest_group_needs() {
        // a and b add the same domain: one group of 6 events; c, d and e one event each.
        let mut events = Vec::new();
        for n in 0..3 {
            events.push(event("a", 2 * n, (n == 1).then_some("x.example")));
            events.push(event("b", 2 * n + 1, (n == 2).then_some("X.example")));
        }
        for (n, instance) in ["c", "d", "e"].into_iter().enumerate() {
            events.push(event(instance, 10 + n as i64, None));
        }
        let bins = bins_of(events, 4);
        assert_eq!(
            bins.len(),
            2,
            "{:?}",
            bins.iter().map(|b| instances_of(b)).collect::<Vec<_>>()
        );
        assert_eq!(instances_of(&bins[0]), ["a", "b"]);
        assert_eq!(instances_of(&bins[1]), ["c", "d", "e"]);
        assert!(bins[0].windows(2).all(|w| w[0].position < w[1].position));

        // Six instances of one event each, nothing shared: as many bins as allowed.
        let events: Vec<StoredEvent> = (0..6).map(|n| event(&format!("i{n}"), n, None)).collect();
        let bins = bins_of(events, 4);
        assert_eq!(bins.len(), 4);
        assert_eq!(bins.iter().map(Vec::len).sum::<usize>(), 6);
    }

    #[test]
    fn disjoint_sets_join_what_shares_a_domain_and_nothing_else() {
        let mut sets = DisjointSets::new(5);
        sets.union(0, 3);
        sets.union(3, 4);
        assert_eq!(sets.find(0), sets.find(4));
        assert_ne!(sets.find(0), sets.find(1));
        assert_ne!(sets.find(1), sets.find(2));
    }
}
