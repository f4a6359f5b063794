//! The web console's files, embedded in the binary and served by the admin listener at `/`.
//!
//! Owns the asset table (`console/` at the repository root, included at compile time) and
//! the headers every console response carries: a strict Content-Security-Policy (scripts,
//! styles and requests only from the console's own origin, no inline script, no framing),
//! `X-Frame-Options: DENY`, `nosniff` and no referrer. The files are public: they hold no
//! data, and every figure the console shows comes from the token-checked API. It must
//! never serve a file from disk at run time, nor anything but the listed assets.

use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use super::http::{Problem, ResBody, full};

/// The policy on every console response. `connect-src 'self'` keeps the console's
/// `fetch` calls on the admin listener; `img-src` allows `data:` for nothing but the
/// favicon-free page's own drawings (none today), and `frame-ancestors 'none'` is the
/// modern twin of `X-Frame-Options: DENY`.
pub const CONTENT_SECURITY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../console/index.html"),
    },
    Asset {
        path: "/console/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../console/app.css"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        path: "/console/ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/ui.js"),
    },
    Asset {
        path: "/console/accounts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/accounts.js"),
    },
    Asset {
        path: "/console/wizard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/wizard.js"),
    },
    Asset {
        path: "/console/events.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/events.js"),
    },
    Asset {
        path: "/console/audit.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/audit.js"),
    },
    Asset {
        path: "/console/ops.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/ops.js"),
    },
];

/// Serves a console file (its routes are `GET`, declared in `admin::ROUTES` as open to
/// anyone), or a 404 problem for a name that is not one.
pub fn serve(path: &str) -> Response<ResBody> {
    let path = if path == "/index.html" { "/" } else { path };
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return secure(
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not Found",
                "the console has no such file",
            )
            .response(),
        );
    };
    let mut res = Response::new(full(asset.body));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The files change with the binary; revalidating each load keeps a stale script from
    // outliving an upgrade, and they are small.
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(res)
}

fn secure(mut res: Response<ResBody>) -> Response<ResBody> {
    let h = res.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The total size of the first page and everything it loads.
    fn first_page_bytes() -> usize {
        ASSETS.iter().map(|a| a.body.len()).sum()
    }

    #[test]
    fn the_console_is_under_300_kb_and_loads_only_its_own_files() {
        assert!(first_page_bytes() < 300 * 1024, "{}", first_page_bytes());
        for asset in ASSETS {
            let body = asset.body;
            for loading in [
                "src=\"http",
                "href=\"http",
                "src=\"//",
                "href=\"//",
                "url(",
                "@import",
                "from 'http",
                "fetch('http",
            ] {
                assert!(!body.contains(loading), "{} loads {loading}", asset.path);
            }
            for markup in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!body.contains(markup), "{} uses {markup}", asset.path);
            }
        }
        let index = ASSETS[0].body;
        assert!(!index.contains("<script>"), "no inline script");
        assert!(!index.contains("style="), "no inline style");
    }

    #[test]
    fn every_script_the_page_imports_is_served() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in asset.body.lines() {
                let line = line.trim();
                let imports = line.starts_with("import ")
                    || (line.starts_with("export ") && line.contains(" from '"));
                if !imports {
                    continue;
                }
                let Some(file) = line
                    .rsplit(" from ")
                    .next()
                    .and_then(|f| f.split('\'').nth(1))
                else {
                    continue;
                };
                let path = format!("/console/{}", file.trim_start_matches("./"));
                assert!(ASSETS.iter().any(|a| a.path == path), "{path} is imported");
            }
        }
    }
}
