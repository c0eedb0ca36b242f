//! Offset paging with a total (as ZITADEL: default 100 rows, at most 1,000) and keyset
//! paging with page tokens (a tenancy extension). Every page that has rows behind it
//! carries a `next_page_token`, so an offset walk can switch to tokens at any page.

use tenancy_core::Error;
use tenancy_core::page_token::PageTokens;
use tenancy_core::query::{KeyedSort, Keyset, NameSort, Pagination, SortOrder};
use tonic::Status;

use crate::error::status;
use crate::pb::filter::v2::{PaginationRequest, PaginationResponse};

/// Rows of a page when the request gives no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest limit accepted; more is InvalidArgument.
pub const MAX_LIMIT: u32 = 1000;

/// What a page token is bound to: the list, its scope (instance, organization), the sort
/// and the filters (the order is added by [`Page::parse`]).
pub fn fingerprint(
    list: &str,
    scope: impl std::fmt::Display,
    sort: impl std::fmt::Debug,
    filters: &impl serde::Serialize,
) -> String {
    let filters = serde_json::to_string(filters).unwrap_or_default();
    format!("{list}|{scope}|{sort:?}|{filters}")
}

/// A request's sorting column as a sort; an unknown column is InvalidArgument.
pub fn sorting(value: i32, of: impl Fn(i32) -> Option<NameSort>) -> Result<NameSort, Status> {
    of(value).ok_or_else(|| {
        status(Error::invalid(
            "sorting_column",
            format!("unknown sorting column {value}"),
        ))
    })
}

/// One list request's page: where it starts and how many rows it takes.
#[derive(Debug, Clone)]
pub struct Page {
    /// Rows to return.
    pub limit: u32,
    /// Rows to skip (offset requests; 0 with a page token).
    pub offset: u64,
    /// Ascending or descending.
    pub order: SortOrder,
    /// Set for keyset requests (a page token was given).
    pub after: Option<Keyset>,
    /// What the page token is bound to: the list, its instance, sort, order and filters.
    fingerprint: String,
}

impl Page {
    /// `fingerprint` must name everything that makes two lists differ (method, instance,
    /// sort, filters); the order is added here.
    pub fn parse(
        request: Option<&PaginationRequest>,
        tokens: &PageTokens,
        fingerprint: String,
    ) -> Result<Self, Status> {
        let default = PaginationRequest::default();
        let request = request.unwrap_or(&default);
        let limit = match request.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(status(Error::invalid(
                    "pagination.limit",
                    format!("at most {MAX_LIMIT}"),
                )));
            }
            n => n,
        };
        // ZITADEL's default order is ascending only when asked; we keep its field.
        let order = if request.asc {
            SortOrder::Ascending
        } else {
            SortOrder::Descending
        };
        let fingerprint = format!("{fingerprint}|{order:?}");
        let after = if request.page_token.is_empty() {
            None
        } else {
            if request.offset != 0 {
                return Err(status(Error::invalid(
                    "pagination.offset",
                    "must be 0 with a page_token",
                )));
            }
            Some(
                tokens
                    .decode(&request.page_token, &fingerprint)
                    .map_err(status)?,
            )
        };
        Ok(Self {
            limit,
            offset: request.offset,
            order,
            after,
            fingerprint,
        })
    }

    /// Whether the total is counted (offset requests only).
    pub fn counts_total(&self) -> bool {
        self.after.is_none()
    }

    /// The repository's pagination: one row more than the limit, to know whether a next
    /// page exists.
    pub fn pagination<S: KeyedSort>(&self, sort: S) -> Pagination<S> {
        let limit = self.limit.saturating_add(1);
        match &self.after {
            Some(after) => Pagination::after(sort, self.order, limit, Some(after.clone())),
            None => Pagination::page(sort, self.order, limit, self.offset),
        }
    }

    /// Cuts the extra row off and makes the response.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        total: Option<u64>,
        tokens: &PageTokens,
        key: impl Fn(&T) -> Keyset,
    ) -> Result<(Vec<T>, PaginationResponse), Status> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => tokens
                .encode(&key(last), &self.fingerprint)
                .map_err(status)?,
            _ => String::new(),
        };
        Ok((
            rows,
            PaginationResponse {
                total_result: total.unwrap_or(0),
                applied_limit: u64::from(self.limit),
                next_page_token,
            },
        ))
    }

    /// Pages a short list held in memory (an instance's or an organization's domains):
    /// sorts by `key`, then the same offset or keyset cut as the repositories.
    pub fn cut_in_memory<T, S: KeyedSort>(
        &self,
        mut rows: Vec<T>,
        sort: S,
        tokens: &PageTokens,
        key: impl Fn(&T) -> Keyset,
    ) -> Result<(Vec<T>, PaginationResponse), Status> {
        let total = rows.len() as u64;
        rows.sort_by(|a, b| {
            let (a, b) = (key(a), key(b));
            let ordering = (a.value, a.id).cmp(&(b.value, b.id));
            match self.order {
                SortOrder::Ascending => ordering,
                SortOrder::Descending => ordering.reverse(),
            }
        });
        let page = self.pagination(sort);
        let rows = page
            .cut_after(rows, |row| {
                let k = key(row);
                (k.value, k.id)
            })
            .map_err(status)?;
        self.finish(rows, self.counts_total().then_some(total), tokens, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenancy_core::query::{KeyValue, NameSort};

    fn tokens() -> PageTokens {
        PageTokens::new(vec![7u8; 32]).unwrap()
    }

    fn key(n: &u32) -> Keyset {
        Keyset {
            value: KeyValue::Text(format!("{n:04}")),
            id: KeyValue::Text(n.to_string()),
        }
    }

    fn request(limit: u32, offset: u64, token: &str) -> PaginationRequest {
        PaginationRequest {
            offset,
            limit,
            asc: true,
            page_token: token.into(),
        }
    }

    #[test]
    fn limits_default_and_cap() {
        let page = Page::parse(None, &tokens(), "l".into()).unwrap();
        assert_eq!(page.limit, DEFAULT_LIMIT);
        let err = Page::parse(Some(&request(1001, 0, "")), &tokens(), "l".into()).unwrap_err();
        assert!(err.message().contains("pagination.limit"));
    }

    #[test]
    fn a_token_walk_equals_the_offset_walk_and_is_bound_to_its_list() {
        let rows: Vec<u32> = (0..25).rev().collect();
        let mut walked = Vec::new();
        let mut token = String::new();
        loop {
            let page = Page::parse(Some(&request(10, 0, &token)), &tokens(), "l".into()).unwrap();
            let (got, response) = page
                .cut_in_memory(rows.clone(), NameSort::Name, &tokens(), key)
                .unwrap();
            walked.extend(got);
            token = response.next_page_token;
            if token.is_empty() {
                break;
            }
            let other = Page::parse(Some(&request(10, 0, &token)), &tokens(), "other".into());
            assert!(other.unwrap_err().message().contains("page_token"));
            let with_offset = Page::parse(Some(&request(10, 3, &token)), &tokens(), "l".into());
            assert!(
                with_offset
                    .unwrap_err()
                    .message()
                    .contains("pagination.offset")
            );
        }
        assert_eq!(walked, (0..25).collect::<Vec<_>>());
        let page = Page::parse(Some(&request(10, 20, "")), &tokens(), "l".into()).unwrap();
        let (last, response) = page
            .cut_in_memory(rows, NameSort::Name, &tokens(), key)
            .unwrap();
        assert_eq!(last, (20..25).collect::<Vec<_>>());
        assert_eq!(response.total_result, 25);
        assert!(response.next_page_token.is_empty());
    }
}
