//! Which protocol a request speaks: gRPC when its content type is `application/grpc*`,
//! Connect otherwise (the routes and the metrics both ask).

use axum::extract::Request;
use axum::http::header;

pub(crate) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}
