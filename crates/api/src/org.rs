//! `tenancy.org.v2.OrganizationService`.

use std::collections::HashMap;

use tenancy_core::Error;
use tenancy_core::challenge::Publication;
use tenancy_core::command::{
    AddOrganization, AddOrganizationDomain, DeactivateOrganization,
    GenerateOrganizationDomainValidation, ReactivateOrganization, RemoveOrganization,
    RemoveOrganizationDomain, RenameOrganization, SetOrganizationDomainPrimary,
    ValidateOrganizationDomain,
};
use tenancy_core::id::OrgId;
use tenancy_core::query::{
    DomainCriteria, DomainOwner, KeyValue, Keyset, NameSort, OrganizationCriteria, Pagination,
};
use tonic::{Request, Response, Status};

use crate::convert::{
    org_state, org_state_filter, requested_validation_type, text_match, timestamp, validation_type,
};
use crate::error::status;
use crate::paging::{Page, fingerprint, sorting};
use crate::pb::org::v2::organization_service_server::OrganizationService;
use crate::pb::org::v2::*;
use crate::service::Api;

/// An organization id from the request field `field`, an error naming that field.
fn org_id_at(id: &str, field: &'static str) -> Result<OrgId, Status> {
    OrgId::new(id).map_err(|e| status(crate::convert::renamed(e, field)))
}

fn org_id(id: &str) -> Result<OrgId, Status> {
    org_id_at(id, "organization_id")
}

/// At most one filter of each kind: a second one would only be an AND with itself.
fn once<T>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), Status> {
    if slot.replace(value).is_some() {
        return Err(status(Error::invalid(field, "given more than once")));
    }
    Ok(())
}

#[tonic::async_trait]
impl OrganizationService for Api {
    async fn add_organization(
        &self,
        request: Request<AddOrganizationRequest>,
    ) -> Result<Response<AddOrganizationResponse>, Status> {
        let (id, at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(AddOrganization {
                        instance_id,
                        id: r.organization_id,
                        name: r.name,
                    })
                },
            )
            .await?;
        Ok(Response::new(AddOrganizationResponse {
            organization_id: id.as_str().to_owned(),
            creation_date: timestamp(at),
        }))
    }

    async fn update_organization(
        &self,
        request: Request<UpdateOrganizationRequest>,
    ) -> Result<Response<UpdateOrganizationResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(RenameOrganization {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                        name: r.name,
                    })
                },
            )
            .await?;
        Ok(Response::new(UpdateOrganizationResponse {
            change_date: timestamp(at),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<ListOrganizationsRequest>,
    ) -> Result<Response<ListOrganizationsResponse>, Status> {
        let caller = Api::caller(&request)?;
        let instance_id = self.instance(&caller, "").await?;
        let request = request.into_inner();
        let sort = sorting(request.sorting_column, |v| {
            match OrgFieldName::try_from(v).ok()? {
                OrgFieldName::Unspecified | OrgFieldName::Name => Some(NameSort::Name),
                OrgFieldName::CreationDate => Some(NameSort::CreatedAt),
            }
        })?;
        let mut criteria = OrganizationCriteria {
            instance_id: Some(instance_id.clone()),
            ..OrganizationCriteria::default()
        };
        let (mut name, mut domain, mut state, mut id) = (None, None, None, None);
        for filter in &request.filters {
            match &filter.filter {
                Some(organization_search_filter::Filter::NameFilter(f)) => once(
                    &mut name,
                    text_match("filters.name_filter.method", &f.name, f.method)?,
                    "filters.name_filter",
                )?,
                Some(organization_search_filter::Filter::DomainFilter(f)) => once(
                    &mut domain,
                    text_match("filters.domain_filter.method", &f.domain, f.method)?,
                    "filters.domain_filter",
                )?,
                Some(organization_search_filter::Filter::StateFilter(f)) => once(
                    &mut state,
                    org_state_filter(f.state)?,
                    "filters.state_filter",
                )?,
                Some(organization_search_filter::Filter::IdFilter(f)) => once(
                    &mut id,
                    org_id_at(&f.id, "filters.id_filter.id")?,
                    "filters.id_filter",
                )?,
                None => return Err(status(Error::invalid("filters", "an empty filter"))),
            }
        }
        criteria.name = name;
        criteria.domain = domain;
        criteria.state = state.flatten();
        criteria.ids = id.into_iter().collect();
        let fingerprint = fingerprint("organizations", &instance_id, sort, &request.filters);
        let page = Page::parse(request.pagination.as_ref(), &self.page_tokens, fingerprint)?;
        let mut uow = self.read(&caller).await?;
        let rows = uow
            .list_organizations(&criteria, &page.pagination(sort))
            .await
            .map_err(status)?;
        let total = match page.counts_total() {
            true => Some(uow.count_organizations(&criteria).await.map_err(status)?),
            false => None,
        };
        let (rows, pagination) = page.finish(rows, total, &self.page_tokens, |o| {
            Keyset::of_named(sort, &o.name, o.created_at, o.updated_at, o.id.as_str())
        })?;
        // The page's primary domains in one query.
        let primary: HashMap<String, String> = if rows.is_empty() {
            HashMap::new()
        } else {
            let owners = rows.iter().map(|o| o.id.clone()).collect();
            let criteria = DomainCriteria::of_instance(&instance_id)
                .owner(DomainOwner::Organizations(owners))
                .primary(true);
            uow.list_domains(&criteria, &Pagination::default())
                .await
                .map_err(status)?
                .into_iter()
                .filter_map(|d| Some((d.org_id?.as_str().to_owned(), d.domain)))
                .collect()
        };
        let organizations = rows
            .into_iter()
            .map(|o| Organization {
                primary_domain: primary.get(o.id.as_str()).cloned().unwrap_or_default(),
                id: o.id.as_str().to_owned(),
                state: org_state(o.state).into(),
                name: o.name,
                creation_date: timestamp(o.created_at),
                change_date: timestamp(o.updated_at),
            })
            .collect();
        Ok(Response::new(ListOrganizationsResponse {
            organizations,
            pagination: Some(pagination),
        }))
    }

    async fn deactivate_organization(
        &self,
        request: Request<DeactivateOrganizationRequest>,
    ) -> Result<Response<DeactivateOrganizationResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(DeactivateOrganization {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                    })
                },
            )
            .await?;
        Ok(Response::new(DeactivateOrganizationResponse {
            change_date: timestamp(at),
        }))
    }

    async fn activate_organization(
        &self,
        request: Request<ActivateOrganizationRequest>,
    ) -> Result<Response<ActivateOrganizationResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(ReactivateOrganization {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                    })
                },
            )
            .await?;
        Ok(Response::new(ActivateOrganizationResponse {
            change_date: timestamp(at),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<DeleteOrganizationRequest>,
    ) -> Result<Response<DeleteOrganizationResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(RemoveOrganization {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                    })
                },
            )
            .await?;
        Ok(Response::new(DeleteOrganizationResponse {
            deletion_date: timestamp(at),
        }))
    }

    async fn add_organization_domain(
        &self,
        request: Request<AddOrganizationDomainRequest>,
    ) -> Result<Response<AddOrganizationDomainResponse>, Status> {
        let (_, at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(AddOrganizationDomain {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                        domain: r.domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(AddOrganizationDomainResponse {
            creation_date: timestamp(at),
        }))
    }

    async fn list_organization_domains(
        &self,
        request: Request<ListOrganizationDomainsRequest>,
    ) -> Result<Response<ListOrganizationDomainsResponse>, Status> {
        let caller = Api::caller(&request)?;
        let instance_id = self.instance(&caller, "").await?;
        let request = request.into_inner();
        let org = org_id(&request.organization_id)?;
        let sort = sorting(
            request.sorting_column,
            |v| match DomainFieldName::try_from(v).ok()? {
                DomainFieldName::Unspecified | DomainFieldName::CreationDate => {
                    Some(NameSort::CreatedAt)
                }
                DomainFieldName::Name => Some(NameSort::Name),
            },
        )?;
        let mut matches = Vec::new();
        for filter in &request.filters {
            match &filter.filter {
                Some(domain_search_filter::Filter::DomainNameFilter(f)) => matches.push(
                    text_match("filters.domain_name_filter.method", &f.domain, f.method)?,
                ),
                None => return Err(status(Error::invalid("filters", "an empty filter"))),
            }
        }
        let fingerprint = fingerprint(
            "org_domains",
            format!("{instance_id}/{org}"),
            sort,
            &request.filters,
        );
        let page = Page::parse(request.pagination.as_ref(), &self.page_tokens, fingerprint)?;
        let mut uow = self.read(&caller).await?;
        uow.get_organization(&instance_id, &org)
            .await
            .map_err(status)?;
        let rows: Vec<_> = uow
            .list_org_domains(&instance_id, &org)
            .await
            .map_err(status)?
            .into_iter()
            .filter(|d| matches.iter().all(|m| m.matches(&d.domain)))
            .collect();
        let (rows, pagination) = page.cut_in_memory(rows, sort, &self.page_tokens, |d| {
            let value = match sort {
                NameSort::CreatedAt => KeyValue::Time(d.created_at),
                _ => KeyValue::Text(d.domain.clone()),
            };
            Keyset {
                value,
                id: KeyValue::Text(d.domain.clone()),
            }
        })?;
        let domains = rows
            .into_iter()
            .map(|d| Domain {
                organization_id: d.org_id.as_str().to_owned(),
                domain_name: d.domain,
                is_verified: d.is_verified,
                is_primary: d.is_primary,
                validation_type: validation_type(d.validation_type).into(),
                creation_date: timestamp(d.created_at),
            })
            .collect();
        Ok(Response::new(ListOrganizationDomainsResponse {
            domains,
            pagination: Some(pagination),
        }))
    }

    async fn delete_organization_domain(
        &self,
        request: Request<DeleteOrganizationDomainRequest>,
    ) -> Result<Response<DeleteOrganizationDomainResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(RemoveOrganizationDomain {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                        domain: r.domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(DeleteOrganizationDomainResponse {
            deletion_date: timestamp(at),
        }))
    }

    async fn set_primary_organization_domain(
        &self,
        request: Request<SetPrimaryOrganizationDomainRequest>,
    ) -> Result<Response<SetPrimaryOrganizationDomainResponse>, Status> {
        let ((), at) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(SetOrganizationDomainPrimary {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                        domain: r.domain,
                    })
                },
            )
            .await?;
        Ok(Response::new(SetPrimaryOrganizationDomainResponse {
            change_date: timestamp(at),
        }))
    }

    async fn generate_organization_domain_validation(
        &self,
        request: Request<GenerateOrganizationDomainValidationRequest>,
    ) -> Result<Response<GenerateOrganizationDomainValidationResponse>, Status> {
        let (validation, _) = self
            .write(
                request,
                None,
                |_| "",
                |instance_id, r| {
                    Ok(GenerateOrganizationDomainValidation {
                        instance_id,
                        org_id: org_id(&r.organization_id)?,
                        domain: r.domain,
                        validation_type: requested_validation_type(r.r#type)?,
                        settings: self.challenge.clone(),
                    })
                },
            )
            .await?;
        let url = match validation.publication {
            Publication::DnsTxt { name, .. } => name,
            Publication::HttpFile { url, .. } => url,
        };
        Ok(Response::new(
            GenerateOrganizationDomainValidationResponse {
                token: validation.token,
                url,
                expiration_date: timestamp(validation.expires_at),
            },
        ))
    }

    async fn verify_organization_domain(
        &self,
        request: Request<VerifyOrganizationDomainRequest>,
    ) -> Result<Response<VerifyOrganizationDomainResponse>, Status> {
        let caller = Api::caller(&request)?;
        let instance_id = self.instance(&caller, "").await?;
        let request = request.into_inner();
        let command = ValidateOrganizationDomain {
            instance_id,
            org_id: org_id(&request.organization_id)?,
            domain: request.domain,
        };
        let at = self.clock.now();
        command
            .run(
                &*self.factory,
                &*self.events,
                &*self.checker,
                &self.context(&caller, at),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(VerifyOrganizationDomainResponse {
            change_date: timestamp(at),
        }))
    }
}
