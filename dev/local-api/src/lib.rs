//! `local-api`: the Lambda handlers served on 127.0.0.1, as API Gateway (HTTP API, payload v2)
//! would call them.
//!
//! Each HTTP request becomes the API Gateway v2 event JSON (with the caller's IP as
//! `requestContext.http.sourceIp`), which `lambda_http` turns into a `Request` exactly as it does
//! in Lambda; the same handler functions of `shared::api` answer it. There is no second
//! implementation of any endpoint here, only the translation API Gateway does.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body as AxumBody, to_bytes},
    extract::{ConnectInfo, Request as AxumRequest, State},
    http::{HeaderMap, HeaderValue, Method},
    response::Response as AxumResponse,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};
use shared::{
    App, api,
    error::{ApiError, ErrorCode},
    flow::Deps,
};
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

/// API Gateway refuses payloads over 10 MB; locally 1 MiB is plenty to exercise the handlers'
/// own, much smaller, limits.
const MAX_GATEWAY_BODY_BYTES: usize = 1024 * 1024;

/// The embedded config of `local-api` without `--config`: one SMS client on the sandbox.
pub const LOCAL_CONFIG: &str = include_str!("../local-config.json");

/// The demo web page (`web/` in the repository), served at `/` as static files.
pub const WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web");

type Shared = Arc<App>;

/// An axum handler for one route: the request becomes the API Gateway event of `$route_key`, the
/// `shared::api` handler answers it with the app as `$app`.
macro_rules! lambda_route {
    ($route_key:literal, |$app:ident, $request:ident| $call:expr) => {
        |State($app): State<Shared>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: AxumRequest| async move {
            match to_lambda(req, peer, $route_key).await {
                Ok($request) => respond(run_to_completion(async move { $call.await }).await),
                Err(response) => response,
            }
        }
    };
}

/// What `/sms/status` and `/sms/cancel` take of the app (as their functions build it in Lambda).
fn deps(app: &shared::App) -> Deps<'_> {
    Deps { config: &app.config, store: app.store.as_ref(), clock: app.clock.as_ref() }
}

/// The routes of `template.yaml`'s HTTP API, each with its function's handler.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/sms/auth", post(lambda_route!("POST /sms/auth", |app, r| api::sms_auth(&app, r))))
        .route("/sms/token", post(lambda_route!("POST /sms/token", |app, r| api::sms_token(&app, r))))
        .route(
            "/sms/status",
            post(lambda_route!("POST /sms/status", |app, r| api::sms_status(deps(&app), r))),
        )
        .route(
            "/sms/cancel",
            post(lambda_route!("POST /sms/cancel", |app, r| api::sms_cancel(deps(&app), r))),
        )
        .route("/sms/log", post(lambda_route!("POST /sms/log", |_app, r| api::sms_log(r))))
        .route(
            "/.well-known/jwks.json",
            get(lambda_route!("GET /.well-known/jwks.json", |app, r| api::jwks(&app.results, r))),
        )
        .route(
            "/sms/clients",
            get(lambda_route!("GET /sms/clients", |app, r| api::sms_clients(&app.config, r))),
        )
        .route(
            "/user/info",
            get(lambda_route!("GET /user/info", |app, r| api::user_info(
                &app.config,
                app.store.as_ref(),
                app.clock.as_ref(),
                r
            ))),
        )
        .route(
            "/user/logout",
            post(lambda_route!("POST /user/logout", |app, r| api::user_logout(
                &app.browser_origins,
                app.store.as_ref(),
                r
            ))),
        )
        // Everything else is the demo page's static files, with the headers a static host
        // should send (README, "Hosting the demo page"); a path that is neither is the API's
        // JSON 404.
        .fallback_service(
            Router::new()
                .fallback_service(
                    ServeDir::new(WEB_DIR).call_fallback_on_method_not_allowed(true).not_found_service(
                        axum::routing::any(|| async {
                            to_axum(api::api_error_response(&ApiError::not_found()))
                        }),
                    ),
                )
                .layer(axum::middleware::map_response(with_page_security_headers)),
        )
        .method_not_allowed_fallback(|| async {
            to_axum(api::api_error_response(&ApiError::method_not_allowed()))
        })
        .with_state(app)
}

/// The demo page's Content-Security-Policy: what its `<meta>` tag says (which a browser applies
/// even where the host sends nothing), and `frame-ancestors 'none'`, which only a header can say:
/// no other site may frame the page to trick a user into typing a code.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                            connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The security headers of every static file of the demo page, as a static host should send them.
pub const PAGE_SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", PAGE_CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    // For browsers that predate `frame-ancestors`.
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
];

async fn with_page_security_headers(mut response: AxumResponse) -> AxumResponse {
    for (name, value) in PAGE_SECURITY_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Builds the API Gateway HTTP API v2 event for this request and lets `lambda_http` parse it.
async fn to_lambda(
    req: AxumRequest,
    peer: SocketAddr,
    route_key: &str,
) -> Result<lambda_http::Request, AxumResponse> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_GATEWAY_BODY_BYTES).await.map_err(|_| {
        to_axum(api::api_error_response(&ApiError::payload_too_large(MAX_GATEWAY_BODY_BYTES)))
    })?;
    let event = gateway_event(&parts.method, &parts.uri, &parts.headers, &bytes, peer, route_key);
    lambda_http::request::from_str(&event.to_string()).map_err(|err| {
        tracing::error!(error = %err, "local-api built an event lambda_http cannot read");
        to_axum(api::api_error_response(&ApiError::new(
            ErrorCode::InternalError,
            "local-api could not translate the request",
        )))
    })
}

/// The event API Gateway sends for an HTTP API route with payload format 2.0.
pub fn gateway_event(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
    route_key: &str,
) -> Value {
    // API Gateway joins repeated headers with commas and moves cookies to their own list.
    let mut header_map = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        if name == axum::http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(value.to_owned()));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let user_agent = headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": "local",
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
            },
            "requestId": shared::crypto::new_nonce(),
            "routeKey": route_key,
            "stage": "$default",
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !body.is_empty() {
        event["body"] = Value::String(body);
    }
    event
}

/// Runs one invocation as Lambda does: to its end, even when the client has gone. API Gateway
/// does not stop a function when its caller hangs up, but axum drops a request's future when the
/// connection closes; a `/sms/token` dropped between two upstream steps would leave the
/// verification leased, with a step done upstream and not saved.
async fn run_to_completion<F>(invocation: F) -> Result<Response<Body>, lambda_http::Error>
where
    F: Future<Output = Result<Response<Body>, lambda_http::Error>> + Send + 'static,
{
    tokio::spawn(invocation).await.unwrap_or_else(|panicked| Err(Box::new(panicked)))
}

fn respond(result: Result<Response<Body>, lambda_http::Error>) -> AxumResponse {
    match result {
        Ok(response) => to_axum(response),
        Err(err) => {
            // The handlers map every failure to a response; this is a bug, answered as Lambda would.
            tracing::error!(error = %err, "handler returned an error");
            to_axum(api::api_error_response(&ApiError::internal_error()))
        }
    }
}

fn to_axum(response: Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}
