//! What API Gateway says about a request besides its body: its id, the caller's address, the
//! route it matched, the URL it came to.

use lambda_http::{Request, RequestExt, request::RequestContext};

pub(super) fn request_id(request: &Request) -> Option<String> {
    if let Some(context) = request.lambda_context_ref() {
        return Some(context.request_id.clone());
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    }
}

/// The route API Gateway matched (`"GET /.well-known/jwks.json"`): what a function that serves
/// two routes dispatches on.
pub fn route_key(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.route_key.as_deref(),
        _ => None,
    }
}

/// The API's base URL as API Gateway says the request came to it: its own domain with the stage
/// (`https://{id}.execute-api.{region}.amazonaws.com/staging`), or a custom domain, mapped at
/// its root.
pub(super) fn api_base_url(request: &Request) -> Option<String> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else { return None };
    let domain = context.domain_name.as_deref()?;
    match context.stage.as_deref() {
        Some(stage) if domain.ends_with(".amazonaws.com") && stage != "$default" => {
            Some(format!("https://{domain}/{stage}"))
        }
        _ => Some(format!("https://{domain}")),
    }
}

/// The client's IP as API Gateway saw it (per-IP limits use it).
pub fn source_ip(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    }
}
