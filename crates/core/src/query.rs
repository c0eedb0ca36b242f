//! Criteria, text matches, sorting and pagination for list reads. Adapters translate them
//! (SQL with bound values and escaped `LIKE` patterns); `matches` gives the reference
//! semantics that the in-memory adapters use.

use serde::{Deserialize, Serialize};

use crate::id::{InstanceId, OrgId};

/// How a text criterion compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextOperation {
    /// The whole text equals the value.
    Equals,
    /// The text begins with the value.
    StartsWith,
    /// The text ends with the value.
    EndsWith,
    /// The value occurs anywhere in the text.
    Contains,
}

/// A text criterion: operation, value, and whether case is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextMatch {
    /// How the text is compared with `value`.
    pub operation: TextOperation,
    /// The text to compare with; `LIKE` metacharacters in it match themselves.
    pub value: String,
    /// Whether ASCII letters compare ignoring case.
    pub ignore_case: bool,
}

impl TextMatch {
    /// The text equals `value` exactly (case counts; see [`Self::ignoring_case`]).
    pub fn equals(value: impl Into<String>) -> Self {
        Self::new(TextOperation::Equals, value, false)
    }
    /// The text begins with `value`.
    pub fn starts_with(value: impl Into<String>) -> Self {
        Self::new(TextOperation::StartsWith, value, false)
    }
    /// The text ends with `value`.
    pub fn ends_with(value: impl Into<String>) -> Self {
        Self::new(TextOperation::EndsWith, value, false)
    }
    /// The text contains `value`.
    pub fn contains(value: impl Into<String>) -> Self {
        Self::new(TextOperation::Contains, value, false)
    }

    /// A match with every part given.
    pub fn new(operation: TextOperation, value: impl Into<String>, ignore_case: bool) -> Self {
        Self {
            operation,
            value: value.into(),
            ignore_case,
        }
    }

    /// The same match, ignoring case.
    pub fn ignoring_case(mut self) -> Self {
        self.ignore_case = true;
        self
    }

    /// Reference semantics. Ignoring case folds ASCII letters only, as the schema does
    /// (`lower(x COLLATE "C")`, migration 0009): the same on every database.
    pub fn matches(&self, text: &str) -> bool {
        let (text, value) = if self.ignore_case {
            (text.to_ascii_lowercase(), self.value.to_ascii_lowercase())
        } else {
            (text.to_owned(), self.value.clone())
        };
        match self.operation {
            TextOperation::Equals => text == value,
            TextOperation::StartsWith => text.starts_with(&value),
            TextOperation::EndsWith => text.ends_with(&value),
            TextOperation::Contains => text.contains(&value),
        }
    }

    /// The `LIKE` pattern for this match, with `%`, `_` and `\` in the value escaped
    /// (PostgreSQL's default escape character is `\`). `None` for `Equals`.
    pub fn like_pattern(&self) -> Option<String> {
        let value = if self.ignore_case {
            self.value.to_ascii_lowercase()
        } else {
            self.value.clone()
        };
        let escaped = escape_like(&value);
        match self.operation {
            TextOperation::Equals => None,
            TextOperation::StartsWith => Some(format!("{escaped}%")),
            TextOperation::EndsWith => Some(format!("%{escaped}")),
            TextOperation::Contains => Some(format!("%{escaped}%")),
        }
    }
}

/// Escapes the `LIKE` metacharacters `\`, `%` and `_`.
pub fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortOrder {
    /// Smallest first (the default).
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

/// Limit, offset and order of a list. Lists always break ties by the id, so pages are
/// stable. With `after` (keyset paging) the list starts behind that row instead of
/// counting `offset` rows: the cost of a page does not grow with its number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pagination<S> {
    /// At most this many rows; `None`: all.
    pub limit: Option<u32>,
    /// Rows to skip before the first one returned (offset paging); ignored with `after`.
    pub offset: u64,
    /// The column to sort by (ties broken by the id).
    pub sort: S,
    /// Ascending or descending.
    pub order: SortOrder,
    /// Keyset paging: start behind this row instead of counting `offset` rows.
    pub after: Option<Keyset>,
}

/// Where a page ended: the sort value and the id of its last row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Keyset {
    /// The sort column's value of the last row.
    pub value: KeyValue,
    /// The id of the last row (the tie breaker).
    pub id: KeyValue,
}

/// A sort column's or an id's value. Texts compare byte-wise (`COLLATE "C"`), as the
/// lists sort them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyValue {
    /// A text column (names, domains, string ids), compared byte-wise.
    Text(String),
    /// A timestamp column (`created_at`, `updated_at`), as RFC 3339 in page tokens.
    Time(#[serde(with = "time::serde::rfc3339")] time::OffsetDateTime),
    /// A number column (the domains table's key).
    Number(i64),
}

impl Keyset {
    /// The position of an instance or organization in a list sorted by `sort`.
    pub fn of_named(
        sort: NameSort,
        name: &str,
        created_at: time::OffsetDateTime,
        updated_at: time::OffsetDateTime,
        id: &str,
    ) -> Self {
        let value = match sort {
            NameSort::Name => KeyValue::Text(name.to_owned()),
            NameSort::Id => KeyValue::Text(id.to_owned()),
            NameSort::CreatedAt => KeyValue::Time(created_at),
            NameSort::UpdatedAt => KeyValue::Time(updated_at),
        };
        Self {
            value,
            id: KeyValue::Text(id.to_owned()),
        }
    }

    /// The position of a row of the unified domains in a list sorted by `sort`.
    pub fn of_domain(sort: DomainSort, domain: &crate::model::Domain) -> Self {
        let value = match sort {
            DomainSort::Domain => KeyValue::Text(domain.domain.clone()),
            DomainSort::CreatedAt => KeyValue::Time(domain.created_at),
            DomainSort::UpdatedAt => KeyValue::Time(domain.updated_at),
        };
        Self {
            value,
            id: KeyValue::Number(domain.id),
        }
    }

    /// Whether the row at (`value`, `id`) comes after this position in `order`.
    pub fn precedes(&self, value: &KeyValue, id: &KeyValue, order: SortOrder) -> bool {
        let (here, there) = ((&self.value, &self.id), (value, id));
        match order {
            SortOrder::Ascending => there > here,
            SortOrder::Descending => there < here,
        }
    }
}

/// A sort whose keyset positions have a known shape.
pub trait KeyedSort: Copy {
    /// Whether `keyset` can be a position in a list sorted this way.
    fn fits(self, keyset: &Keyset) -> bool;
}

impl KeyedSort for NameSort {
    fn fits(self, keyset: &Keyset) -> bool {
        matches!(keyset.id, KeyValue::Text(_))
            && matches!(
                (self, &keyset.value),
                (NameSort::Name | NameSort::Id, KeyValue::Text(_))
                    | (NameSort::CreatedAt | NameSort::UpdatedAt, KeyValue::Time(_))
            )
    }
}

impl KeyedSort for DomainSort {
    fn fits(self, keyset: &Keyset) -> bool {
        matches!(keyset.id, KeyValue::Number(_))
            && matches!(
                (self, &keyset.value),
                (DomainSort::Domain, KeyValue::Text(_))
                    | (
                        DomainSort::CreatedAt | DomainSort::UpdatedAt,
                        KeyValue::Time(_)
                    )
            )
    }
}

impl<S: KeyedSort> Pagination<S> {
    /// InvalidArgument when `after` cannot be a position of this sort (a page token of
    /// another list).
    pub fn check_keyset(&self) -> crate::Result<()> {
        match &self.after {
            Some(keyset) if !self.sort.fits(keyset) => Err(crate::Error::invalid(
                "page_token",
                "belongs to a list with another sort",
            )),
            _ => Ok(()),
        }
    }

    /// Keeps the rows behind `after` (rows already in order), then offset and limit.
    pub fn cut_after<T>(
        &self,
        rows: Vec<T>,
        key: impl Fn(&T) -> (KeyValue, KeyValue),
    ) -> crate::Result<Vec<T>> {
        self.check_keyset()?;
        let rows = match &self.after {
            Some(after) => rows
                .into_iter()
                .filter(|row| {
                    let (value, id) = key(row);
                    after.precedes(&value, &id, self.order)
                })
                .collect(),
            None => rows,
        };
        Ok(self.cut(rows))
    }
}

impl<S: Default> Default for Pagination<S> {
    fn default() -> Self {
        Self {
            limit: None,
            offset: 0,
            sort: S::default(),
            order: SortOrder::Ascending,
            after: None,
        }
    }
}

impl<S> Pagination<S> {
    /// A page of `limit` rows after skipping `offset` (offset paging).
    pub fn page(sort: S, order: SortOrder, limit: u32, offset: u64) -> Self {
        Self {
            limit: Some(limit),
            offset,
            sort,
            order,
            after: None,
        }
    }

    /// A page of `limit` rows behind `after` (keyset paging).
    pub fn after(sort: S, order: SortOrder, limit: u32, after: Option<Keyset>) -> Self {
        Self {
            limit: Some(limit),
            offset: 0,
            sort,
            order,
            after,
        }
    }

    /// Applies offset and limit to an already ordered vector.
    pub fn cut<T>(&self, rows: Vec<T>) -> Vec<T> {
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let iter = rows.into_iter().skip(offset);
        match self.limit {
            Some(limit) => iter.take(limit as usize).collect(),
            None => iter.collect(),
        }
    }
}

/// Sort columns of domain lists (an allow-list: nothing else reaches SQL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DomainSort {
    /// By creation time (the default).
    #[default]
    CreatedAt,
    /// By time of the last change.
    UpdatedAt,
    /// By domain name, byte-wise.
    Domain,
}

/// Sort columns of instance and organization lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NameSort {
    /// By creation time (the default).
    #[default]
    CreatedAt,
    /// By time of the last change.
    UpdatedAt,
    /// By name, byte-wise.
    Name,
    /// The id alone (byte-wise).
    Id,
}

/// Whose domains a unified-domain query wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DomainOwner {
    /// Only instance domains (`org_id IS NULL`).
    InstanceOnly,
    /// Only the domains of this organization.
    Organization(OrgId),
    /// The domains of any of these organizations (one query for a page of them).
    Organizations(Vec<OrgId>),
}

/// Criteria of the unified domain repository. `instance_id` is required by every
/// tenant-scoped read (MissingTenant otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DomainCriteria {
    /// The instance whose domains are read (required: MissingTenant without it).
    pub instance_id: Option<InstanceId>,
    /// Only the row with this key.
    pub id: Option<i64>,
    /// Only domains whose name matches.
    pub domain: Option<TextMatch>,
    /// Only instance domains, or the domains of given organizations.
    pub owner: Option<DomainOwner>,
    /// Only verified (`true`) or unverified (`false`) domains.
    pub is_verified: Option<bool>,
    /// Only primary (`true`) or non-primary (`false`) domains.
    pub is_primary: Option<bool>,
    /// Soft-deleted rows are left out unless this is set.
    pub include_deleted: bool,
}

impl DomainCriteria {
    /// The live domains of an instance, of every owner (add filters with the methods below).
    pub fn of_instance(instance_id: &InstanceId) -> Self {
        Self {
            instance_id: Some(instance_id.clone()),
            ..Self::default()
        }
    }
    /// Only domains whose name matches `m`.
    pub fn domain(mut self, m: TextMatch) -> Self {
        self.domain = Some(m);
        self
    }
    /// Only the domains of `owner`.
    pub fn owner(mut self, owner: DomainOwner) -> Self {
        self.owner = Some(owner);
        self
    }
    /// Only verified (`true`) or unverified (`false`) domains.
    pub fn verified(mut self, v: bool) -> Self {
        self.is_verified = Some(v);
        self
    }
    /// Only primary (`true`) or non-primary (`false`) domains.
    pub fn primary(mut self, v: bool) -> Self {
        self.is_primary = Some(v);
        self
    }
    /// Only the row with key `id`.
    pub fn with_id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }
    /// Soft-deleted rows too.
    pub fn including_deleted(mut self) -> Self {
        self.include_deleted = true;
        self
    }
}

/// Criteria of organization lists (always within one instance).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrganizationCriteria {
    /// The instance whose organizations are listed (required: MissingTenant without it).
    pub instance_id: Option<InstanceId>,
    /// Any of these ids (empty: any id).
    pub ids: Vec<OrgId>,
    /// Only organizations whose name matches.
    pub name: Option<TextMatch>,
    /// Organizations with a domain (verified or not) that matches.
    pub domain: Option<TextMatch>,
    /// Only active or only inactive organizations.
    pub state: Option<crate::model::OrganizationState>,
    /// Soft-deleted organizations too.
    pub include_deleted: bool,
}

/// Criteria of instance lists (a system-level read: no tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceCriteria {
    /// Any of these ids (empty: any id).
    pub ids: Vec<InstanceId>,
    /// Instances owning any of these custom domains, ignoring case (empty: no filter).
    pub custom_domains: Vec<String>,
    /// Only instances whose name matches.
    pub name: Option<TextMatch>,
    /// Soft-deleted instances too.
    pub include_deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches() {
        assert!(TextMatch::equals("a.b").matches("a.b"));
        assert!(!TextMatch::equals("A.b").matches("a.b"));
        assert!(TextMatch::equals("A.b").ignoring_case().matches("a.B"));
        assert!(TextMatch::starts_with("ac").matches("acme.example"));
        assert!(TextMatch::ends_with(".example").matches("acme.example"));
        assert!(TextMatch::contains("me.ex").matches("acme.example"));
        assert!(!TextMatch::contains("ME").matches("acme"));
        assert!(TextMatch::contains("ME").ignoring_case().matches("acme"));
    }

    #[test]
    fn like_patterns_escape_metacharacters() {
        assert_eq!(
            TextMatch::contains("50%_off\\").like_pattern().unwrap(),
            "%50\\%\\_off\\\\%"
        );
        assert_eq!(TextMatch::starts_with("a").like_pattern().unwrap(), "a%");
        assert_eq!(TextMatch::equals("a").like_pattern(), None);
    }

    #[test]
    fn pagination_cuts() {
        let p: Pagination<DomainSort> =
            Pagination::page(DomainSort::Domain, SortOrder::Ascending, 2, 1);
        assert_eq!(p.cut(vec![1, 2, 3, 4]), vec![2, 3]);
    }
}
