//! The web console: an admin dashboard on the admin listener (`/ui/`) and a client playground on
//! the public listener (`/playground/`, off unless `BRIDGE_PLAYGROUND=true`). Plain HTML, CSS and
//! JavaScript compiled into the binary: nothing to build, nothing fetched from a CDN. The
//! dashboard calls the admin API with the token the user enters (kept in `sessionStorage`).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

/// One embedded file and its media type.
struct Asset {
    body: &'static str,
    media_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const STYLE: Asset = Asset {
    body: include_str!("assets/console.css"),
    media_type: CSS,
};
const DASHBOARD: Asset = Asset {
    body: include_str!("assets/dashboard.html"),
    media_type: HTML,
};
const DASHBOARD_JS: Asset = Asset {
    body: include_str!("assets/dashboard.js"),
    media_type: JS,
};
const PLAYGROUND: Asset = Asset {
    body: include_str!("assets/playground.html"),
    media_type: HTML,
};
const PLAYGROUND_JS: Asset = Asset {
    body: include_str!("assets/playground.js"),
    media_type: JS,
};
const EIO_CLIENT_JS: Asset = Asset {
    body: include_str!("assets/eio-client.js"),
    media_type: JS,
};

/// Only this origin's scripts, styles and connections (the playground's WebSockets included).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn serve(
    asset: &'static Asset,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone {
    move || {
        std::future::ready(
            (
                [
                    (header::CONTENT_TYPE, asset.media_type),
                    (header::CACHE_CONTROL, "no-cache"),
                    (header::CONTENT_SECURITY_POLICY, CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                asset.body,
            )
                .into_response(),
        )
    }
}

/// `/ui/`: the admin dashboard (admin listener).
pub fn dashboard() -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(serve(&DASHBOARD)))
        .route("/ui/dashboard.js", get(serve(&DASHBOARD_JS)))
        .route("/ui/console.css", get(serve(&STYLE)))
}

/// `/playground/`: a Socket.IO client in the browser (public listener, when enabled).
pub fn playground() -> Router {
    Router::new()
        .route(
            "/playground",
            get(|| async { Redirect::permanent("/playground/") }),
        )
        .route("/playground/", get(serve(&PLAYGROUND)))
        .route("/playground/playground.js", get(serve(&PLAYGROUND_JS)))
        .route("/playground/eio-client.js", get(serve(&EIO_CLIENT_JS)))
        .route("/playground/console.css", get(serve(&STYLE)))
}
