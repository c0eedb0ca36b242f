//! A batch of state changes applied set-based: the rows the changes can touch or collide
//! with are read (locked, for the rows of the batch's own instances), the changes are
//! applied in order to the in-memory model of those rows (the same rules as the schema),
//! and only the net difference is written, a few statements per table. The schema's
//! indexes still judge the result: a collision the loaded rows could not show (a row
//! written concurrently) fails the write, and the caller falls back to applying change by
//! change (`crate::apply`).
//!
//! Exactness rests on the load: every row a change addresses, and every row that a unique
//! index could compare with a value the batch writes (a name, a domain, the primary of an
//! owner), is in the model, so an intermediate state that would collide collides there.
//!
//! Every lookup of a load by the batch's keys — the arms that find and lock the rows
//! its changes need (`crate::keys`), the other instances' rows of a domain a change
//! adds — is a lateral subquery fenced by `OFFSET 0` or `FOR UPDATE`, so it runs as one
//! index probe per key whatever the estimates say. Joined plainly, the planner hashed
//! or merged the whole table once a batch named a few hundred keys (every live custom
//! domain, every verified one, the primary key end to end), so each batch cost more as
//! the tables grew: at 430 instances 8 of 12 ms of a `domains` load, 14 of 22 ms of an
//! `instance_domains` load (`tests/batch.rs` counts the rows a batch reads). Each arm
//! locks what its probe finds, in the order found: every row locked belongs to one of
//! the batch's instances, and the projection applies a batch under those instances'
//! locks, which keep every other batch out, so two loads never wait for each other.

use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tenancy_core::state::{InMemoryState, RowDiff, StateChange, Table, TableRows};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::keys::BatchKeys;
use crate::rows::Write;
use crate::{domain, instance, instance_domain, org_domain, organization};

/// Applies `changes` in order, each at its time, set-based (see the module). All or
/// nothing: an error leaves the transaction to be rolled back (or rolled back to a
/// savepoint) by the caller. Returns the rows written.
pub async fn apply_batch(
    conn: &mut PgConnection,
    changes: &[(StateChange, OffsetDateTime)],
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let keys = BatchKeys::of(changes.iter().map(|(c, _)| c));
    let loaded = TableRows {
        instances: instance::load(conn, &keys).await?,
        organizations: organization::load(conn, &keys).await?,
        instance_domains: instance_domain::load(conn, &keys).await?,
        org_domains: org_domain::load(conn, &keys).await?,
        domains: domain::load(conn, &keys).await?,
    };
    let rows_loaded = loaded.len();
    let loaded_at = started.elapsed();
    let mut state = InMemoryState::from_rows(loaded);
    let before = state.clone();
    for (change, at) in changes {
        state.apply(change, *at)?;
    }
    let diff = state.diff(&before);
    let folded_at = started.elapsed();
    let written = write_rows(conn, &diff).await?;
    // Where a batch's time goes (the outage benchmark's profile: RUST_LOG=tenancy_postgres=debug).
    tracing::debug!(
        changes = changes.len(),
        rows_loaded,
        rows_written = written,
        load_us = micros(loaded_at),
        fold_us = micros(folded_at - loaded_at),
        write_us = micros(started.elapsed() - folded_at),
        "batch applied"
    );
    Ok(written)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Writes a difference of rows: deletes first (children before parents), then per table,
/// parents first, the updates (rows giving up a unique claim first) and the inserts.
/// Exhaustive over the table registry: a new table does not compile until it is written.
/// Returns the rows written.
pub async fn write_rows(conn: &mut PgConnection, diff: &RowDiff) -> Result<u64> {
    let (deleted, updated, inserted) = (&diff.deleted, &diff.updated, &diff.inserted);
    for table in Table::ALL.into_iter().rev() {
        if deleted.len_of(table) == 0 {
            continue;
        }
        match table {
            Table::OrgDomains => org_domain::delete(conn, &deleted.org_domains).await?,
            Table::InstanceDomains => {
                instance_domain::delete(conn, &deleted.instance_domains).await?;
            }
            Table::Instances | Table::Organizations | Table::Domains => {
                return Err(Error::internal(format!(
                    "a change removed a row of {table}, whose rows are only soft-deleted"
                )));
            }
        }
    }
    for table in Table::ALL {
        for (rows, how) in [(updated, Write::Update), (inserted, Write::Insert)] {
            match table {
                Table::Instances => instance::write(conn, &rows.instances, how).await?,
                Table::Organizations => organization::write(conn, &rows.organizations, how).await?,
                Table::InstanceDomains => {
                    instance_domain::write(conn, &rows.instance_domains, how).await?;
                }
                Table::OrgDomains => org_domain::write(conn, &rows.org_domains, how).await?,
                Table::Domains => domain::write(conn, &rows.domains, how).await?,
            }
        }
    }
    Ok(diff.len() as u64)
}
