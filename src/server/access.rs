//! Declared access for the admin listener: a route is a method, a path pattern, the role
//! it needs and its handler, all in one line of the table in `admin`.
//!
//! Owns [`Route`], [`Access`], the request context handlers receive ([`Ctx`]) and the one
//! check of a caller against a route's access ([`permit`]), made before any handler runs.
//! A request that matches no declared route is never handed to a handler. Handlers do not
//! check roles themselves, so a route cannot be left open by forgetting to. It must never
//! run a handler whose route's access the caller does not have.

use std::future::Future;
use std::pin::Pin;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::AppState;
use super::http::{Problem, ResBody};
use crate::tokens::{Caller, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (pages and assets of a console that then asks for one).
    Anyone,
    /// The auditor or admin role: reading events, exports, the change log, verification.
    Auditor,
    /// The admin role only.
    Admin,
}

/// What a handler answers: a response, or a problem to send as problem+json.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<Response<ResBody>, Problem>> + Send + 'a>>;

/// A route's handler.
pub type Handler = for<'a> fn(Ctx<'a>) -> Reply<'a>;

/// One declared route.
#[derive(Clone)]
pub struct Route {
    /// The method it answers.
    pub method: Method,
    /// The path, `/`-separated; a segment `{name}` matches any one non-empty segment.
    pub pattern: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What answers it.
    pub handler: Handler,
}

impl Route {
    /// A route declaration, for the table.
    pub const fn new(
        method: Method,
        pattern: &'static str,
        access: Access,
        handler: Handler,
    ) -> Route {
        Route {
            method,
            pattern,
            access,
            handler,
        }
    }

    /// The values of the pattern's `{...}` segments when `segments` match it.
    pub fn matches(&self, method: &Method, segments: &[&str]) -> Option<Vec<String>> {
        if *method != self.method {
            return None;
        }
        let pattern: Vec<&str> = split(self.pattern);
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (want, got) in pattern.iter().zip(segments) {
            if want.starts_with('{') && want.ends_with('}') {
                if got.is_empty() {
                    return None;
                }
                params.push((*got).to_owned());
            } else if want != got {
                return None;
            }
        }
        Some(params)
    }
}

/// A path's segments, as routes match them (surrounding slashes ignored).
pub fn split(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

/// The first route of `table` that `method` and `segments` match, with its parameters.
pub fn find<'t>(
    table: &'t [Route],
    method: &Method,
    segments: &[&str],
) -> Option<(&'t Route, Vec<String>)> {
    table
        .iter()
        .find_map(|r| r.matches(method, segments).map(|p| (r, p)))
}

/// Whether `caller` may call a route of `access`: 401 without a valid token (where one is
/// needed), 403 with a role that is not enough.
pub fn permit(access: Access, caller: Option<&Caller>) -> Result<(), Problem> {
    let needed = match access {
        Access::Anyone => return Ok(()),
        Access::Auditor => [Role::Auditor, Role::Admin].as_slice(),
        Access::Admin => [Role::Admin].as_slice(),
    };
    let Some(caller) = caller else {
        return Err(unauthorized());
    };
    if needed.contains(&caller.role) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "this route needs the admin role; the auditor role may only read",
        ))
    }
}

/// The answer to a request without a valid token.
pub fn unauthorized() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        "send the admin or auditor token as Authorization: Bearer <token>",
    )
}

/// What a handler is given: the request, its route's parameters and who is calling.
pub struct Ctx<'a> {
    /// The gateway's state.
    pub state: &'a AppState,
    /// The request, its body unread.
    pub req: Request<Incoming>,
    caller: Option<&'a Caller>,
    params: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// The context of a request whose access was permitted.
    pub fn new(
        state: &'a AppState,
        req: Request<Incoming>,
        caller: Option<&'a Caller>,
        params: Vec<String>,
    ) -> Ctx<'a> {
        Ctx {
            state,
            req,
            caller,
            params,
        }
    }

    /// The caller; a route open to anyone has none, and a handler that needs one refuses.
    pub fn caller(&self) -> Result<&'a Caller, Problem> {
        self.caller.ok_or_else(unauthorized)
    }

    /// The `n`th `{...}` segment of the route's pattern, as sent.
    pub fn param(&self, n: usize) -> String {
        self.params.get(n).cloned().unwrap_or_default()
    }

    /// The query string, or "".
    pub fn query(&self) -> String {
        self.req.uri().query().unwrap_or("").to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: Ctx<'_>) -> Reply<'_> {
        Box::pin(async { Err(unauthorized()) })
    }

    const TABLE: &[Route] = &[
        Route::new(Method::GET, "/v1/events/export", Access::Auditor, nothing),
        Route::new(Method::GET, "/v1/events/{id}", Access::Auditor, nothing),
        Route::new(
            Method::DELETE,
            "/v1/accounts/{name}/secrets/{index}",
            Access::Admin,
            nothing,
        ),
    ];

    #[test]
    fn patterns_match_whole_paths_and_name_their_parameters() {
        let get = Method::GET;
        let (r, p) = find(TABLE, &get, &split("/v1/events/export")).expect("found");
        assert_eq!(
            (r.pattern, p.len()),
            ("/v1/events/export", 0),
            "first declared wins"
        );
        let (r, p) = find(TABLE, &get, &split("/v1/events/ev_9/")).expect("found");
        assert_eq!((r.pattern, p), ("/v1/events/{id}", vec!["ev_9".to_owned()]));
        let del = split("/v1/accounts/shop/secrets/1");
        let (_, p) = find(TABLE, &Method::DELETE, &del).expect("found");
        assert_eq!(p, ["shop", "1"]);
        assert!(
            find(TABLE, &Method::POST, &del).is_none(),
            "the method is part of it"
        );
        assert!(find(TABLE, &get, &split("/v1/events")).is_none());
        assert!(find(TABLE, &get, &split("/v1/events/a/b")).is_none());
        assert!(
            find(TABLE, &get, &split("/v1/events//")).is_none(),
            "empty segment"
        );
    }

    #[test]
    fn access_is_refused_without_a_token_and_below_the_declared_role() {
        let admin = Caller {
            name: "a".into(),
            role: Role::Admin,
        };
        let auditor = Caller {
            name: "b".into(),
            role: Role::Auditor,
        };
        let code = |access, caller| permit(access, caller).map_err(|p| p.status.as_u16());
        assert_eq!(code(Access::Anyone, None), Ok(()));
        assert_eq!(code(Access::Auditor, None), Err(401));
        assert_eq!(code(Access::Admin, None), Err(401));
        assert_eq!(code(Access::Auditor, Some(&auditor)), Ok(()));
        assert_eq!(code(Access::Admin, Some(&auditor)), Err(403));
        assert_eq!(code(Access::Admin, Some(&admin)), Ok(()));
        assert_eq!(code(Access::Auditor, Some(&admin)), Ok(()));
    }
}
