//! Sandbox-only HTTP endpoints under `/sandbox/`: read the outbox, inject faults, read stats.
//! The same operations are on [`crate::Sandbox`] for in-process tests; these serve the binary.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::error::OAuthError;
use crate::faults::Fault;

#[derive(Deserialize)]
pub(crate) struct MessagesQuery {
    to: Option<String>,
}

/// `GET /sandbox/messages[?to=<phone>]`, newest first.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return OAuthError::invalid_request("bad query string").into_response();
    };
    // `?to=` with nothing in it means no filter, like leaving `to` out.
    let to = query.to.as_deref().filter(|t| !t.trim().is_empty());
    Json(shared.outbox.list(to)).into_response()
}

/// `POST /sandbox/faults` with a [`Fault`] as JSON.
pub(crate) async fn add_fault(
    State(shared): State<Arc<Shared>>,
    fault: Result<Json<Fault>, JsonRejection>,
) -> Response {
    let fault = match fault {
        Ok(Json(fault)) => fault,
        Err(rejection) => {
            return OAuthError::invalid_request(format!("expected a fault as JSON: {rejection}"))
                .into_response();
        }
    };
    if let Err(problem) = fault.validate() {
        return OAuthError::invalid_request(problem).into_response();
    }
    shared.faults.add(fault);
    Json(json!({ "status": "ok" })).into_response()
}

/// `DELETE /sandbox/faults`.
pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /sandbox/stats`.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.counters.snapshot()).into_response()
}
