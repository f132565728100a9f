//! **API Boundary** between the Worker and a session's room. The Worker authenticates and
//! authorises; the room trusts the [`Caller`] header because only the Worker can reach it.

use serde::{Deserialize, Serialize};

pub const CALLER_HEADER: &str = "X-Caller";

/// The authenticated user a request to the room is made for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: String,
    pub name: String,
    pub email: String,
}

/// `POST /init`: the room learns its session and its owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Init {
    pub session: protocol::api::Session,
    pub prompt: Option<String>,
    /// The origin the session was created through; sandboxes dial back to it unless
    /// `COORDINATOR_URL` says otherwise.
    #[serde(default)]
    pub origin: String,
}

/// `POST /members`: a user joins the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub user: Caller,
}

/// `POST /members/remove`: a user leaves the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemovedMember {
    pub user_id: String,
}

/// The origin the room reaches itself by; any host works for a stub fetch.
pub const ROOM_ORIGIN: &str = "https://room.internal";

/// The Worker's handle on one session's room.
pub struct RoomClient {
    stub: worker::Stub,
}

impl RoomClient {
    pub fn open(env: &worker::Env, session_id: &str) -> crate::error::Result<Self> {
        let namespace = env.durable_object("ROOMS")?;
        Ok(RoomClient {
            stub: namespace.id_from_name(session_id)?.get_stub()?,
        })
    }

    fn request(
        method: worker::Method,
        path: &str,
        caller: &Caller,
        body: Option<Vec<u8>>,
    ) -> crate::error::Result<worker::Request> {
        let headers = worker::Headers::new();
        headers.set(CALLER_HEADER, &serde_json::to_string(caller)?)?;
        let mut init = worker::RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        Ok(worker::Request::new_with_init(
            &format!("{ROOM_ORIGIN}{path}"),
            &init,
        )?)
    }

    /// Calls the room; its response (success or protocol error) goes to the client as it is.
    pub async fn call(
        &self,
        method: worker::Method,
        path: &str,
        caller: &Caller,
        body: Option<Vec<u8>>,
    ) -> crate::error::Result<worker::Response> {
        let request = Self::request(method, path, caller, body)?;
        Ok(self.stub.fetch_with_request(request).await?)
    }

    /// Calls the room and reads its JSON answer, turning an error answer into an error.
    pub async fn call_json(
        &self,
        method: worker::Method,
        path: &str,
        caller: &Caller,
        body: Option<Vec<u8>>,
    ) -> crate::error::Result<serde_json::Value> {
        let mut response = self.call(method, path, caller, body).await?;
        let status = response.status_code();
        let value: serde_json::Value = response.json().await?;
        if status >= 400 {
            let error: protocol::ApiError = serde_json::from_value(value["error"].clone())?;
            return Err(error.into());
        }
        Ok(value)
    }

    /// Forwards a bridge's WebSocket upgrade with its credentials; the room checks them.
    pub async fn connect_bridge(
        &self,
        authorization: Option<String>,
        sandbox_id: Option<String>,
    ) -> crate::error::Result<worker::Response> {
        let headers = worker::Headers::new();
        headers.set("upgrade", "websocket")?;
        if let Some(authorization) = authorization {
            headers.set("authorization", &authorization)?;
        }
        if let Some(sandbox_id) = sandbox_id {
            headers.set(protocol::bridge::SANDBOX_ID_HEADER, &sandbox_id)?;
        }
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Get).with_headers(headers);
        let request = worker::Request::new_with_init(&format!("{ROOM_ORIGIN}/sandbox"), &init)?;
        Ok(self.stub.fetch_with_request(request).await?)
    }

    /// Forwards a WebSocket upgrade to the room.
    pub async fn connect(
        &self,
        path: &str,
        caller: &Caller,
    ) -> crate::error::Result<worker::Response> {
        let request = Self::request(worker::Method::Get, path, caller, None)?;
        request.headers().set("upgrade", "websocket")?;
        Ok(self.stub.fetch_with_request(request).await?)
    }
}
