//! `tenancy.instance.v2.InstanceService`.

use tenancy_core::Error;
use tenancy_core::command::{
    AddInstanceDomain, AddInstanceTrustedDomain, RemoveInstance, RemoveInstanceDomain,
    RemoveInstanceTrustedDomain, RenameInstance, SetInstanceDomainPrimary,
};
use tenancy_core::id::InstanceId;
use tenancy_core::model::{Instance as InstanceRow, InstanceDomain, InstanceDomainKind};
use tenancy_core::query::{InstanceCriteria, KeyValue, Keyset, NameSort};
use tenancy_core::value::DomainName;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::convert::{text_match, timestamp};
use crate::error::status;
use crate::paging::{Page, fingerprint, sorting};
use crate::pb::filter::v2::{PaginationRequest, PaginationResponse};
use crate::pb::instance::v2::instance_service_server::InstanceService;
use crate::pb::instance::v2::*;
use crate::service::Api;

fn instance_message(row: InstanceRow, domains: Vec<InstanceDomain>) -> Instance {
    Instance {
        id: row.id.as_str().to_owned(),
        change_date: timestamp(row.updated_at),
        creation_date: timestamp(row.created_at),
        state: State::Running.into(),
        name: row.name,
        version: String::new(),
        custom_domains: domains.into_iter().filter_map(custom_domain).collect(),
        default_org_id: row.default_org_id.unwrap_or_default(),
        default_language: row.default_language.unwrap_or_default(),
    }
}

fn custom_domain(row: InstanceDomain) -> Option<CustomDomain> {
    match row.kind {
        InstanceDomainKind::Custom {
            is_primary,
            is_generated,
        } => Some(CustomDomain {
            instance_id: row.instance_id.as_str().to_owned(),
            creation_date: timestamp(row.created_at),
            domain: row.domain,
            primary: is_primary,
            generated: is_generated,
        }),
        InstanceDomainKind::Trusted => None,
    }
}

/// The position of an instance domain in a list sorted by domain or creation date; the
/// domain breaks ties (it is unique per instance and type).
fn domain_key(sort: NameSort, domain: &str, created_at: time::OffsetDateTime) -> Keyset {
    let value = match sort {
        NameSort::CreatedAt => KeyValue::Time(created_at),
        _ => KeyValue::Text(domain.to_owned()),
    };
    Keyset {
        value,
        id: KeyValue::Text(domain.to_owned()),
    }
}

impl Api {
    /// One kind of an instance's domains (an instance has few): the rows `keep` keeps,
    /// sorted by domain or creation date and paged in memory.
    #[allow(clippy::too_many_arguments)]
    async fn instance_domain_page<F: serde::Serialize>(
        &self,
        caller: &Caller,
        list: &str,
        instance_id: &InstanceId,
        sort: NameSort,
        filters: &F,
        pagination: Option<&PaginationRequest>,
        keep: impl Fn(&InstanceDomain) -> bool,
    ) -> Result<(Vec<InstanceDomain>, PaginationResponse), Status> {
        let fingerprint = fingerprint(list, instance_id, sort, filters);
        let page = Page::parse(pagination, &self.page_tokens, fingerprint)?;
        let rows = self
            .read(caller)
            .await?
            .list_instance_domains(instance_id)
            .await
            .map_err(status)?;
        let rows: Vec<InstanceDomain> = rows.into_iter().filter(keep).collect();
        page.cut_in_memory(rows, sort, &self.page_tokens, |row| {
            domain_key(sort, &row.domain, row.created_at)
        })
    }
}

#[tonic::async_trait]
impl InstanceService for Api {
    async fn get_instance(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        let caller = Api::caller(&request)?;
        let id = self
            .instance(&caller, &request.get_ref().instance_id)
            .await?;
        let mut uow = self.read(&caller).await?;
        let row = uow.get_instance(&id).await.map_err(status)?;
        let domains = uow.list_instance_domains(&id).await.map_err(status)?;
        Ok(Response::new(GetInstanceResponse {
            instance: Some(instance_message(row, domains)),
        }))
    }

    async fn update_instance(
        &self,
        request: Request<UpdateInstanceRequest>,
    ) -> Result<Response<UpdateInstanceResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(RenameInstance {
                        instance_id,
                        name: r.instance_name,
                    })
                },
            )
            .await?;
        Ok(Response::new(UpdateInstanceResponse {
            change_date: timestamp(at),
        }))
    }

    async fn delete_instance(
        &self,
        request: Request<DeleteInstanceRequest>,
    ) -> Result<Response<DeleteInstanceResponse>, Status> {
        let caller = Api::caller(&request)?;
        Api::require_system(&caller, "DeleteInstance")?;
        let instance_id = InstanceId::new(request.into_inner().instance_id).map_err(status)?;
        let ((), at) = self.run(&caller, &RemoveInstance { instance_id }).await?;
        Ok(Response::new(DeleteInstanceResponse {
            deletion_date: timestamp(at),
        }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let caller = Api::caller(&request)?;
        Api::require_system(&caller, "ListInstances")?;
        let request = request.into_inner();
        let sort = sorting(request.sorting_column, |v| {
            match FieldName::try_from(v).ok()? {
                FieldName::Unspecified | FieldName::CreationDate => Some(NameSort::CreatedAt),
                FieldName::Id => Some(NameSort::Id),
                FieldName::Name => Some(NameSort::Name),
            }
        })?;
        let mut criteria = InstanceCriteria::default();
        for filter in &request.filters {
            match &filter.filter {
                Some(filter::Filter::InIdsFilter(ids)) => {
                    for id in &ids.ids {
                        criteria.ids.push(InstanceId::new(id.clone()).map_err(|e| {
                            status(crate::convert::renamed(e, "filters.in_ids_filter.ids"))
                        })?);
                    }
                }
                Some(filter::Filter::CustomDomainsFilter(domains)) => {
                    criteria
                        .custom_domains
                        .extend(domains.domains.iter().cloned());
                }
                None => return Err(status(Error::invalid("filters", "an empty filter"))),
            }
        }
        let fingerprint = fingerprint("instances", "*", sort, &request.filters);
        let page = Page::parse(request.pagination.as_ref(), &self.page_tokens, fingerprint)?;
        let mut uow = self.read(&caller).await?;
        let rows = uow
            .list_instances(&criteria, &page.pagination(sort))
            .await
            .map_err(status)?;
        let total = match page.counts_total() {
            true => Some(uow.count_instances(&criteria).await.map_err(status)?),
            false => None,
        };
        let (rows, pagination) = page.finish(rows, total, &self.page_tokens, |i| {
            Keyset::of_named(sort, &i.name, i.created_at, i.updated_at, i.id.as_str())
        })?;
        Ok(Response::new(ListInstancesResponse {
            // Lists leave custom_domains empty (one query per page); GetInstance fills it.
            instances: rows
                .into_iter()
                .map(|i| instance_message(i, vec![]))
                .collect(),
            pagination: Some(pagination),
        }))
    }

    async fn add_custom_domain(
        &self,
        request: Request<AddCustomDomainRequest>,
    ) -> Result<Response<AddCustomDomainResponse>, Status> {
        let (_, at) = self
            .write(
                request,
                Some("AddCustomDomain"),
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(AddInstanceDomain {
                        instance_id,
                        domain: r.custom_domain,
                        generated: false,
                    })
                },
            )
            .await?;
        Ok(Response::new(AddCustomDomainResponse {
            creation_date: timestamp(at),
        }))
    }

    async fn remove_custom_domain(
        &self,
        request: Request<RemoveCustomDomainRequest>,
    ) -> Result<Response<RemoveCustomDomainResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                Some("RemoveCustomDomain"),
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(RemoveInstanceDomain {
                        instance_id,
                        domain: r.custom_domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(RemoveCustomDomainResponse {
            deletion_date: timestamp(at),
        }))
    }

    async fn set_primary_custom_domain(
        &self,
        request: Request<SetPrimaryCustomDomainRequest>,
    ) -> Result<Response<SetPrimaryCustomDomainResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                Some("SetPrimaryCustomDomain"),
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(SetInstanceDomainPrimary {
                        instance_id,
                        domain: r.custom_domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(SetPrimaryCustomDomainResponse {
            change_date: timestamp(at),
        }))
    }

    async fn list_custom_domains(
        &self,
        request: Request<ListCustomDomainsRequest>,
    ) -> Result<Response<ListCustomDomainsResponse>, Status> {
        let caller = Api::caller(&request)?;
        let request = request.into_inner();
        let instance_id = self.instance(&caller, &request.instance_id).await?;
        let sort = sorting(
            request.sorting_column,
            |v| match DomainFieldName::try_from(v).ok()? {
                DomainFieldName::Unspecified | DomainFieldName::CreationDate => {
                    Some(NameSort::CreatedAt)
                }
                DomainFieldName::Domain => Some(NameSort::Name),
            },
        )?;
        let mut matches = Vec::new();
        let (mut generated, mut primary) = (None, None);
        for filter in &request.filters {
            match &filter.filter {
                Some(custom_domain_filter::Filter::DomainFilter(f)) => {
                    matches.push(text_match(
                        "filters.domain_filter.method",
                        &f.domain,
                        f.method,
                    )?);
                }
                Some(custom_domain_filter::Filter::GeneratedFilter(v)) => generated = Some(*v),
                Some(custom_domain_filter::Filter::PrimaryFilter(v)) => primary = Some(*v),
                None => return Err(status(Error::invalid("filters", "an empty filter"))),
            }
        }
        let (rows, pagination) = self
            .instance_domain_page(
                &caller,
                "custom_domains",
                &instance_id,
                sort,
                &request.filters,
                request.pagination.as_ref(),
                |row| match row.kind {
                    InstanceDomainKind::Custom {
                        is_primary,
                        is_generated,
                    } => {
                        matches.iter().all(|m| m.matches(&row.domain))
                            && generated.is_none_or(|g| g == is_generated)
                            && primary.is_none_or(|p| p == is_primary)
                    }
                    InstanceDomainKind::Trusted => false,
                },
            )
            .await?;
        Ok(Response::new(ListCustomDomainsResponse {
            domains: rows.into_iter().filter_map(custom_domain).collect(),
            pagination: Some(pagination),
        }))
    }

    async fn add_trusted_domain(
        &self,
        request: Request<AddTrustedDomainRequest>,
    ) -> Result<Response<AddTrustedDomainResponse>, Status> {
        let (_, at) = self
            .write(
                request,
                None,
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(AddInstanceTrustedDomain {
                        instance_id,
                        domain: r.trusted_domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(AddTrustedDomainResponse {
            creation_date: timestamp(at),
        }))
    }

    async fn remove_trusted_domain(
        &self,
        request: Request<RemoveTrustedDomainRequest>,
    ) -> Result<Response<RemoveTrustedDomainResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |r| &r.instance_id,
                |instance_id, r| {
                    Ok(RemoveInstanceTrustedDomain {
                        instance_id,
                        domain: r.trusted_domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(RemoveTrustedDomainResponse {
            deletion_date: timestamp(at),
        }))
    }

    async fn list_trusted_domains(
        &self,
        request: Request<ListTrustedDomainsRequest>,
    ) -> Result<Response<ListTrustedDomainsResponse>, Status> {
        let caller = Api::caller(&request)?;
        let request = request.into_inner();
        let instance_id = self.instance(&caller, &request.instance_id).await?;
        let sort = sorting(
            request.sorting_column,
            |v| match TrustedDomainFieldName::try_from(v).ok()? {
                TrustedDomainFieldName::Unspecified | TrustedDomainFieldName::CreationDate => {
                    Some(NameSort::CreatedAt)
                }
                TrustedDomainFieldName::Domain => Some(NameSort::Name),
            },
        )?;
        let mut matches = Vec::new();
        for filter in &request.filters {
            match &filter.filter {
                Some(trusted_domain_filter::Filter::DomainFilter(f)) => {
                    matches.push(text_match(
                        "filters.domain_filter.method",
                        &f.domain,
                        f.method,
                    )?);
                }
                None => return Err(status(Error::invalid("filters", "an empty filter"))),
            }
        }
        let (rows, pagination) = self
            .instance_domain_page(
                &caller,
                "trusted_domains",
                &instance_id,
                sort,
                &request.filters,
                request.pagination.as_ref(),
                |row| {
                    row.kind == InstanceDomainKind::Trusted
                        && matches.iter().all(|m| m.matches(&row.domain))
                },
            )
            .await?;
        let trusted_domain = rows
            .into_iter()
            .map(|d| TrustedDomain {
                instance_id: d.instance_id.as_str().to_owned(),
                creation_date: timestamp(d.created_at),
                domain: d.domain,
            })
            .collect();
        Ok(Response::new(ListTrustedDomainsResponse {
            trusted_domain,
            pagination: Some(pagination),
        }))
    }

    async fn resolve_host(
        &self,
        request: Request<ResolveHostRequest>,
    ) -> Result<Response<ResolveHostResponse>, Status> {
        let caller = Api::caller(&request)?;
        let request = request.into_inner();
        let instance_id = self
            .hosts
            .instance_by_host(&request.host)
            .await
            .map_err(status)?;
        if let crate::auth::Principal::Instance {
            instance_id: own, ..
        } = &caller.principal
            && *own != instance_id
        {
            // Worded as for a host nobody owns.
            let host = DomainName::from_host(&request.host).map_err(status)?;
            return Err(status(Error::not_found("instance for host", host)));
        }
        let organization_id = match request.organization_domain.as_str() {
            "" => String::new(),
            domain => self
                .hosts
                .org_by_domain(&instance_id, domain)
                .await
                .map_err(status)?
                .as_str()
                .to_owned(),
        };
        Ok(Response::new(ResolveHostResponse {
            instance_id: instance_id.as_str().to_owned(),
            organization_id,
        }))
    }
}
