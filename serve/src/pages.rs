//! The web pages (placeholder until the pages land).
use axum::Router;

use crate::http::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
}
