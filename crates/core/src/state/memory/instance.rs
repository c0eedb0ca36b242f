//! The in-memory `zitadel.instances`: its rules and how its changes apply.

use super::*;

impl InMemoryState {
    /// Checks, then (unless `check_only`) applies, a change of `zitadel.instances`.
    pub(super) fn run_instance(
        &mut self,
        change: &InstanceChange,
        at: OffsetDateTime,
        check_only: bool,
    ) -> Result<u64> {
        match change {
            InstanceChange::Create { id, name } => {
                check_non_empty("name", name)?;
                if let Some(existing) = self.instances.get(id.as_str())
                    && existing.deleted_at.is_none()
                {
                    return Err(Error::already_exists(Rule::InstanceId, id));
                }
                if check_only {
                    return Ok(0);
                }
                self.instances.insert(
                    id.as_str().to_owned(),
                    Instance {
                        id: id.clone(),
                        name: name.clone(),
                        default_org_id: None,
                        iam_project_id: None,
                        console_client_id: None,
                        console_app_id: None,
                        default_language: None,
                        created_at: at,
                        updated_at: at,
                        deleted_at: None,
                    },
                );
                Ok(1)
            }
            InstanceChange::Update { id, update } => {
                if let Some(name) = &update.name {
                    check_non_empty("name", name)?;
                }
                let Some(row) = self
                    .instances
                    .get_mut(id.as_str())
                    .filter(|r| r.deleted_at.is_none())
                else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                let set = |target: &mut Option<String>, value: &Option<String>| {
                    if let Some(v) = value {
                        *target = Some(v.clone());
                    }
                };
                if let Some(name) = &update.name {
                    row.name = name.clone();
                }
                set(&mut row.default_org_id, &update.default_org_id);
                set(&mut row.iam_project_id, &update.iam_project_id);
                set(&mut row.console_client_id, &update.console_client_id);
                set(&mut row.console_app_id, &update.console_app_id);
                set(&mut row.default_language, &update.default_language);
                row.updated_at = at;
                Ok(1)
            }
            InstanceChange::Remove { id } => {
                let Some(row) = self
                    .instances
                    .get_mut(id.as_str())
                    .filter(|r| r.deleted_at.is_none())
                else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                row.deleted_at = Some(at);
                row.updated_at = at;
                Ok(1)
            }
        }
    }
}

impl InMemoryState {
    pub fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.instances
            .get(id.as_str())
            .filter(|i| i.deleted_at.is_none())
            .cloned()
            .ok_or_else(|| Error::not_found("instance", id))
    }

    pub fn instances(
        &self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>> {
        let rows: Vec<Instance> = self.matching_instances(criteria).cloned().collect();
        page_named(rows, page, |i| {
            Keyset::of_named(
                page.sort,
                &i.name,
                i.created_at,
                i.updated_at,
                i.id.as_str(),
            )
        })
    }

    pub fn count_instances(&self, criteria: &InstanceCriteria) -> u64 {
        self.matching_instances(criteria).count() as u64
    }

    pub(super) fn matching_instances<'a>(
        &'a self,
        criteria: &'a InstanceCriteria,
    ) -> impl Iterator<Item = &'a Instance> + 'a {
        let domain_owners: Vec<&String> = criteria
            .custom_domains
            .iter()
            .filter_map(|d| self.custom_domains.get(&lower(d)))
            .collect();
        self.instances
            .values()
            .filter(|i| criteria.include_deleted || i.deleted_at.is_none())
            .filter(|i| criteria.ids.is_empty() || criteria.ids.contains(&i.id))
            .filter(move |i| {
                criteria.custom_domains.is_empty()
                    || domain_owners.iter().any(|owner| *owner == i.id.as_str())
            })
            .filter(|i| criteria.name.as_ref().is_none_or(|m| m.matches(&i.name)))
    }

    pub fn instance_by_host(&self, host: &str) -> Result<Instance> {
        let host = lower(host);
        self.custom_domains
            .get(&host)
            .and_then(|instance| InstanceId::new(instance.clone()).ok())
            .and_then(|id| self.instance(&id).ok())
            .ok_or_else(|| Error::not_found("instance for host", host))
    }

    /// Every row of every table, for comparisons (`verify`).
    pub fn all_instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    pub(super) fn check_instance_exists(&self, id: &InstanceId) -> Result<()> {
        // The foreign key references the row, soft-deleted or not.
        if self.instances.contains_key(id.as_str()) {
            Ok(())
        } else {
            Err(Error::not_found("instance", id))
        }
    }
}
