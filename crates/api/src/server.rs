//! The HTTP surface: one route per method path, served as gRPC (tonic, with server
//! reflection) when the content type is `application/grpc*`, and otherwise as a Connect
//! unary call with a JSON body (`POST /<package>.<Service>/<Method>`, the protocol
//! ZITADEL's v2 Connect handlers speak), both from the same service implementations.
//! Every request passes the authentication layer first.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tower::ServiceExt as _;

use crate::auth::{ApiTokens, Caller, request_host};
use crate::error::connect_code;
use crate::pb;
use crate::pb::instance::v2::instance_service_server::{InstanceService, InstanceServiceServer};
use crate::pb::org::v2::organization_service_server::{
    OrganizationService, OrganizationServiceServer,
};
use crate::protocol::is_grpc;
use crate::service::Api;

/// Largest request body by default (either protocol); a request over it is refused
/// (RESOURCE_EXHAUSTED over JSON, OUT_OF_RANGE from tonic over gRPC).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The API's routes, ready to merge into the server's router.
pub fn router(
    api: Api,
    tokens: ApiTokens,
    max_request_bytes: usize,
) -> Result<Router, tenancy_core::Error> {
    router_with_metrics(api, tokens, max_request_bytes, Arc::default())
}

/// [`router`], counting and timing every request in `metrics` (register them with
/// [`crate::metrics::ApiMetrics::register`]).
pub fn router_with_metrics(
    api: Api,
    tokens: ApiTokens,
    max_request_bytes: usize,
    metrics: Arc<crate::metrics::ApiMetrics>,
) -> Result<Router, tenancy_core::Error> {
    let api = Arc::new(api);
    let reflection = |e: tonic_reflection::server::Error| {
        tenancy_core::Error::internal(format!("server reflection: {e}"))
    };
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(reflection)?;
    let grpc = tonic::service::Routes::new(
        InstanceServiceServer::from_arc(api.clone()).max_decoding_message_size(max_request_bytes),
    )
    .add_service(
        OrganizationServiceServer::from_arc(api.clone())
            .max_decoding_message_size(max_request_bytes),
    )
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha)
    .prepare()
    .into_axum_router();
    let json = connect_routes(api, max_request_bytes);
    let split = move |request: Request| {
        let (grpc, json) = (grpc.clone(), json.clone());
        async move {
            let routed = if is_grpc(&request) {
                grpc.oneshot(request).await
            } else {
                json.oneshot(request).await
            };
            routed.into_response()
        }
    };
    Ok(Router::new()
        .route("/{service}/{method}", any(split))
        .layer(middleware::from_fn_with_state(
            Arc::new(tokens),
            authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            metrics,
            crate::metrics::record,
        )))
}

/// The listener to serve the API on: TCP_NODELAY on every connection. Without it a
/// response written in parts (HTTP/2 frames) waits for the client's delayed ACK, 40 ms a
/// page on Linux.
pub fn listener(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    })
}

async fn authenticate(
    State(tokens): State<Arc<ApiTokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let host = match request_host(request.version(), request.headers(), request.uri()) {
        Ok(host) => host,
        Err(why) if is_grpc(&request) => {
            return Status::invalid_argument(why).into_http::<Body>();
        }
        Err(why) => return connect_error(&Status::invalid_argument(why)),
    };
    match tokens.caller(request.headers(), host) {
        Ok(caller) => {
            let written = caller.written.clone();
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            if let Some(token) = written.get()
                && let Ok(value) = HeaderValue::from_str(&token.0)
            {
                response
                    .headers_mut()
                    .insert(crate::auth::CONSISTENCY_HEADER, value);
            }
            response
        }
        Err(why) if is_grpc(&request) => Status::unauthenticated(why).into_http::<Body>(),
        Err(why) => connect_error(&Status::unauthenticated(why)),
    }
}

/// A Connect error: the HTTP status of the code and `{"code", "message"}`.
pub fn connect_error(status: &Status) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
    }
    let (code, http) = connect_code(status.code());
    let body = Body {
        code,
        message: status.message(),
    };
    (http, axum::Json(body)).into_response()
}

/// The encoding of a Connect unary call, from its content type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Proto,
}

fn connect_encoding(content_type: Option<&str>) -> Option<Encoding> {
    let essence = content_type?.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else if essence.eq_ignore_ascii_case("application/proto") {
        Some(Encoding::Proto)
    } else {
        None
    }
}

/// One Connect unary call: decode (JSON or binary protobuf, as the content type says),
/// check the text, call the service, encode the answer the same way. Errors are JSON in
/// both encodings, as the Connect protocol says.
async fn unary<Req, Res, F, Fut>(request: Request, limit: usize, call: F) -> Response
where
    Req: DeserializeOwned + Serialize + prost::Message + Default,
    Res: Serialize + prost::Message,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(encoding) = connect_encoding(content_type) else {
        let status = Status::invalid_argument(
            "content-type must be application/json or application/proto (Connect), or application/grpc",
        );
        let mut response = connect_error(&status);
        *response.status_mut() = axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    };
    if let Some(coding) = parts.headers.get(header::CONTENT_ENCODING)
        && !coding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return connect_error(&Status::unimplemented(format!(
            "content-encoding {} is not supported: send the body uncompressed",
            String::from_utf8_lossy(coding.as_bytes())
        )));
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return connect_error(&Status::resource_exhausted(format!(
            "request body over the limit of {limit} bytes"
        )));
    };
    let message: Req = if bytes.is_empty() {
        Req::default()
    } else {
        let decoded = match encoding {
            Encoding::Json => decode_json(&bytes),
            Encoding::Proto => Req::decode(bytes.as_ref())
                .map_err(|e| Status::invalid_argument(format!("invalid protobuf body: {e}"))),
        };
        match decoded {
            Ok(message) => message,
            Err(status) => return connect_error(&status),
        }
    };
    if let Err(status) = crate::text::check_storable(&message) {
        return connect_error(&status);
    }
    let mut call_request = tonic::Request::new(message);
    if let Some(caller) = parts.extensions.get::<Caller>() {
        call_request.extensions_mut().insert(caller.clone());
    }
    match call(call_request).await {
        Ok(response) => {
            let response = response.into_inner();
            let (body, content_type) = match encoding {
                Encoding::Json => match serde_json::to_vec(&response) {
                    Ok(body) => (body, "application/json"),
                    Err(e) => {
                        return connect_error(&Status::internal(format!(
                            "encoding the answer: {e}"
                        )));
                    }
                },
                Encoding::Proto => (response.encode_to_vec(), "application/proto"),
            };
            let mut response = Body::from(body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(status) => connect_error(&status),
    }
}

/// A JSON body; an error names the field (its JSON path) and what was wrong with it.
fn decode_json<Req: DeserializeOwned>(bytes: &[u8]) -> Result<Req, Status> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde's message for pbjson's "number or string" fields says nothing useful.
        let reason = if inner.to_string().contains("untagged enum") {
            "not a valid number for this field".to_owned()
        } else {
            inner.to_string()
        };
        if path == "." || path.is_empty() {
            Status::invalid_argument(format!("invalid JSON body: {reason}"))
        } else {
            Status::invalid_argument(format!("invalid {path}: {reason}"))
        }
    })
}

macro_rules! connect {
    ($router:ident, $api:ident, $limit:ident, $service:literal, $trait:ident, [$($method:literal => $func:ident),* $(,)?]) => {
        $(
            let api = $api.clone();
            $router = $router.route(
                concat!("/", $service, "/", $method),
                post(move |request: Request| {
                    let api = api.clone();
                    async move {
                        unary(request, $limit, move |r| async move { $trait::$func(&*api, r).await }).await
                    }
                }),
            );
        )*
    };
}

fn connect_routes(api: Arc<Api>, limit: usize) -> Router {
    let mut router = Router::new();
    connect!(router, api, limit, "tenancy.instance.v2.InstanceService", InstanceService, [
        "GetInstance" => get_instance,
        "UpdateInstance" => update_instance,
        "DeleteInstance" => delete_instance,
        "ListInstances" => list_instances,
        "AddCustomDomain" => add_custom_domain,
        "RemoveCustomDomain" => remove_custom_domain,
        "SetPrimaryCustomDomain" => set_primary_custom_domain,
        "ListCustomDomains" => list_custom_domains,
        "AddTrustedDomain" => add_trusted_domain,
        "RemoveTrustedDomain" => remove_trusted_domain,
        "ListTrustedDomains" => list_trusted_domains,
        "ResolveHost" => resolve_host,
    ]);
    connect!(router, api, limit, "tenancy.org.v2.OrganizationService", OrganizationService, [
        "AddOrganization" => add_organization,
        "UpdateOrganization" => update_organization,
        "ListOrganizations" => list_organizations,
        "DeactivateOrganization" => deactivate_organization,
        "ActivateOrganization" => activate_organization,
        "DeleteOrganization" => delete_organization,
        "AddOrganizationDomain" => add_organization_domain,
        "ListOrganizationDomains" => list_organization_domains,
        "DeleteOrganizationDomain" => delete_organization_domain,
        "SetPrimaryOrganizationDomain" => set_primary_organization_domain,
        "GenerateOrganizationDomainValidation" => generate_organization_domain_validation,
        "VerifyOrganizationDomain" => verify_organization_domain,
    ]);
    router.fallback(|| async { connect_error(&Status::unimplemented("no such method")) })
}
