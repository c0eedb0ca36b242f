//! The in-memory `zitadel.org_domains`: its rules and how its changes apply.

use super::*;

impl InMemoryState {
    /// Checks, then (unless `check_only`) applies, a change of `zitadel.org_domains`.
    pub(super) fn run_org_domain(
        &mut self,
        change: &OrgDomainChange,
        at: OffsetDateTime,
        check_only: bool,
    ) -> Result<u64> {
        match change {
            OrgDomainChange::Insert {
                instance_id,
                org_id,
                domain,
            } => {
                check_domain_len(domain)?;
                self.check_org_exists(instance_id, org_id)?;
                let key = org_domain_key(instance_id, org_id, domain);
                if self.org_domains.contains_key(&key) {
                    return Err(Error::already_exists(Rule::OrganizationDomain, domain));
                }
                if check_only {
                    return Ok(0);
                }
                self.org_domains.insert(
                    key,
                    OrganizationDomain {
                        instance_id: instance_id.clone(),
                        org_id: org_id.clone(),
                        domain: domain.clone(),
                        is_verified: false,
                        is_primary: false,
                        validation_type: None,
                        created_at: at,
                        updated_at: at,
                    },
                );
                Ok(1)
            }
            OrgDomainChange::SetValidation {
                instance_id,
                org_id,
                domain,
                validation_type,
            } => {
                let key = org_domain_key(instance_id, org_id, domain);
                if check_only {
                    return Ok(0);
                }
                Ok(match self.org_domains.get_mut(&key) {
                    Some(row) => {
                        row.validation_type = Some(*validation_type);
                        row.updated_at = at;
                        1
                    }
                    None => 0,
                })
            }
            OrgDomainChange::SetVerified {
                instance_id,
                org_id,
                domain,
            } => {
                let key = org_domain_key(instance_id, org_id, domain);
                if !self.org_domains.contains_key(&key) {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    String::new(),
                    String::new(),
                );
                let taken = self
                    .org_domains
                    .range(from..)
                    .take_while(|(k, _)| k.0 == key.0)
                    .any(|(k, d)| k.1 != key.1 && k.2 == key.2 && d.is_verified);
                if taken {
                    return Err(Error::already_exists(
                        Rule::VerifiedOrganizationDomain,
                        domain,
                    ));
                }
                if check_only {
                    return Ok(0);
                }
                let Some(row) = self.org_domains.get_mut(&key) else {
                    return Ok(0);
                };
                row.is_verified = true;
                row.updated_at = at;
                Ok(1)
            }
            OrgDomainChange::SetPrimary {
                instance_id,
                org_id,
                domain,
            } => {
                let key = org_domain_key(instance_id, org_id, domain);
                if !self.org_domains.contains_key(&key) || check_only {
                    return Ok(0);
                }
                let mut n = 0;
                let from = (key.0.clone(), key.1.clone(), String::new());
                for (k, row) in self
                    .org_domains
                    .range_mut(from..)
                    .take_while(|(k, _)| k.0 == key.0 && k.1 == key.1)
                {
                    if row.is_primary || *k == key {
                        row.is_primary = *k == key;
                        row.updated_at = at;
                        n += 1;
                    }
                }
                Ok(n)
            }
            OrgDomainChange::Delete {
                instance_id,
                org_id,
                domain,
            } => {
                if check_only {
                    return Ok(0);
                }
                let key = org_domain_key(instance_id, org_id, domain);
                Ok(u64::from(self.org_domains.remove(&key).is_some()))
            }
            OrgDomainChange::DeleteAllOfOrg {
                instance_id,
                org_id,
            } => {
                if check_only {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    org_id.as_str().to_owned(),
                    String::new(),
                );
                let keys = keys_of(&self.org_domains, from, |k| {
                    k.0 == instance_id.as_str() && k.1 == org_id.as_str()
                });
                for key in &keys {
                    self.org_domains.remove(key);
                }
                Ok(keys.len() as u64)
            }
            OrgDomainChange::DeleteAllOfInstance { instance_id } => {
                if check_only {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    String::new(),
                    String::new(),
                );
                let keys = keys_of(&self.org_domains, from, |k| k.0 == instance_id.as_str());
                for key in &keys {
                    self.org_domains.remove(key);
                }
                Ok(keys.len() as u64)
            }
        }
    }
}

impl InMemoryState {
    pub fn org_domains(
        &self,
        instance_id: &InstanceId,
        org_id: Option<&OrgId>,
    ) -> Vec<OrganizationDomain> {
        let mut rows: Vec<_> = self
            .org_domains
            .values()
            .filter(|d| d.instance_id == *instance_id && org_id.is_none_or(|o| d.org_id == *o))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (&a.org_id, &a.domain).cmp(&(&b.org_id, &b.domain)));
        rows
    }

    pub fn all_org_domains(&self) -> impl Iterator<Item = &OrganizationDomain> {
        self.org_domains.values()
    }
}
