//! The Worker's front door: resolve the endpoint, authenticate, authorise, and call the
//! handler. Every failure becomes the protocol's error body here, in one place.

#[cfg(target_arch = "wasm32")]
pub(crate) mod auth;
pub mod cookie;
pub mod cursor;
#[cfg(target_arch = "wasm32")]
mod health;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
pub(crate) mod pulls;
pub mod query;
pub mod route;
#[cfg(target_arch = "wasm32")]
pub(crate) mod sessions;
#[cfg(target_arch = "wasm32")]
mod signin;
#[cfg(target_arch = "wasm32")]
mod tickets;
#[cfg(target_arch = "wasm32")]
mod users;

#[cfg(target_arch = "wasm32")]
pub use serve::handle;

#[cfg(target_arch = "wasm32")]
mod serve {
    use super::auth::{self, authenticate, require_admin, require_user};
    use super::cookie;
    use super::route::{resolve, Endpoint};
    use super::{health, metrics, pulls, query, sessions, signin, tickets, users};
    use crate::config::Config;
    use crate::error::{Error, Result};
    use crate::index::Index;
    use crate::respond;
    use crate::room::api::{RoomClient, RoomRoute};
    use protocol::{ApiError, ErrorCode};
    use serde_json::json;
    use worker::{Context, Env, Request, Response};

    pub async fn handle(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
        match dispatch(&mut req, &env, &ctx).await {
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

    /// A sandbox's request carries a token the coordinator made for this session, or it is
    /// refused here with the same 401 whatever the session (one that exists or not): no room is
    /// woken and nothing tells a made-up id from a real one. The room then checks the token is
    /// the one a live sandbox of the session holds.
    fn require_sandbox_token(req: &Request, config: &Config, session_id: &str) -> Result<()> {
        let refused = || {
            Error::Api(ApiError::new(
                ErrorCode::Unauthorized,
                "a valid sandbox token for this session is required",
            ))
        };
        let secret = config.token_secret.as_deref().ok_or_else(refused)?;
        let header = req.headers().get("authorization")?.unwrap_or_default();
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or_else(refused)?;
        let key = protocol::sandbox_token::key(secret.as_bytes());
        protocol::sandbox_token::verify(&key, token, session_id)
            .map(drop)
            .map_err(|_| refused())
    }

    async fn dispatch(req: &mut Request, env: &Env, ctx: &Context) -> Result<Response> {
        let url = crate::url::of(req);
        let endpoint = resolve(req.method().as_ref(), url.path())?;
        let config = config(env)?;
        let query_string = url.query().to_owned();
        if endpoint == Endpoint::Health {
            return health::health(req, &config, &query_string).await;
        }
        let index = Index::new(env.d1("DB")?);
        match &endpoint {
            Endpoint::Connect(session_id) => {
                return tickets::connect(env, &index, &config, req, session_id).await
            }
            Endpoint::SandboxConnect(session_id) => {
                require_sandbox_token(req, &config, session_id)?;
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
                require_sandbox_token(req, &config, session_id)?;
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
            // Signed by Slack; answered at once, the work done after the response.
            Endpoint::SlackEvents => {
                return crate::slack::receive::receive(env, &index, &config, req, ctx).await
            }
            Endpoint::SlackInteractions => {
                return crate::slack::interactions::receive(env, &index, &config, req, ctx).await
            }
            Endpoint::Events(session_id)
                if req.headers().get("authorization")?.is_none()
                    && (query::param(&query_string, "ticket").is_some()
                        || query::param(&query_string, "token").is_some()
                        || auth::cookie_value(req, cookie::SESSION_COOKIE)?.is_none()) =>
            {
                // Browsers' EventSource cannot send headers: a connect ticket in the query
                // works instead of a key (or, deprecated, a participant token).
                let credential = tickets::url_credential(&query_string);
                return match tickets::check_credential(&index, &config, session_id, &credential)
                    .await?
                {
                    tickets::TokenCheck::Member(admitted) => {
                        let tickets::Admitted {
                            user,
                            membership,
                            ticket,
                            expires_ms,
                        } = *admitted;
                        tickets::event_stream(
                            env,
                            &membership,
                            &user,
                            req,
                            ticket,
                            Some(expires_ms),
                        )
                        .await
                    }
                    tickets::TokenCheck::Refused(_, error) => Err(error.into()),
                };
            }
            Endpoint::Tickets(session_id) => {
                // A participant token in `Authorization` may ask for a ticket too, so a
                // client holding only a token never has to put it in a URL.
                if let Some(token) = auth::participant_token(req)? {
                    return tickets::ticket_for_token(&index, &config, &url, session_id, &token)
                        .await;
                }
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
                    users::update(env, &index, &id, &body(req, &config).await?).await
                }
                _ => users::list(&index).await,
            };
        }
        let user = require_user(principal)?;
        let Some(session_id) = endpoint.member_session() else {
            return match endpoint {
                Endpoint::Me => users::me(&index, &config, &user).await,
                Endpoint::ListRepos => users::repos(&index, &config, &user).await,
                Endpoint::ListSessions => sessions::list(&index, &user, &query_string).await,
                Endpoint::CreateSession => {
                    let key = idempotency_key(req, &config)?;
                    let body = body(req, &config).await?;
                    sessions::create(env, &index, &config, &url, &user, &body, key).await
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
            Endpoint::Artifact(_, artifact_id) => Some((
                RoomRoute::Artifact {
                    id: artifact_id.clone(),
                },
                None,
            )),
            _ => None,
        };
        if let Some((route, body_limit)) = forwarded {
            let key = match &route {
                RoomRoute::Prompt => idempotency_key(req, &config)?,
                _ => None,
            };
            let body = match body_limit {
                Some(limit) => Some(respond::read_body(req, limit).await?),
                None => None,
            };
            let body = match (body, key) {
                (Some(body), Some(key)) => Some(with_request_id(body, &key)),
                (body, _) => body,
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
            Endpoint::MintToken(_) => tickets::token(&config, &url, &membership, &user),
            Endpoint::Tickets(_) => tickets::ticket(&config, &url, &membership, &user),
            Endpoint::PullRequest(_) => {
                let body = body(req, &config).await?;
                pulls::open(env, &index, &config, &url, &membership, &user, &body).await
            }
            Endpoint::Events(_) => {
                tickets::event_stream(env, &membership, &user, req, None, None).await
            }
            _ => Err(ApiError::not_found("endpoint").into()),
        }
    }

    /// The `Idempotency-Key` header, checked like a `client_request_id`.
    fn idempotency_key(req: &Request, config: &Config) -> Result<Option<String>> {
        let Some(key) = req.headers().get("idempotency-key")? else {
            return Ok(None);
        };
        let limit = config.limits.client_request_id_bytes;
        if key.is_empty() || key.len() > limit {
            return Err(ApiError::invalid_field(format!(
                "the Idempotency-Key header must be 1 to {limit} bytes"
            ))
            .into());
        }
        Ok(Some(key))
    }

    /// A prompt body with `key` as its `client_request_id` when it names none; a body that is
    /// not a JSON object goes on as it is, for the room to refuse.
    fn with_request_id(body: Vec<u8>, key: &str) -> Vec<u8> {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields
                    .entry("client_request_id")
                    .or_insert_with(|| json!(key));
                serde_json::to_vec(&fields).unwrap_or(body)
            }
            _ => body,
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
