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

/// The API's own base URL, `https://{api id}.execute-api.{region}.amazonaws.com[/{stage}]`, built
/// from what API Gateway names the API (not the domain the caller used, which another mapping
/// could make differ), and the function's region. `None` outside API Gateway.
pub(super) fn api_base_url(request: &Request) -> Option<String> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else { return None };
    let api_id = context
        .apiid
        .as_deref()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))?;
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))?;
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    let base = format!("https://{api_id}.execute-api.{region}.{suffix}");
    Some(match context.stage.as_deref() {
        Some(stage) if stage != "$default" && !stage.is_empty() => format!("{base}/{stage}"),
        _ => base,
    })
}

/// The client's IP as API Gateway saw it (per-IP limits use it).
pub fn source_ip(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    }
}
