//! `GET /dashboard`: the admin web page (SPEC section 11). One HTML file with its script and
//! style inline, compiled into the binary: no build step, nothing loaded from outside.
//!
//! The page asks for an admin token (kept in the tab's `sessionStorage`, never in a cookie, so
//! the broker needs no session state and no CSRF defence) and then reads the public API every
//! few seconds: `/metrics` for sessions and message rates, `/v1/admin/mailboxes`, `/v1/topics`,
//! `/v1/dead-letters` (with requeue and purge buttons) and `/v1/admin/audit` when the broker
//! has it.

use actix_web::{get, HttpResponse};

const PAGE: &str = include_str!("index.html");

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(page);
}

#[utoipa::path(
    tag = "operations",
    operation_id = "dashboard",
    security(()),
    responses((status = 200, description = "The admin dashboard (HTML; asks for an admin token)", content_type = "text/html", body = String))
)]
#[get("/dashboard")]
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page runs only its own inline script and talks only to this origin.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ))
        .body(PAGE)
}
