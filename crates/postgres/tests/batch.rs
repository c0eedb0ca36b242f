//! The set-based batch writer (`tenancy_postgres::batch`) against change-by-change
//! application (`tenancy_postgres::apply`), on random changes over a small world of
//! instances, organizations, names and domains that differ only in letter case, so that
//! collisions, primaries, re-adds and removals are frequent. A batch the set-based writer
//! takes must leave exactly the rows the changes leave one by one; a batch it refuses
//! goes change by change, as the projection's fallback does.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use sqlx::PgConnection;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{
    InstanceDomainKind, InstanceDomainType, OrganizationState, ValidationType,
};
use tenancy_core::state::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate, StateChange, TableRows,
};
use tenancy_postgres::apply::apply_change;
use tenancy_postgres::batch::apply_batch;
use tenancy_postgres::dump::all_rows;
use tenancy_testkit::db::TestDatabase;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
const INSTANCES: [&str; 2] = ["a", "b"];
const ORGS: [&str; 3] = ["o1", "o2", "o3"];
const NAMES: [&str; 3] = ["North", "north", "South"];
const DOMAINS: [&str; 4] = ["x.test", "X.test", "y.test", "z.test"];

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    fn flip(&mut self) -> bool {
        self.below(2) == 0
    }
}

fn change(rng: &mut Rng) -> StateChange {
    let instance_id = InstanceId::new(rng.pick(&INSTANCES)).unwrap();
    let org_id = OrgId::new(rng.pick(&ORGS)).unwrap();
    let domain = rng.pick(&DOMAINS).to_owned();
    let name = rng.pick(&NAMES).to_owned();
    let validation_type = if rng.flip() {
        ValidationType::Http
    } else {
        ValidationType::Dns
    };
    match rng.below(26) {
        0 => InstanceChange::Create {
            id: instance_id,
            name,
        }
        .into(),
        1 => InstanceChange::Update {
            id: instance_id,
            update: InstanceUpdate {
                name: rng.flip().then_some(name),
                default_org_id: rng.flip().then(|| org_id.to_string()),
                ..InstanceUpdate::default()
            },
        }
        .into(),
        2 => InstanceChange::Remove { id: instance_id }.into(),
        3 | 4 => OrganizationChange::Create {
            instance_id,
            id: org_id,
            name,
        }
        .into(),
        5 => OrganizationChange::Update {
            instance_id,
            id: org_id,
            update: OrganizationUpdate {
                name: rng.flip().then_some(name),
                state: rng.flip().then_some(OrganizationState::Inactive),
            },
        }
        .into(),
        6 => OrganizationChange::Remove {
            instance_id,
            id: org_id,
        }
        .into(),
        7 => OrganizationChange::RemoveAllOfInstance { instance_id }.into(),
        8 => InstanceDomainChange::Insert {
            instance_id,
            domain,
            kind: if rng.flip() {
                InstanceDomainKind::Trusted
            } else {
                InstanceDomainKind::Custom {
                    is_primary: rng.flip(),
                    is_generated: rng.flip(),
                }
            },
        }
        .into(),
        9 => InstanceDomainChange::SetPrimary {
            instance_id,
            domain,
        }
        .into(),
        10 => InstanceDomainChange::Delete {
            instance_id,
            domain,
            domain_type: if rng.flip() {
                InstanceDomainType::Custom
            } else {
                InstanceDomainType::Trusted
            },
        }
        .into(),
        11 => InstanceDomainChange::DeleteAllOfInstance { instance_id }.into(),
        12 => OrgDomainChange::Insert {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        13 => OrgDomainChange::SetValidation {
            instance_id,
            org_id,
            domain,
            validation_type,
        }
        .into(),
        14 => OrgDomainChange::SetVerified {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        15 => OrgDomainChange::SetPrimary {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        16 => OrgDomainChange::Delete {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        17 => OrgDomainChange::DeleteAllOfOrg {
            instance_id,
            org_id,
        }
        .into(),
        18 => DomainChange::AddInstanceDomain {
            instance_id,
            domain,
        }
        .into(),
        19 => DomainChange::SetInstanceDomainPrimary {
            instance_id,
            domain,
        }
        .into(),
        20 => DomainChange::RemoveInstanceDomain {
            instance_id,
            domain,
        }
        .into(),
        21 => DomainChange::AddOrganizationDomain {
            instance_id,
            org_id,
            domain,
            validation_type: rng.flip().then_some(validation_type),
        }
        .into(),
        22 => DomainChange::SetOrganizationDomainVerified {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        23 => DomainChange::SetOrganizationDomainPrimary {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        24 => DomainChange::RemoveOrganizationDomain {
            instance_id,
            org_id,
            domain,
        }
        .into(),
        _ => match rng.below(4) {
            0 => DomainChange::RemoveDomainsOfOrganization {
                instance_id,
                org_id,
            }
            .into(),
            1 => DomainChange::RemoveDomainsOfInstance { instance_id }.into(),
            2 => OrgDomainChange::DeleteAllOfInstance { instance_id }.into(),
            _ => DomainChange::SetOrganizationDomainValidationType {
                instance_id,
                org_id,
                domain,
                validation_type,
            }
            .into(),
        },
    }
}

/// Change by change, each in a savepoint; a change that fails is left out. Returns how
/// many failed.
async fn one_by_one(conn: &mut PgConnection, changes: &[(StateChange, OffsetDateTime)]) -> usize {
    let mut failed = 0;
    for (change, at) in changes {
        sqlx::query("SAVEPOINT one")
            .execute(&mut *conn)
            .await
            .unwrap();
        let statement = if apply_change(conn, change, *at).await.is_ok() {
            "RELEASE SAVEPOINT one"
        } else {
            failed += 1;
            "ROLLBACK TO SAVEPOINT one"
        };
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
    failed
}

/// The rows with the unified domains' ids replaced by their rank (identity values that a
/// rolled-back attempt consumed differ; the order they number rows in may not).
async fn rows(db: &TestDatabase) -> TableRows {
    let mut rows = all_rows(&db.pool).await.unwrap();
    rows.domains.sort_by_key(|d| d.id);
    for (rank, d) in rows.domains.iter_mut().enumerate() {
        d.id = rank as i64;
    }
    rows.instances.sort_by(|a, b| a.id.cmp(&b.id));
    rows.organizations
        .sort_by(|a, b| (&a.instance_id, &a.id).cmp(&(&b.instance_id, &b.id)));
    rows.instance_domains.sort_by(|a, b| {
        (&a.instance_id, a.kind.domain_type(), &a.domain).cmp(&(
            &b.instance_id,
            b.kind.domain_type(),
            &b.domain,
        ))
    });
    rows.org_domains.sort_by(|a, b| {
        (&a.instance_id, &a.org_id, &a.domain).cmp(&(&b.instance_id, &b.org_id, &b.domain))
    });
    rows
}

#[tokio::test]
async fn set_based_batches_leave_the_rows_that_changes_one_by_one_leave() {
    let (batched, reference) = (
        TestDatabase::fresh().await.expect("test database"),
        TestDatabase::fresh().await.expect("test database"),
    );
    let (mut taken, mut refused, mut at) = (0, 0, T0);
    for seed in 1..=25u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut stream: Vec<StateChange> = INSTANCES
            .iter()
            .map(|i| {
                InstanceChange::Create {
                    id: InstanceId::new(*i).unwrap(),
                    name: format!("Instance {i}"),
                }
                .into()
            })
            .collect();
        stream.extend((0..60).map(|_| change(&mut rng)));
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let size = (1 + rng.below(16)).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let batch: Vec<_> = chunk
                .iter()
                .map(|c| {
                    at += Duration::seconds(1);
                    (c.clone(), at)
                })
                .collect();

            let mut tx = reference.pool.begin().await.unwrap();
            let failed = one_by_one(&mut tx, &batch).await;
            tx.commit().await.unwrap();

            let mut tx = batched.pool.begin().await.unwrap();
            let outcome = apply_batch(&mut tx, &batch).await;
            // The loaded rows show every collision: a batch is refused exactly when one of
            // its changes fails on its own (no needless fallback, no missed failure).
            assert_eq!(
                outcome.is_ok(),
                failed == 0,
                "seed {seed}: {outcome:?} where {failed} changes fail one by one: {batch:#?}"
            );
            if outcome.is_ok() {
                taken += 1;
                tx.commit().await.unwrap();
            } else {
                refused += 1;
                tx.rollback().await.unwrap();
                let mut tx = batched.pool.begin().await.unwrap();
                one_by_one(&mut tx, &batch).await;
                tx.commit().await.unwrap();
            }
            assert_eq!(
                rows(&batched).await,
                rows(&reference).await,
                "seed {seed}: the batch {batch:#?} left other rows than change by change"
            );
        }
        for db in [&batched, &reference] {
            sqlx::query(
                "TRUNCATE domains, org_domains, instance_domains, organizations, instances",
            )
            .execute(&db.pool)
            .await
            .unwrap();
        }
    }
    // Both ways must have been exercised.
    assert!(
        taken > 50 && refused > 50,
        "taken {taken}, refused {refused}"
    );
}

/// Instance "A" and its organization "North".
fn instance_with_org(instance_id: &InstanceId, org_id: &OrgId) -> Vec<StateChange> {
    vec![
        InstanceChange::Create {
            id: instance_id.clone(),
            name: "A".into(),
        }
        .into(),
        OrganizationChange::Create {
            instance_id: instance_id.clone(),
            id: org_id.clone(),
            name: "North".into(),
        }
        .into(),
    ]
}

/// Each change at `T0`.
fn at_t0(changes: Vec<StateChange>) -> Vec<(StateChange, OffsetDateTime)> {
    changes.into_iter().map(|c| (c, T0)).collect()
}

/// `changes` applied set-based as one batch at `T0` and committed (rolled back on error).
async fn commit_batch(db: &TestDatabase, changes: Vec<StateChange>) -> tenancy_core::Result<u64> {
    let mut tx = db.pool.begin().await.unwrap();
    let outcome = apply_batch(&mut tx, &at_t0(changes)).await;
    if outcome.is_ok() {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    outcome
}

/// `setup` with the primary set to x.test by `moves`, then the primary moved to y.test in
/// a batch of its own; the rows after.
async fn primary_moved(
    db: &TestDatabase,
    mut setup: Vec<StateChange>,
    moves: impl Fn(&str) -> Vec<StateChange>,
) -> TableRows {
    setup.extend(moves("x.test"));
    commit_batch(db, setup)
        .await
        .expect("the setup applies as one batch");
    commit_batch(db, moves("y.test"))
        .await
        .expect("the old primary is demoted, not collided with");
    rows(db).await
}

/// A batch reads the rows its keys name, not the table: each key arm of the loads is an
/// index probe per key whatever the planner estimates (`tenancy_postgres::batch`). Joined
/// plainly, a batch naming a few hundred domains hashed every live custom domain and every
/// verified organization domain of every instance, so each batch cost more as the tables
/// grew.
#[tokio::test]
async fn a_batch_reads_the_rows_it_names_not_the_whole_table() {
    let db = TestDatabase::fresh().await.expect("test database");
    // 100 instances, each with 100 custom domains and an organization with 20 verified ones.
    for statement in [
        "INSERT INTO instances (id, name) SELECT 'i' || n, 'Instance ' || n FROM generate_series(0, 99) n",
        "INSERT INTO organizations (instance_id, id, name) SELECT 'i' || n, 'o', 'Org' FROM generate_series(0, 99) n",
        "INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         SELECT 'i' || n, 'c' || k || '.i' || n || '.test', 'custom', false, false
         FROM generate_series(0, 99) n, generate_series(0, 99) k",
        "INSERT INTO domains (instance_id, domain)
         SELECT instance_id, domain FROM instance_domains",
        "INSERT INTO org_domains (instance_id, org_id, domain, is_verified)
         SELECT 'i' || n, 'o', 'v' || k || '.i' || n || '.test', true
         FROM generate_series(0, 99) n, generate_series(0, 19) k",
        "INSERT INTO domains (instance_id, org_id, domain, is_verified)
         SELECT instance_id, org_id, domain, true FROM org_domains",
        "ANALYZE",
    ] {
        sqlx::query(statement).execute(&db.pool).await.unwrap();
    }
    let instance_id = InstanceId::new("i0").unwrap();
    let org_id = OrgId::new("o").unwrap();
    let mut changes: Vec<(StateChange, OffsetDateTime)> = Vec::new();
    for k in 0..300 {
        let domain = format!("new{k}.i0.test");
        changes.push((
            InstanceDomainChange::Insert {
                instance_id: instance_id.clone(),
                domain: domain.clone(),
                kind: InstanceDomainKind::Custom {
                    is_primary: false,
                    is_generated: false,
                },
            }
            .into(),
            T0,
        ));
        changes.push((
            DomainChange::AddInstanceDomain {
                instance_id: instance_id.clone(),
                domain,
            }
            .into(),
            T0,
        ));
        let org_domain = format!("org{k}.i0.test");
        changes.push((
            OrgDomainChange::Insert {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: org_domain.clone(),
            }
            .into(),
            T0,
        ));
        changes.push((
            DomainChange::AddOrganizationDomain {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: org_domain,
                validation_type: None,
            }
            .into(),
            T0,
        ));
    }
    let mut tx = db.pool.begin().await.unwrap();
    // The rows this session's scans returned from each table (index, bitmap and
    // sequential) before and after the batch: the counts not yet reported include what
    // the set-up read.
    let tables = ["domains", "instance_domains", "org_domains"];
    let before = rows_read(&mut tx, &tables).await;
    apply_batch(&mut tx, &changes).await.unwrap();
    let after = rows_read(&mut tx, &tables).await;
    tx.rollback().await.unwrap();
    assert_eq!(after.len(), 3, "{after:?}");
    for ((table, after), (_, before)) in after.into_iter().zip(before) {
        // The 20 domains of i0's organization are the only rows the batch names.
        assert!(
            after - before <= 100,
            "a batch naming 600 new domains of one instance read {} rows of {table} (of 2,000–12,000)",
            after - before
        );
    }
}

/// The rows this transaction's scans returned from each of `tables`, in name order.
async fn rows_read(conn: &mut PgConnection, tables: &[&str]) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT relname::text, coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)
         FROM pg_stat_xact_user_tables
         WHERE relname = ANY($1)
         ORDER BY relname",
    )
    .bind(tables)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// A batch that verifies, validates or removes domains of an organization reads no row of
/// `organizations`: only a new domain checks that its organization exists. Read for every
/// change of a domain, it was the largest of a catch-up's loads.
#[tokio::test]
async fn a_batch_changing_existing_org_domains_reads_no_organization() {
    let db = TestDatabase::fresh().await.expect("test database");
    let instance_id = InstanceId::new("a").unwrap();
    let org_id = OrgId::new("o1").unwrap();
    let mut setup = instance_with_org(&instance_id, &org_id);
    let mut changes: Vec<StateChange> = Vec::new();
    for k in 0..20 {
        let (instance_id, org_id, domain) =
            (instance_id.clone(), org_id.clone(), format!("d{k}.a.test"));
        setup.push(
            OrgDomainChange::Insert {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
            }
            .into(),
        );
        setup.push(
            DomainChange::AddOrganizationDomain {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
                validation_type: None,
            }
            .into(),
        );
        changes.extend([
            OrgDomainChange::SetValidation {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
                validation_type: ValidationType::Dns,
            }
            .into(),
            DomainChange::SetOrganizationDomainValidationType {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
                validation_type: ValidationType::Dns,
            }
            .into(),
            OrgDomainChange::SetVerified {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
            }
            .into(),
            DomainChange::SetOrganizationDomainVerified {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
            }
            .into(),
            OrgDomainChange::Delete {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.clone(),
            }
            .into(),
            DomainChange::RemoveOrganizationDomain {
                instance_id,
                org_id,
                domain,
            }
            .into(),
        ]);
    }
    commit_batch(&db, setup)
        .await
        .expect("the setup applies as one batch");

    let mut tx = db.pool.begin().await.unwrap();
    let before = rows_read(&mut tx, &["organizations"]).await;
    let changed = apply_batch(&mut tx, &at_t0(changes)).await.unwrap();
    let after = rows_read(&mut tx, &["organizations"]).await;
    tx.rollback().await.unwrap();
    assert!(changed > 0, "the batch changed the domains");
    assert_eq!(after, before, "rows of organizations read");
}

/// A batch probes `instance_domains` for the rows of the type each change names: a custom
/// domain's change reads no trusted row and a trusted domain's change no custom row (the
/// key is (instance, type, domain)). It probed both for every domain named, one index
/// probe in five of a custom domain's add.
#[tokio::test]
async fn a_batch_probes_instance_domains_of_the_type_each_change_names() {
    let db = TestDatabase::fresh().await.expect("test database");
    let instance_id = InstanceId::new("a").unwrap();
    commit_batch(
        &db,
        instance_with_org(&instance_id, &OrgId::new("o1").unwrap()),
    )
    .await
    .expect("the setup applies as one batch");
    let mut changes: Vec<StateChange> = Vec::new();
    for k in 0..50 {
        for (domain, kind) in [
            (
                format!("c{k}.a.test"),
                InstanceDomainKind::Custom {
                    is_primary: false,
                    is_generated: false,
                },
            ),
            (format!("t{k}.a.test"), InstanceDomainKind::Trusted),
        ] {
            changes.push(
                InstanceDomainChange::Insert {
                    instance_id: instance_id.clone(),
                    domain,
                    kind,
                }
                .into(),
            );
        }
    }
    let mut tx = db.pool.begin().await.unwrap();
    let before = index_scans(&mut tx, "instance_domains").await;
    let changed = apply_batch(&mut tx, &at_t0(changes)).await.unwrap();
    let after = index_scans(&mut tx, "instance_domains").await;
    tx.rollback().await.unwrap();
    assert_eq!(changed, 100, "every domain inserted");
    // One probe per domain for its own row, and one per custom domain across instances
    // (unique across instances): 150; with both types probed for every domain, 250.
    assert!(
        after - before <= 160,
        "100 new domains, 50 of them custom, probed instance_domains {} times",
        after - before
    );
}

/// The index scans of `table` this transaction started (each probe of a nested loop is one).
async fn index_scans(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// A batch that moves an organization's primary domain reads the old primary, which no
/// key of the change names, so that it demotes it (in both domain tables) instead of
/// colliding with it in the primary's unique index.
#[tokio::test]
async fn a_batch_moving_an_org_primary_demotes_the_old_one() {
    let db = TestDatabase::fresh().await.expect("test database");
    let instance_id = InstanceId::new("a").unwrap();
    let org_id = OrgId::new("o1").unwrap();
    let mut setup = instance_with_org(&instance_id, &org_id);
    for domain in ["x.test", "y.test"] {
        setup.push(
            DomainChange::AddOrganizationDomain {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.into(),
                validation_type: None,
            }
            .into(),
        );
        setup.push(
            OrgDomainChange::Insert {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.into(),
            }
            .into(),
        );
    }
    let moves = |domain: &str| -> Vec<StateChange> {
        vec![
            DomainChange::SetOrganizationDomainPrimary {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.into(),
            }
            .into(),
            OrgDomainChange::SetPrimary {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
                domain: domain.into(),
            }
            .into(),
        ]
    };
    let rows = primary_moved(&db, setup, moves).await;
    let primaries = |table: Vec<(String, bool)>| -> Vec<String> {
        table
            .into_iter()
            .filter(|(_, primary)| *primary)
            .map(|(d, _)| d)
            .collect()
    };
    let unified = rows
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d.is_primary))
        .collect();
    let org = rows
        .org_domains
        .iter()
        .map(|d| (d.domain.clone(), d.is_primary))
        .collect();
    assert_eq!(primaries(unified), ["y.test"]);
    assert_eq!(primaries(org), ["y.test"]);
}

/// The same for an instance's primary domain, in `instance_domains` and at instance level
/// in `domains`: a batch that only names the new primary reads the old one.
#[tokio::test]
async fn a_batch_moving_an_instance_primary_demotes_the_old_one() {
    let db = TestDatabase::fresh().await.expect("test database");
    let instance_id = InstanceId::new("a").unwrap();
    let mut setup: Vec<StateChange> = vec![
        InstanceChange::Create {
            id: instance_id.clone(),
            name: "A".into(),
        }
        .into(),
    ];
    for domain in ["x.test", "y.test"] {
        setup.push(
            InstanceDomainChange::Insert {
                instance_id: instance_id.clone(),
                domain: domain.into(),
                kind: InstanceDomainKind::Custom {
                    is_primary: false,
                    is_generated: false,
                },
            }
            .into(),
        );
        setup.push(
            DomainChange::AddInstanceDomain {
                instance_id: instance_id.clone(),
                domain: domain.into(),
            }
            .into(),
        );
    }
    let moves = |domain: &str| -> Vec<StateChange> {
        vec![
            InstanceDomainChange::SetPrimary {
                instance_id: instance_id.clone(),
                domain: domain.into(),
            }
            .into(),
            DomainChange::SetInstanceDomainPrimary {
                instance_id: instance_id.clone(),
                domain: domain.into(),
            }
            .into(),
        ]
    };
    let rows = primary_moved(&db, setup, moves).await;
    let unified: Vec<&str> = rows
        .domains
        .iter()
        .filter(|d| d.is_primary)
        .map(|d| d.domain.as_str())
        .collect();
    let custom: Vec<&str> = rows
        .instance_domains
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                InstanceDomainKind::Custom {
                    is_primary: true,
                    ..
                }
            )
        })
        .map(|d| d.domain.as_str())
        .collect();
    assert_eq!(unified, ["y.test"]);
    assert_eq!(custom, ["y.test"]);
}

/// A batch whose intermediate state collides is refused even when its end state would
/// not: verifying a domain that another organization of the instance holds verified, then
/// removing it again, fails one by one (the verification), so the batch must fail too and
/// the event be recorded as failed. Only the read of the verified rows of the domain a
/// change verifies shows the other organization's row, which no other key names.
#[tokio::test]
async fn a_batch_verifying_a_domain_another_org_holds_verified_is_refused() {
    let db = TestDatabase::fresh().await.expect("test database");
    let instance_id = InstanceId::new("a").unwrap();
    let (o1, o2) = (OrgId::new("o1").unwrap(), OrgId::new("o2").unwrap());
    let domain = "x.test".to_owned();
    let verify = |org: &OrgId| -> Vec<StateChange> {
        vec![
            OrgDomainChange::SetVerified {
                instance_id: instance_id.clone(),
                org_id: org.clone(),
                domain: domain.clone(),
            }
            .into(),
            DomainChange::SetOrganizationDomainVerified {
                instance_id: instance_id.clone(),
                org_id: org.clone(),
                domain: domain.clone(),
            }
            .into(),
        ]
    };
    let mut setup: Vec<StateChange> = vec![
        InstanceChange::Create {
            id: instance_id.clone(),
            name: "A".into(),
        }
        .into(),
    ];
    for (org, name) in [(&o1, "North"), (&o2, "South")] {
        setup.push(
            OrganizationChange::Create {
                instance_id: instance_id.clone(),
                id: org.clone(),
                name: name.into(),
            }
            .into(),
        );
        setup.push(
            OrgDomainChange::Insert {
                instance_id: instance_id.clone(),
                org_id: org.clone(),
                domain: domain.clone(),
            }
            .into(),
        );
        setup.push(
            DomainChange::AddOrganizationDomain {
                instance_id: instance_id.clone(),
                org_id: org.clone(),
                domain: domain.clone(),
                validation_type: None,
            }
            .into(),
        );
    }
    setup.extend(verify(&o1));
    commit_batch(&db, setup)
        .await
        .expect("the setup applies as one batch");

    // Each table on its own: the other table's check must not hide a missing read.
    let [org_verify, unified_verify] = <[StateChange; 2]>::try_from(verify(&o2)).unwrap();
    let batches = [
        vec![
            org_verify,
            OrgDomainChange::Delete {
                instance_id: instance_id.clone(),
                org_id: o2.clone(),
                domain: domain.clone(),
            }
            .into(),
        ],
        vec![
            unified_verify,
            DomainChange::RemoveOrganizationDomain {
                instance_id: instance_id.clone(),
                org_id: o2.clone(),
                domain: domain.clone(),
            }
            .into(),
        ],
    ];
    for batch in batches {
        let batch = at_t0(batch);
        let mut tx = db.pool.begin().await.unwrap();
        assert_eq!(
            one_by_one(&mut tx, &batch).await,
            1,
            "the verification fails"
        );
        tx.rollback().await.unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        let outcome = apply_batch(&mut tx, &batch).await;
        tx.rollback().await.unwrap();
        assert!(
            outcome.is_err(),
            "the batch took what fails one by one: {batch:?}"
        );
    }
}
