//! Import of an existing store's export: the CSV that
//! `COPY eventstore.events2 TO STDOUT WITH (FORMAT csv, HEADER)` produces (schema.md's
//! columns in that order; `written_by_v3` may be absent), or JSON lines with the same
//! field names. The whole file is validated first — a malformed file is rejected with the
//! line of its first bad row and nothing is imported — then loaded with `COPY` into a
//! temporary table and inserted with `ON CONFLICT DO NOTHING`, so importing the same file
//! twice adds nothing.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tenancy_core::Error;
use tenancy_core::event::{
    LegacyEvent, StoredEvent, UNIQUE_INSTANCE_DOMAIN, UNIQUE_ORG_DOMAIN, UNIQUE_ORG_NAME,
};
use tenancy_core::id::InstanceId;
use tenancy_core::state::InMemoryState;
use tenancy_postgres::on_constraint;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// schema.md's column order of `eventstore.events2`.
pub const COLUMNS: [&str; 13] = tenancy_postgres::layout::EVENTS2_COLUMNS;

/// The file formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// `COPY eventstore.events2 TO ... (FORMAT csv, HEADER)`.
    Csv,
    /// One JSON object per line, with the columns of `events2` as keys.
    JsonLines,
}

impl ImportFormat {
    /// By extension (`.csv`; `.jsonl`, `.ndjson`, `.json`), else by the first character.
    pub fn detect(path: &Path, content: &str) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Self::Csv,
            Some("jsonl" | "ndjson" | "json") => Self::JsonLines,
            _ if content.trim_start().starts_with('{') => Self::JsonLines,
            _ => Self::Csv,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows in the file.
    pub rows: u64,
    /// Rows added to the store.
    pub inserted: u64,
    /// Rows already present (same primary key), left as they were.
    pub already_present: u64,
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an event of the format (nothing is imported).
    #[error("line {line}: {reason}")]
    Malformed {
        /// The line (1 is the first; the CSV header counts).
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing to the store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// One validated row: a stored event as the export holds it. Its `written_by_v3` is the
/// export's column and is written to the store's column as it is; tenancy's own mark
/// (`tenancy.written_events`, which `StoredEvent::written_by_v3` reports when read back) is
/// not imported: an imported event's rows come from the projection.
pub type ImportRow = StoredEvent;

fn malformed(line: u64, reason: impl Into<String>) -> ImportError {
    ImportError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// PostgreSQL's `2024-05-01 10:00:00.123456+00` as well as RFC 3339.
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    let mut s = text.trim().replacen(' ', "T", 1);
    let bytes = s.as_bytes();
    // An offset of hours only (`+00`) gets its minutes.
    if bytes.len() > 3
        && matches!(bytes[bytes.len() - 3], b'+' | b'-')
        && bytes[bytes.len() - 2..].iter().all(u8::is_ascii_digit)
    {
        s.push_str(":00");
    }
    OffsetDateTime::parse(&s, &Rfc3339).ok()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "t" | "true" | "TRUE" | "1" => Some(true),
        "f" | "false" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// Builds a row from textual fields (CSV), naming the column of the first bad value.
fn row_from_fields(
    line: u64,
    field: impl Fn(usize) -> Option<String>,
) -> Result<ImportRow, ImportError> {
    let text = |i: usize| -> Result<String, ImportError> {
        field(i).ok_or_else(|| malformed(line, format!("column {} is missing", COLUMNS[i])))
    };
    let parse = |i: usize, what: &str| -> Result<String, ImportError> {
        let value = text(i)?;
        if value.is_empty() {
            return Err(malformed(
                line,
                format!("column {} is empty; expected {what}", COLUMNS[i]),
            ));
        }
        Ok(value)
    };
    let bad = |i: usize, value: &str, what: &str| {
        malformed(
            line,
            format!("column {} = {value:?} is not {what}", COLUMNS[i]),
        )
    };
    let sequence = parse(4, "an integer")?;
    let revision = parse(5, "an integer")?;
    let created_at = parse(6, "a timestamp")?;
    let payload = text(7)?;
    let position = parse(10, "a number")?;
    let in_tx_order = parse(11, "an integer")?;
    let written_by_v3 = field(12).unwrap_or_default();
    Ok(ImportRow {
        instance_id: text(0)?,
        aggregate_type: parse(1, "an aggregate type")?,
        aggregate_id: parse(2, "an aggregate id")?,
        event_type: parse(3, "an event type")?,
        sequence: sequence
            .parse()
            .map_err(|_| bad(4, &sequence, "an integer"))?,
        revision: revision
            .parse()
            .map_err(|_| bad(5, &revision, "a small integer"))?,
        created_at: parse_timestamp(&created_at)
            .ok_or_else(|| bad(6, &created_at, "a timestamp"))?,
        payload: if payload.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&payload)
                    .map_err(|e| malformed(line, format!("column payload is not JSON: {e}")))?,
            )
        },
        creator: text(8)?,
        owner: text(9)?,
        position: position
            .parse()
            .map_err(|_| bad(10, &position, "a number"))?,
        in_tx_order: in_tx_order
            .parse()
            .map_err(|_| bad(11, &in_tx_order, "an integer"))?,
        written_by_v3: if written_by_v3.is_empty() {
            false
        } else {
            parse_bool(&written_by_v3).ok_or_else(|| bad(12, &written_by_v3, "a boolean"))?
        },
    })
}

/// Parses and validates a whole CSV export.
pub fn parse_csv(content: &str) -> Result<Vec<ImportRow>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(content.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| malformed(1, format!("unreadable header: {e}")))?
        .clone();
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let required = &COLUMNS[..12];
    if names.len() < 12
        || names[..12] != *required
        || (names.len() > 12 && names[12..] != COLUMNS[12..])
    {
        return Err(malformed(
            1,
            format!(
                "header must be {} (written_by_v3 optional), found {}",
                COLUMNS.join(","),
                names.join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| malformed(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() > names.len() {
            return Err(malformed(
                line,
                format!("{} columns, the header has {}", record.len(), names.len()),
            ));
        }
        rows.push(row_from_fields(line, |i| record.get(i).map(str::to_owned))?);
    }
    Ok(rows)
}

/// Parses and validates JSON lines with the same field names.
pub fn parse_json_lines(content: &str) -> Result<Vec<ImportRow>, ImportError> {
    let mut rows = Vec::new();
    for (index, text) in content.lines().enumerate() {
        let line = index as u64 + 1;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(line, format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| malformed(line, "not a JSON object"))?;
        let field = |i: usize| -> Option<String> {
            match object.get(COLUMNS[i])? {
                Value::Null => Some(String::new()),
                Value::String(s) => Some(s.clone()),
                // The payload stays JSON; numbers and booleans are read from their text.
                other => Some(other.to_string()),
            }
        };
        if let Some(Value::String(_)) = object.get("payload") {
            return Err(malformed(
                line,
                "column payload must be a JSON object or null, not a string",
            ));
        }
        rows.push(row_from_fields(line, field)?);
    }
    Ok(rows)
}

/// Reads, validates and imports a file.
pub async fn import_file(pool: &PgPool, path: &Path) -> Result<ImportReport, ImportError> {
    let mut content = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut content))
        .map_err(|source| ImportError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let rows = match ImportFormat::detect(path, &content) {
        ImportFormat::Csv => parse_csv(&content)?,
        ImportFormat::JsonLines => parse_json_lines(&content)?,
    };
    import_rows(pool, &rows).await
}

/// Loads validated rows in one transaction (COPY into a temporary table, then one insert)
/// and fills the unique constraints of the instances they touch.
pub async fn import_rows(pool: &PgPool, rows: &[ImportRow]) -> Result<ImportReport, ImportError> {
    import_rows_with(pool, rows, true).await
}

/// [`import_rows`]; without `unique_constraints` the constraints are left as they are (a
/// store loaded in many chunks would otherwise fold its instances once per chunk: fill
/// them with a last call that has them on).
pub async fn import_rows_with(
    pool: &PgPool,
    rows: &[ImportRow],
    unique_constraints: bool,
) -> Result<ImportReport, ImportError> {
    // An adopted ZITADEL store older than written_by_v3 has no such column: nothing to
    // write there, and a row that needs it cannot be stored without losing its mark.
    let with_v3: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'eventstore.events2'::regclass
                        AND attname = 'written_by_v3' AND NOT attisdropped)",
    )
    .fetch_one(pool)
    .await
    .map_err(on_constraint)?;
    if !with_v3 && let Some(line) = rows.iter().position(|r| r.written_by_v3) {
        return Err(Error::invalid(
            "written_by_v3",
            format!(
                "row {} is marked written_by_v3, but this event store has no written_by_v3 column \
                 (a ZITADEL store older than that column): nothing was imported",
                line + 1
            ),
        )
        .into());
    }
    let columns = if with_v3 {
        &COLUMNS[..]
    } else {
        &COLUMNS[..12]
    };
    let mut data = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for r in rows {
        let created_at = r
            .created_at
            .format(&Rfc3339)
            .map_err(|e| Error::internal(e.to_string()))?;
        let payload = r.payload.as_ref().map(Value::to_string).unwrap_or_default();
        let record = [
            r.instance_id.as_str(),
            &r.aggregate_type,
            &r.aggregate_id,
            &r.event_type,
            &r.sequence.to_string(),
            &r.revision.to_string(),
            &created_at,
            &payload,
            &r.creator,
            &r.owner,
            &r.position.to_string(),
            &r.in_tx_order.to_string(),
            if r.written_by_v3 { "t" } else { "f" },
        ];
        data.write_record(&record[..columns.len()])
            .map_err(|e| Error::internal(e.to_string()))?;
    }
    let data = data
        .into_inner()
        .map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = pool.begin().await.map_err(on_constraint)?;
    sqlx::query(
        "CREATE TEMP TABLE import_events (LIKE eventstore.events2 INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY import_events ({}) FROM STDIN WITH (FORMAT csv)",
            quoted_columns(columns)
        ))
        .await
        .map_err(on_constraint)?;
    copy.send(data).await.map_err(on_constraint)?;
    copy.finish().await.map_err(on_constraint)?;
    let inserted = sqlx::query(
        "INSERT INTO eventstore.events2 SELECT * FROM import_events ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?
    .rows_affected();
    let instances: BTreeSet<&str> = rows.iter().map(|r| r.instance_id.as_str()).collect();
    if unique_constraints {
        fill_unique_constraints(&mut tx, &instances).await?;
    }
    // Imported events keep their positions, maybe older than where the sweeps of a running
    // engine start: the next sweep starts before them. (A ZITADEL store imported into
    // before tenancy's migration has no such table yet, nor any sweep.)
    let swept: bool = sqlx::query_scalar("SELECT to_regclass('tenancy.sweeps') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await
        .map_err(on_constraint)?;
    if swept {
        sqlx::query(
            "UPDATE tenancy.sweeps SET swept_from = LEAST(swept_from, (SELECT min(\"position\") FROM import_events))
             WHERE EXISTS (SELECT 1 FROM import_events)",
        )
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    }
    for instance in instances {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::NOTIFY_CHANNEL)
            .bind(instance)
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
    }
    tx.commit().await.map_err(on_constraint)?;
    let total = rows.len() as u64;
    Ok(ImportReport {
        rows: total,
        inserted,
        already_present: total - inserted,
    })
}

/// Fills `eventstore.unique_constraints` for the imported instances as the v3 commands
/// keep it (an import has no commands to do it): their whole streams — imported rows and
/// any already present — are folded with the projection's rules, and the constraints of
/// the final state are written: every live custom domain (global), live organization name
/// and verified organization domain (per instance). Per-instance constraints of these
/// instances that the final state does not hold are deleted; a global domain constraint
/// is deleted only when no other instance ever added that domain (another may hold it).
/// Events the rules reject are left out of the fold, as the projection skips them.
async fn fill_unique_constraints(
    conn: &mut PgConnection,
    instances: &BTreeSet<&str>,
) -> Result<(), ImportError> {
    let instances: Vec<&str> = instances
        .iter()
        .copied()
        .filter(|i| !i.is_empty())
        .collect();
    if instances.is_empty() {
        return Ok(());
    }
    let mut state = InMemoryState::new();
    let mut added_domains: BTreeSet<String> = BTreeSet::new();
    crate::for_each_in_order(
        conn,
        Some(&instances),
        &crate::CATALOGUE_AGGREGATES,
        |event| {
            let Ok(decoded) = LegacyEvent::decode(&event.event_type, event.payload.as_ref()) else {
                return;
            };
            if let LegacyEvent::InstanceDomainAdded { domain, .. } = &decoded {
                added_domains.insert(domain.to_lowercase());
            }
            if let Ok(instance) = InstanceId::new(event.instance_id) {
                // Rejected by the rules: skipped, as the projection skips it.
                let _ =
                    state.apply_event(&instance, &event.aggregate_id, &decoded, event.created_at);
            }
        },
    )
    .await?;
    let uniques = state.unique_constraints();
    let held_domains: Vec<&str> = uniques
        .iter()
        .filter(|u| u.unique_type == UNIQUE_INSTANCE_DOMAIN)
        .map(|u| u.unique_field.as_str())
        .collect();
    let released: Vec<&str> = added_domains
        .iter()
        .map(String::as_str)
        .filter(|d| !held_domains.contains(d))
        .collect();
    sqlx::query(
        "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS w(i, t, f)),
              stale AS (
                  DELETE FROM eventstore.unique_constraints u
                  WHERE (u.instance_id = ANY($4) AND u.unique_type = ANY($5)
                         AND NOT EXISTS (SELECT 1 FROM wanted w WHERE (w.i, w.t, w.f) = (u.instance_id, u.unique_type, u.unique_field)))
                     OR (u.instance_id = '' AND u.unique_type = $6 AND u.unique_field = ANY($7)
                         AND NOT EXISTS (SELECT 1 FROM eventstore.events2 e
                                         WHERE e.aggregate_type = 'instance' AND e.event_type = 'instance.domain.added'
                                           AND lower(e.payload ->> 'domain') = u.unique_field
                                           AND e.instance_id <> ALL($4))))
         INSERT INTO eventstore.unique_constraints (instance_id, unique_type, unique_field)
         SELECT i, t, f FROM wanted ON CONFLICT DO NOTHING",
    )
    .bind(uniques.iter().map(|u| u.instance_id.clone()).collect::<Vec<_>>())
    .bind(uniques.iter().map(|u| u.unique_type.clone()).collect::<Vec<_>>())
    .bind(uniques.iter().map(|u| u.unique_field.clone()).collect::<Vec<_>>())
    .bind(&instances)
    .bind([UNIQUE_ORG_NAME, UNIQUE_ORG_DOMAIN])
    .bind(UNIQUE_INSTANCE_DOMAIN)
    .bind(&released)
    .execute(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Ok(())
}

fn quoted_columns(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_shapes() {
        let a = parse_timestamp("2024-05-01 10:00:00.123456+00").unwrap();
        let b = parse_timestamp("2024-05-01T10:00:00.123456Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_timestamp("2024-05-01 12:00:00+02"),
            parse_timestamp("2024-05-01T10:00:00Z")
        );
        assert!(parse_timestamp("yesterday").is_none());
    }

    const HEADER: &str = "instance_id,aggregate_type,aggregate_id,event_type,sequence,revision,created_at,payload,creator,owner,position,in_tx_order,written_by_v3";

    #[test]
    fn csv_rows_parse_and_errors_name_the_line() {
        let good = format!(
            "{HEADER}\ni,org,o,org.added,1,1,2024-05-01 10:00:00+00,\"{{\"\"name\"\"}}\",u,o,1714557600.5,1,f\n"
        );
        assert!(
            parse_csv(&good).is_err(),
            "payload {{\"name\"}} is not JSON"
        );
        let good = format!(
            "{HEADER}\ni,org,o,org.added,1,1,2024-05-01 10:00:00+00,\"{{\"\"name\"\":\"\"x\"\"}}\",u,o,1714557600.5,1,f\ni,org,o,org.removed,2,1,2024-05-01 10:00:01+00,,u,o,1714557601,1,t\n"
        );
        let rows = parse_csv(&good).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].payload, None);
        assert!(rows[1].written_by_v3);
        let bad = format!(
            "{HEADER}\ni,org,o,org.added,1,1,2024-05-01 10:00:00+00,{{}},u,o,1,1,f\ni,org,o,org.added,x,1,2024-05-01 10:00:00+00,{{}},u,o,1,1,f\n"
        );
        let err = parse_csv(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("line 3:") && err.contains("sequence"),
            "{err}"
        );
        let missing = format!("{HEADER}\ni,org,o,org.added,1,1,2024-05-01 10:00:00+00\n");
        let err = parse_csv(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("line 2:") && err.contains("missing"),
            "{err}"
        );
        let without_v3 = "instance_id,aggregate_type,aggregate_id,event_type,sequence,revision,created_at,payload,creator,owner,position,in_tx_order\ni,org,o,org.removed,1,1,2024-05-01 10:00:00+00,,u,o,1,1\n";
        assert!(!parse_csv(without_v3).unwrap()[0].written_by_v3);
        assert!(
            parse_csv("a,b\n")
                .unwrap_err()
                .to_string()
                .starts_with("line 1:")
        );
    }

    #[test]
    fn json_lines_parse_and_errors_name_the_line() {
        let line = r#"{"instance_id":"i","aggregate_type":"org","aggregate_id":"o","event_type":"org.added","sequence":1,"revision":1,"created_at":"2024-05-01T10:00:00Z","payload":{"name":"x"},"creator":"u","owner":"o","position":"1714557600.25","in_tx_order":1}"#;
        let rows = parse_json_lines(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].position.to_string(), "1714557600.25");
        let err = parse_json_lines(&format!("{line}\n{{\"instance_id\": 5\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 2:"), "{err}");
        let wrong_type = line.replace("\"sequence\":1", "\"sequence\":\"one\"");
        let err = parse_json_lines(&wrong_type).unwrap_err().to_string();
        assert!(err.contains("sequence"), "{err}");
    }
}
