//! The OpenAPI document of the API, served at `/api/openapi.json` (rendered by `/docs.html`).

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TripoSG server",
        description = "Photo in, 3D-printable model out. Jobs belong to the browser session (cookie `triposg_session`) unless the server runs with shared history; with an access token, send `Authorization: Bearer TOKEN`. Errors are `{\"error\": \"...\"}` with a sentence saying what to do."
    ),
    paths(
        crate::api::submit,
        crate::api::list,
        crate::api::job,
        crate::api::delete,
        crate::api::cancel,
        crate::api::events,
        crate::api::file,
        crate::prepare::prepare,
        crate::status::info,
        crate::weights::status,
        crate::weights::download,
        crate::status::healthz,
        crate::status::readyz,
        crate::status::metrics,
        crate::legacy::generate,
    ),
    components(schemas(crate::params::JobParams, crate::hub::JobEvent))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
