//! Listing organizations 100 per page through the repository: keyset paging (a walk over
//! every page) against offset paging at the last page, at several numbers of
//! organizations in one instance.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tenancy_core::id::InstanceId;
use tenancy_core::ports::OrganizationRepository;
use tenancy_core::query::{Keyset, NameSort, OrganizationCriteria, Pagination, SortOrder};
use tenancy_postgres::PgStore;
use tenancy_testkit::db::TestDatabase;

use crate::{Args, Figure};

const PAGE: u32 = 100;

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let sizes: &[i32] = if args.quick {
        &[2_000, 10_000]
    } else {
        &[10_000, 100_000]
    };
    let mut figures = Vec::new();
    for &orgs in sizes {
        figures.push(one_size(orgs).await?);
    }
    Ok(figures)
}

/// Instance `i1` with `orgs` organizations (names in random order), then `VACUUM
/// ANALYZE`, as an operator would after an import.
pub(crate) async fn fill_orgs(pool: &sqlx::PgPool, orgs: i32) -> Result<()> {
    sqlx::raw_sql("INSERT INTO instances (id, name) VALUES ('i1', 'Big')")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO organizations (instance_id, id, name, created_at)
         SELECT 'i1', 'o' || n, 'Organization ' || md5(n::text), now() - n * interval '1 second'
           FROM generate_series(1, $1) n",
    )
    .bind(orgs)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

async fn one_size(orgs: i32) -> Result<Figure> {
    let db = TestDatabase::fresh().await?;
    fill_orgs(&db.pool, orgs).await?;
    let store = PgStore::new(db.pool.clone());
    let mut session = store.session().await?;
    let criteria = OrganizationCriteria {
        instance_id: Some(InstanceId::new("i1")?),
        ..OrganizationCriteria::default()
    };

    // Keyset: the whole walk, page after page.
    let started = Instant::now();
    let (mut pages, mut after) = (0u32, None);
    loop {
        let page = Pagination::after(NameSort::Name, SortOrder::Ascending, PAGE, after);
        let rows = session.list_organizations(&criteria, &page).await?;
        let Some(last) = rows.last() else { break };
        after = Some(Keyset::of_named(
            NameSort::Name,
            &last.name,
            last.created_at,
            last.updated_at,
            last.id.as_str(),
        ));
        pages += 1;
    }
    let keyset = f64::from(pages) / started.elapsed().as_secs_f64();

    // Offset: the last page, repeatedly (as a client paging to the end would meet it).
    let last_offset = u64::try_from(orgs)? - u64::from(PAGE);
    let repeats = 20;
    let started = Instant::now();
    for _ in 0..repeats {
        let page = Pagination::page(NameSort::Name, SortOrder::Ascending, PAGE, last_offset);
        let rows = session.list_organizations(&criteria, &page).await?;
        anyhow::ensure!(rows.len() == PAGE as usize, "the last page is full");
    }
    let offset = f64::from(repeats)
        / started
            .elapsed()
            .as_secs_f64()
            .max(Duration::from_nanos(1).as_secs_f64());
    println!(
        "list organizations ({orgs}): keyset {keyset:.0} pages/s over {pages} pages; offset at the last page {offset:.1} pages/s"
    );
    Ok(Figure::throughput(
        &format!("list orgs keyset, {orgs} orgs"),
        keyset,
        offset,
        "offset paging at the last page",
        "pages/s",
        json!({"orgs": orgs, "page": PAGE, "pages": pages}),
    ))
}
