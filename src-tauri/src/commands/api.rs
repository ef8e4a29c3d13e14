//! Every screen's data: `api_request`, the gateway's HTTP API with the session's token added
//! here, so the token never reaches the web view.

use gatehouse_client::api::RawResponse;
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// `{ status, body }` of `method path` (path under `/api/v1/`, query string included).
#[tauri::command]
pub async fn api_request(
    state: State<'_, AppState>,
    method: String,
    path: String,
    body: Option<serde_json::Value>,
) -> CommandResult<RawResponse> {
    let body = body.filter(|b| !b.is_null());
    state.api_request(&method, &path, body.as_ref()).await
}
