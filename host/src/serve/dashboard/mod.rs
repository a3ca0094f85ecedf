//! The dashboard: the web page `soar serve` shows at `/`, for people who
//! would rather look than read JSON. Environments with their release,
//! health, metrics and URL; jobs whose steps update live; history; logs;
//! re-deploy and roll back for a token with the `deploy` scope.
//!
//! It is a second front end of the same API: pages are rendered on the
//! server from what the API's handlers use ([`super::inspect`] for status,
//! history and logs, [`super::jobs`] for jobs, [`super::api::submit_job`]
//! and [`super::inspect::rollback`] for the buttons), and a job's live
//! updates are the API's own event stream ([`super::events::stream`]) read
//! by one small script (`app.js`) with `EventSource`. No build chain: the
//! script and the stylesheet are compiled into the binary.
//!
//! - [`session`]: the login, the session cookie and the CSRF proof.
//! - [`data`]: gathering what a page shows; [`pages`] and [`layout`]:
//!   rendering it, escaped; [`phases`]: a job's events as steps.
//! - [`live_logs`]: an environment's logs as they are written, which the
//!   environment page follows while its logs panel is open.
//!
//! Every response carries a Content-Security-Policy that allows only this
//! server's own script and stylesheet: escaping is the defence, the policy
//! the backstop should a string ever slip through.

mod data;
mod layout;
pub(crate) mod live_logs;
mod pages;
mod phases;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use super::api::{AppState, submit_job, visible_job};
use super::error::ApiError;
use super::jobs;
use super::tokens::{self, Principal, Scope};
use layout::Viewer;
use session::{Session, Sessions};

/// Largest form accepted (a token, a CSRF value).
const FORM_LIMIT: usize = 16 * 1024;
/// Jobs on the overview.
const RECENT_JOBS: u32 = 20;
/// How much of a rollback response is read for its job id.
const SUBMITTED_LIMIT: usize = 64 * 1024;

/// The script and the stylesheet, served from the binary.
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// What the dashboard's handlers share.
#[derive(Clone)]
struct Dash {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Served over TLS: cookies get `Secure`.
    secure: bool,
}

/// A request whose session cookie names a live session with a valid token.
struct SignedIn {
    who: Principal,
    session: Session,
}

impl SignedIn {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            who: &self.who,
            csrf: &self.session.csrf,
        }
    }
}

impl Dash {
    /// The request's session, if its token still checks out (a revoked
    /// token ends the session here).
    fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let session = self.sessions.find(headers)?;
        match tokens::verify(&self.app.queue.db, &session.token) {
            Some(who) => Some(SignedIn { who, session }),
            None => {
                self.sessions.close(headers);
                None
            }
        }
    }

    /// The login page with `status`, a fresh pre-login challenge, and why
    /// the last attempt failed.
    fn login_page(&self, status: StatusCode, problem: Option<&str>) -> Response {
        let (challenge, cookie) = session::login_challenge(self.secure);
        let mut r = html(status, layout::login(&challenge, problem));
        r.headers_mut().append(header::SET_COOKIE, cookie);
        r
    }
}

/// The dashboard's routes: `/` and `/ui/...`, beside the API's.
pub fn router(app: AppState) -> Router {
    let dash = Dash {
        secure: app.config.tls.is_some(),
        app,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/", get(home))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/static/app.js", get(script))
        .route("/ui/static/style.css", get(style))
        .route("/ui/env/{project}/{env}", get(environment))
        .route("/ui/env/{project}/{env}/deploy", post(deploy))
        .route("/ui/env/{project}/{env}/rollback", post(rollback))
        .route("/ui/env/{project}/{env}/logs", get(env_logs))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/jobs/{id}/events", get(job_events))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(dash)
}

/// The headers every dashboard response carries: only our own script and
/// stylesheet may run, no framing, no caching of pages, no referrer.
fn harden(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
}

/// A rendered page.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    harden(r.headers_mut());
    r
}

/// 303 to `location` (after a form: the browser GETs it).
fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    harden(r.headers_mut());
    r
}

/// An API error as a page, with its status.
fn error_page(viewer: Option<&Viewer<'_>>, e: &ApiError) -> Response {
    html(e.status, layout::error(viewer, &e.body.error, &e.body.hint))
}

/// A form body's fields (the last of a repeated one wins).
fn fields(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Headers that make an API handler see this session's token.
fn as_bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    harden(r.headers_mut());
    // Revalidate rather than keep: a new server version may change them.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `/`: the overview, or nothing but the login.
async fn home(State(dash): State<Dash>, headers: HeaderMap) -> Response {
    let Some(me) = dash.signed_in(&headers) else {
        return dash.login_page(StatusCode::OK, None);
    };
    let envs = data::environments(&dash.app, &me.who).await;
    match data::recent_jobs(&dash.app, &me.who, RECENT_JOBS) {
        Ok(recent) => html(
            StatusCode::OK,
            pages::overview(&me.viewer(), &envs, &recent),
        ),
        Err(e) => error_page(Some(&me.viewer()), &ApiError::internal(e)),
    }
}

/// `POST /ui/login`: `token` and the pre-login `login` value.
async fn login(State(dash): State<Dash>, headers: HeaderMap, body: Bytes) -> Response {
    let form = fields(&body);
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if !session::proves(form.get("login").map(String::as_str), &expected) {
        return dash.login_page(
            StatusCode::FORBIDDEN,
            Some("This login form expired or was not this server's own: log in again here."),
        );
    }
    let token = form.get("token").map_or("", |t| t.trim());
    if tokens::verify(&dash.app.queue.db, token).is_none() {
        return dash.login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid here: unknown, revoked or mistyped. `soar serve token list` on the server shows the live ones."),
        );
    }
    let id = dash.sessions.open(token);
    let mut r = see_other("/");
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, &id, session::LIFETIME, dash.secure),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, "", Default::default(), dash.secure),
    );
    r
}

/// `POST /ui/logout`.
async fn logout(State(dash): State<Dash>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(me) = dash.signed_in(&headers) {
        if !session::proves(
            fields(&body).get("csrf").map(String::as_str),
            &me.session.csrf,
        ) {
            return refused(&me);
        }
        dash.sessions.close(&headers);
    }
    let mut r = see_other("/");
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, "", Default::default(), dash.secure),
    );
    r
}

/// 403 for a state-changing request without this session's CSRF value.
fn refused(me: &SignedIn) -> Response {
    error_page(
        Some(&me.viewer()),
        &ApiError::new(
            StatusCode::FORBIDDEN,
            "this request did not carry the page's CSRF proof",
            "use the buttons of this dashboard's own pages (reload the page if it is old)",
        ),
    )
}

/// The session of a button's POST once its CSRF proof and scope check
/// out, or the response that refuses it (boxed: it is the cold path).
fn button(dash: &Dash, headers: &HeaderMap, body: &[u8]) -> Result<SignedIn, Box<Response>> {
    let Some(me) = dash.signed_in(headers) else {
        let login = dash.login_page(StatusCode::UNAUTHORIZED, Some("Log in first."));
        return Err(Box::new(login));
    };
    if !session::proves(
        fields(body).get("csrf").map(String::as_str),
        &me.session.csrf,
    ) {
        return Err(Box::new(refused(&me)));
    }
    if me.who.scope < Scope::Deploy {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token's scope is '{}'; this needs 'deploy'",
                me.who.scope
            ),
            "log in with a token created with `soar serve token create --scope deploy`",
        );
        return Err(Box::new(error_page(Some(&me.viewer()), &e)));
    }
    Ok(me)
}

/// `/ui/env/{project}/{env}`.
async fn environment(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
) -> Response {
    let Some(me) = dash.signed_in(&headers) else {
        return see_other("/");
    };
    match data::environment(&dash.app, &me.who, &project, &env).await {
        Ok(d) => html(
            StatusCode::OK,
            pages::environment(&me.viewer(), &project, &env, &d),
        ),
        Err(e) => error_page(Some(&me.viewer()), &e),
    }
}

/// The answer of an event stream asked for without a dashboard session:
/// a 401 the page's script shows, where a page would show the login.
fn no_session() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "no dashboard session",
        "log in at /",
    )
    .into_response()
}

/// `/ui/env/{project}/{env}/logs`: the environment's logs as they are
/// written, as Server-Sent Events ([`live_logs`]), for the session's token.
async fn env_logs(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
) -> Response {
    let Some(me) = dash.signed_in(&headers) else {
        return no_session();
    };
    let followed = async {
        let (root, _) = super::inspect::resolve(&dash.app, &me.who, &project, &env)?;
        live_logs::stream(&root, &env, live_logs::BACKLOG).await
    };
    match followed.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `POST /ui/env/{project}/{env}/deploy`: queue a deploy, show its job.
async fn deploy(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let me = match button(&dash, &headers, &body) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let options = jobs::Options::default();
    match submit_job(&dash.app, &me.who, &project, Some(&env), 0, None, &options) {
        Ok(job) => see_other(&format!("/ui/jobs/{}", job.id)),
        Err(e) => error_page(Some(&me.viewer()), &e),
    }
}

/// `POST /ui/env/{project}/{env}/rollback`: the API's rollback, then its job.
async fn rollback(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let me = match button(&dash, &headers, &body) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let queued = super::inspect::rollback(
        State(dash.app.clone()),
        as_bearer(&me.session.token),
        Path((project, env)),
    )
    .await;
    let response = match queued {
        Ok(r) => r,
        Err(e) => return error_page(Some(&me.viewer()), &e),
    };
    let body = axum::body::to_bytes(response.into_body(), SUBMITTED_LIMIT)
        .await
        .unwrap_or_default();
    match serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
    {
        Some(id) => see_other(&format!("/ui/jobs/{id}")),
        None => error_page(
            Some(&me.viewer()),
            &ApiError::internal(anyhow::anyhow!("a rollback was queued without a job id")),
        ),
    }
}

/// `/ui/jobs/{id}`.
async fn job(State(dash): State<Dash>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(me) = dash.signed_in(&headers) else {
        return see_other("/");
    };
    let shown = visible_job(&dash.app, &me.who, &id).and_then(|job| {
        let events = jobs::events_after(&dash.app.queue.db, &id, 0)?;
        Ok((job, events))
    });
    match shown {
        Ok((job, events)) => html(StatusCode::OK, pages::job(&me.viewer(), &job, &events)),
        Err(e) => error_page(Some(&me.viewer()), &e),
    }
}

/// `/ui/jobs/{id}/events?after=N`: the API's event stream of the job, for
/// the session's token, resuming after event N (or the `Last-Event-ID` an
/// `EventSource` sends when it reconnects).
async fn job_events(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(me) = dash.signed_in(&headers) else {
        return no_session();
    };
    let mut api_headers = as_bearer(&me.session.token);
    let after = headers.get("last-event-id").cloned().or_else(|| {
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "after")
            .and_then(|(_, v)| HeaderValue::from_str(&v).ok())
    });
    if let Some(after) = after {
        api_headers.insert("last-event-id", after);
    }
    match super::events::stream(State(dash.app), api_headers, Path(id)).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
