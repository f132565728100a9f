//! The Worker's front door: resolve the endpoint, authenticate, authorise, and call the
//! handler. Every failure becomes the protocol's error body here, in one place.

#[cfg(target_arch = "wasm32")]
mod auth;
pub mod cookie;
#[cfg(target_arch = "wasm32")]
mod health;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod pulls;
pub mod query;
pub mod route;
#[cfg(target_arch = "wasm32")]
mod sessions;
#[cfg(target_arch = "wasm32")]
mod signin;
#[cfg(target_arch = "wasm32")]
mod users;

#[cfg(target_arch = "wasm32")]
pub use serve::handle;

#[cfg(target_arch = "wasm32")]
mod serve {
    use super::auth::{self, authenticate, require_admin, require_user};
    use super::cookie;
    use super::route::{resolve, Endpoint};
    use super::{health, metrics, pulls, query, sessions, signin, users};
    use crate::config::Config;
    use crate::error::{Error, Result};
    use crate::index::Index;
    use crate::respond;
    use crate::room::api::{RoomClient, RoomRoute};
    use protocol::{ApiError, ErrorCode};
    use worker::{Env, Request, Response};

    pub async fn handle(mut req: Request, env: Env) -> worker::Result<Response> {
        match dispatch(&mut req, &env).await {
            Ok(response) => Ok(response),
            Err(error) => respond::error(&error.into_api()),
        }
    }

    fn config(env: &Env) -> Result<std::rc::Rc<Config>> {
        Config::for_isolate(env).map_err(|message| {
            crate::log::error(&format!("configuration: {message}"));
            Error::Api(ApiError::new(
                ErrorCode::Unavailable,
                "the coordinator is misconfigured; see its logs",
            ))
        })
    }

    async fn dispatch(req: &mut Request, env: &Env) -> Result<Response> {
        let url = crate::url::of(req);
        let endpoint = resolve(req.method().as_ref(), url.path())?;
        let config = config(env)?;
        let query_string = url.query().to_owned();
        if endpoint == Endpoint::Health {
            return health::health(req, env, &config, &query_string).await;
        }
        let index = Index::new(env.d1("DB")?);
        match &endpoint {
            Endpoint::Connect(session_id) => {
                return sessions::connect(env, &index, &config, req, session_id).await
            }
            Endpoint::SandboxConnect(session_id) => {
                if !req
                    .headers()
                    .get("upgrade")?
                    .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
                {
                    return Err(ApiError::invalid_field("expected a WebSocket upgrade").into());
                }
                return RoomClient::open(env, session_id)?
                    .as_sandbox(RoomRoute::Bridge, req, None)
                    .await;
            }
            Endpoint::GitCredentials(session_id) => {
                let body = respond::read_body(req, 4096).await?;
                return RoomClient::open(env, session_id)?
                    .as_sandbox(RoomRoute::GitCredentials, req, Some(body))
                    .await;
            }
            Endpoint::AuthMethods => return signin::methods(&config),
            Endpoint::GithubLogin => return signin::login(&config, &url),
            Endpoint::GithubCallback => return signin::callback(&index, &config, req).await,
            Endpoint::Logout => return signin::logout(),
            Endpoint::GithubWebhook => return pulls::webhook(env, &index, &config, req).await,
            Endpoint::Events(session_id)
                if req.headers().get("authorization")?.is_none()
                    && (query::param(&query_string, "token").is_some()
                        || auth::cookie_value(req, cookie::SESSION_COOKIE)?.is_none()) =>
            {
                // Browsers' EventSource cannot send headers: a participant token in the query works too.
                let token = query::param(&query_string, "token").unwrap_or_default();
                return match sessions::check_token(&index, &config, session_id, &token).await? {
                    sessions::TokenCheck::Member(user, membership) => {
                        sessions::event_stream(env, &membership, &user, req).await
                    }
                    sessions::TokenCheck::Refused(_, error) => Err(error.into()),
                };
            }
            _ => {}
        }
        let principal = authenticate(req, &index, &config).await?;
        if endpoint == Endpoint::Metrics {
            return metrics::get(&index, principal, &query_string).await;
        }
        if endpoint.is_admin() {
            require_admin(principal)?;
            return match endpoint {
                Endpoint::CreateUser => users::create(&index, &body(req, &config).await?).await,
                Endpoint::UpdateUser(id) => {
                    users::update(&index, &id, &body(req, &config).await?).await
                }
                _ => users::list(&index).await,
            };
        }
        let user = require_user(principal)?;
        let Some(session_id) = endpoint.member_session() else {
            return match endpoint {
                Endpoint::Me => users::me(&index, &config, &user).await,
                Endpoint::ListRepos => users::repos(&config, &user).await,
                Endpoint::ListSessions => sessions::list(&index, &user, &query_string).await,
                Endpoint::CreateSession => {
                    let body = body(req, &config).await?;
                    sessions::create(env, &index, &config, &url, &user, &body).await
                }
                _ => Err(ApiError::not_found("endpoint").into()),
            };
        };
        let membership = sessions::membership(&index, session_id, &user).await?;
        // Endpoints the room answers as they are: the room's route, and the body's size
        // limit when there is a body. Queries are checked here, once.
        let limits = &config.limits;
        let q = query_string.as_str();
        let forwarded = match &endpoint {
            Endpoint::PostPrompt(_) => Some((RoomRoute::Prompt, Some(limits.frame_bytes))),
            Endpoint::PostSelection(_) => {
                Some((RoomRoute::Selection, Some(limits.selection_bytes)))
            }
            Endpoint::Cancel(_) => Some((RoomRoute::Cancel, Some(limits.frame_bytes))),
            Endpoint::Stop(_) => Some((RoomRoute::Stop, None)),
            Endpoint::Events(_) if !wants_event_stream(req)? => Some((
                RoomRoute::Events {
                    since: query::u64_param(q, "since")?.unwrap_or(0),
                    limit: query::limit_param(q, 100, 1000)?,
                },
                None,
            )),
            Endpoint::Messages(_) => Some((
                RoomRoute::Messages {
                    after_seq: query::u64_param(q, "after_seq")?.unwrap_or(0),
                    limit: query::limit_param(q, 100, 500)?,
                },
                None,
            )),
            Endpoint::Artifacts(_) => Some((
                RoomRoute::Artifacts {
                    after_seq: query::u64_param(q, "after_seq")?.unwrap_or(0),
                    limit: query::limit_param(q, 100, 500)?,
                },
                None,
            )),
            _ => None,
        };
        if let Some((route, body_limit)) = forwarded {
            let body = match body_limit {
                Some(limit) => Some(respond::read_body(req, limit).await?),
                None => None,
            };
            return sessions::forward(env, &membership, &user, route, body).await;
        }
        match endpoint {
            Endpoint::GetSession(_) => sessions::get(env, &membership, &user).await,
            Endpoint::ArchiveSession(_) => sessions::archive(env, &index, &membership, &user).await,
            Endpoint::AddMember(_) => {
                let body = body(req, &config).await?;
                sessions::add_member(env, &index, &membership, &user, &body).await
            }
            Endpoint::RemoveMember(_, member) => {
                sessions::remove_member(env, &index, &membership, &user, &member).await
            }
            Endpoint::MintToken(_) => sessions::token(&config, &url, &membership, &user),
            Endpoint::PullRequest(_) => {
                let body = body(req, &config).await?;
                pulls::open(env, &index, &config, &url, &membership, &user, &body).await
            }
            Endpoint::Events(_) => sessions::event_stream(env, &membership, &user, req).await,
            _ => Err(ApiError::not_found("endpoint").into()),
        }
    }

    async fn body(req: &mut Request, config: &Config) -> Result<Vec<u8>> {
        respond::read_body(req, config.limits.frame_bytes).await
    }

    fn wants_event_stream(req: &Request) -> Result<bool> {
        Ok(req
            .headers()
            .get("accept")?
            .is_some_and(|accept| accept.contains("text/event-stream")))
    }
}
