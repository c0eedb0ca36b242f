//! The Citus plan of `docs/src/scale-out.md` still fits the schema: every table of a migrated
//! database is classified there, and every primary key, unique index and foreign key of a
//! distributed table contains its distribution column, or is a documented exception.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use tenancy_testkit::db::TestDatabase;

const PLAN: &str = include_str!("../../../docs/src/scale-out.md");

/// The rows of the markdown table between `<!-- BEGIN name -->` and `<!-- END name -->`,
/// header and rule left out, cells trimmed.
fn rows(name: &str) -> Vec<Vec<String>> {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    let start = PLAN.find(&begin).expect("the BEGIN marker") + begin.len();
    let stop = start + PLAN[start..].find(&end).expect("the END marker");
    PLAN[start..stop]
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn every_constraint_of_a_distributed_table_holds_its_distribution_column() {
    let db = TestDatabase::fresh().await.unwrap();
    // table -> distribution column (None: reference table)
    let plan: BTreeMap<String, Option<String>> = rows("tables")
        .into_iter()
        .map(|row| {
            let column = match row[1].as_str() {
                "distributed" => Some(row[2].clone()),
                "reference" => None,
                other => panic!(
                    "{}: kind {other} is neither distributed nor reference",
                    row[0]
                ),
            };
            (row[0].clone(), column)
        })
        .collect();
    let exceptions: BTreeSet<(String, String)> = rows("exceptions")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    assert!(
        plan.len() >= 10 && !exceptions.is_empty(),
        "the page's tables were read"
    );

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('zitadel', 'eventstore', 'tenancy')
          ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let unclassified: Vec<&String> = tables.iter().filter(|t| !plan.contains_key(*t)).collect();
    assert!(
        unclassified.is_empty(),
        "tables missing from docs/src/scale-out.md (classify them there): {unclassified:?}"
    );
    let gone: Vec<&String> = plan.keys().filter(|t| !tables.contains(t)).collect();
    assert!(
        gone.is_empty(),
        "docs/src/scale-out.md names tables that do not exist: {gone:?}"
    );

    // Unique indexes (primary keys included): the columns they cover, by name; an
    // expression such as lower(domain) covers no column.
    let unique: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, i.relname,
                ARRAY(SELECT a.attname::text FROM unnest(x.indkey) AS k(attnum)
                        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
           FROM pg_index x
           JOIN pg_class c ON c.oid = x.indrelid
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE x.indisunique AND n.nspname IN ('zitadel', 'eventstore', 'tenancy')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // Foreign keys: table, constraint, referenced table, and the referencing and the
    // referenced columns in order.
    type ForeignKey = (String, String, String, Vec<String>, Vec<String>);
    let foreign: Vec<ForeignKey> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, k.conname, rn.nspname || '.' || r.relname,
                ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, i)
                        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                       ORDER BY u.i),
                ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, i)
                        JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
                       ORDER BY u.i)
           FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_class r ON r.oid = k.confrelid
           JOIN pg_namespace rn ON rn.oid = r.relnamespace
          WHERE k.contype = 'f' AND n.nspname IN ('zitadel', 'eventstore', 'tenancy')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    let mut broken = Vec::new();
    let mut excused = BTreeSet::new();
    for (table, index, columns) in &unique {
        let Some(Some(column)) = plan.get(table) else {
            continue;
        };
        if !columns.contains(column) {
            if exceptions.contains(&(table.clone(), index.clone())) {
                excused.insert((table.clone(), index.clone()));
            } else {
                broken.push(format!("unique index {index} of {table} lacks {column}"));
            }
        }
    }
    for (table, constraint, referenced, columns, referenced_columns) in &foreign {
        let Some(Some(column)) = plan.get(table) else {
            continue;
        };
        match plan.get(referenced) {
            // Colocated: the distribution columns must be matched with each other.
            Some(Some(referenced_column)) => {
                let paired = columns
                    .iter()
                    .zip(referenced_columns)
                    .any(|(from, to)| from == column && to == referenced_column);
                if !paired && !exceptions.contains(&(table.clone(), constraint.clone())) {
                    broken.push(format!(
                        "foreign key {constraint} of {table} does not match {column} with \
                         {referenced}.{referenced_column}"
                    ));
                }
            }
            // A distributed table may reference a reference table.
            Some(None) => {}
            None => broken.push(format!(
                "foreign key {constraint} references {referenced}, unclassified"
            )),
        }
    }
    assert!(
        broken.is_empty(),
        "against docs/src/scale-out.md: {broken:#?}"
    );
    let stale: Vec<_> = exceptions.difference(&excused).collect();
    assert!(
        stale.is_empty(),
        "documented exceptions that no longer exist or no longer need excusing: {stale:?}"
    );
}
