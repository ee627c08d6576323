//! The web console: an admin dashboard on the admin listener (`/ui/`) and a client playground on
//! the public listener (`/playground/`, off unless `BRIDGE_PLAYGROUND=true`). Plain HTML, CSS and
//! JavaScript compiled into the binary: nothing to build, nothing fetched from a CDN. The
//! dashboard calls the admin API with the token the user enters (kept in `sessionStorage`).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The console's files: name, media type, body.
type File = (&'static str, &'static str, &'static str);

const DASHBOARD_FILES: &[File] = &[
    ("", HTML, include_str!("assets/dashboard.html")),
    ("dashboard.js", JS, include_str!("assets/dashboard.js")),
    ("console.css", CSS, include_str!("assets/console.css")),
];

const PLAYGROUND_FILES: &[File] = &[
    ("", HTML, include_str!("assets/playground.html")),
    ("playground.js", JS, include_str!("assets/playground.js")),
    ("eio-client.js", JS, include_str!("assets/eio-client.js")),
    ("console.css", CSS, include_str!("assets/console.css")),
];

/// Only this origin's scripts, styles and connections (the playground's WebSockets included).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The file `name` of `files` (the page itself for ""), or 404.
fn serve(files: &'static [File], name: &str) -> Response {
    match files.iter().find(|(file, ..)| *file == name) {
        Some((_, media_type, body)) => (
            [
                (header::CONTENT_TYPE, *media_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Routes `/{prefix}/` and its files.
fn site(prefix: &'static str, files: &'static [File]) -> Router {
    Router::new()
        .route(
            &format!("/{prefix}"),
            get(move || async move { Redirect::permanent(&format!("/{prefix}/")) }),
        )
        .route(
            &format!("/{prefix}/"),
            get(move || async move { serve(files, "") }),
        )
        .route(
            &format!("/{prefix}/{{file}}"),
            get(move |Path(file): Path<String>| async move { serve(files, &file) }),
        )
}

/// `/ui/`: the admin dashboard (admin listener).
pub fn dashboard() -> Router {
    site("ui", DASHBOARD_FILES)
}

/// `/playground/`: a Socket.IO client in the browser (public listener, when enabled).
pub fn playground() -> Router {
    site("playground", PLAYGROUND_FILES)
}
