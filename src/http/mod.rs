//! The Worker's front door: resolve the endpoint, authenticate, authorise, and call the
//! handler. Every failure becomes the protocol's error body here, in one place.

#[cfg(target_arch = "wasm32")]
mod auth;
pub mod query;
pub mod route;
#[cfg(target_arch = "wasm32")]
mod sessions;
#[cfg(target_arch = "wasm32")]
mod users;

#[cfg(target_arch = "wasm32")]
pub use serve::handle;

#[cfg(target_arch = "wasm32")]
mod serve {
    use super::auth::{authenticate, require_admin, require_user};
    use super::route::{resolve, Endpoint};
    use super::{query, sessions, users};
    use crate::config::Config;
    use crate::error::{Error, Result};
    use crate::index::Index;
    use crate::respond;
    use protocol::{ApiError, ErrorCode};
    use serde_json::json;
    use worker::{Env, Method, Request, Response};

    pub async fn handle(mut req: Request, env: Env) -> worker::Result<Response> {
        match dispatch(&mut req, &env).await {
            Ok(response) => Ok(response),
            Err(error) => respond::error(&error.into_api()),
        }
    }

    fn config(env: &Env) -> Result<Config> {
        Config::from_lookup(|name| {
            env.secret(name)
                .map(|s| s.to_string())
                .ok()
                .or_else(|| env.var(name).map(|v| v.to_string()).ok())
        })
        .map_err(|message| {
            crate::log::error(&format!("configuration: {message}"));
            Error::Api(ApiError::new(
                ErrorCode::Unavailable,
                "the coordinator is misconfigured; see its logs",
            ))
        })
    }

    async fn dispatch(req: &mut Request, env: &Env) -> Result<Response> {
        let url = req.url()?;
        let endpoint = resolve(req.method().as_ref(), url.path())?;
        let config = config(env)?;
        let query_string = url.query().unwrap_or("").to_owned();
        if endpoint == Endpoint::Health {
            let mut health = json!({"status": "healthy", "env": config.env, "version": env!("CARGO_PKG_VERSION"), "provider": "none"});
            if query::param(&query_string, "deep").is_some_and(|v| v != "0") {
                health["provider_health"] =
                    json!({"ok": false, "detail": "no sandbox provider is configured"});
            }
            return respond::json(200, &health);
        }
        let index = Index::new(env.d1("DB")?);
        match &endpoint {
            Endpoint::Connect(session_id) => {
                return sessions::connect(env, &index, &config, req, session_id).await
            }
            Endpoint::SandboxConnect(_) => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "no sandbox provider is configured",
                )
                .into());
            }
            Endpoint::Events(session_id) if req.headers().get("authorization")?.is_none() => {
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
        let session_id = match &endpoint {
            Endpoint::Me => return users::me(&user),
            Endpoint::ListRepos => return users::repos(&config, &user),
            Endpoint::ListSessions => return sessions::list(&index, &user, &query_string).await,
            Endpoint::CreateSession => {
                return sessions::create(
                    env,
                    &index,
                    &config,
                    &url,
                    &user,
                    &body(req, &config).await?,
                )
                .await
            }
            Endpoint::GetSession(id)
            | Endpoint::ArchiveSession(id)
            | Endpoint::AddMember(id)
            | Endpoint::RemoveMember(id, _)
            | Endpoint::MintToken(id)
            | Endpoint::PostPrompt(id)
            | Endpoint::PostSelection(id)
            | Endpoint::Events(id)
            | Endpoint::Messages(id)
            | Endpoint::Artifacts(id)
            | Endpoint::Stop(id)
            | Endpoint::Cancel(id) => id.clone(),
            _ => return Err(ApiError::not_found("endpoint").into()),
        };
        let membership = sessions::membership(&index, &session_id, &user).await?;
        let with_query = |path: &str| {
            if query_string.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query_string}")
            }
        };
        match endpoint {
            Endpoint::GetSession(_) => sessions::get(env, &membership, &user).await,
            Endpoint::ArchiveSession(_) => sessions::archive(env, &index, &membership, &user).await,
            Endpoint::AddMember(_) => {
                sessions::add_member(env, &index, &membership, &user, &body(req, &config).await?)
                    .await
            }
            Endpoint::RemoveMember(_, member) => {
                sessions::remove_member(env, &index, &membership, &user, &member).await
            }
            Endpoint::MintToken(_) => sessions::token(&config, &url, &membership, &user),
            Endpoint::PostPrompt(_) => {
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Post,
                    "/prompts",
                    Some(body(req, &config).await?),
                )
                .await
            }
            Endpoint::PostSelection(_) => {
                let body = respond::read_body(req, config.limits.selection_bytes).await?;
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Post,
                    "/selections",
                    Some(body),
                )
                .await
            }
            Endpoint::Events(_) if wants_event_stream(req)? => {
                sessions::event_stream(env, &membership, &user, req).await
            }
            Endpoint::Events(_) => {
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Get,
                    &with_query("/events"),
                    None,
                )
                .await
            }
            Endpoint::Messages(_) => {
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Get,
                    &with_query("/messages"),
                    None,
                )
                .await
            }
            Endpoint::Artifacts(_) => {
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Get,
                    &with_query("/artifacts"),
                    None,
                )
                .await
            }
            Endpoint::Stop(_) => {
                sessions::forward(env, &membership, &user, Method::Post, "/stop", None).await
            }
            Endpoint::Cancel(_) => {
                sessions::forward(
                    env,
                    &membership,
                    &user,
                    Method::Post,
                    "/cancel",
                    Some(body(req, &config).await?),
                )
                .await
            }
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
