//! Sandboxes the room asked for (the live one is the newest without `ended_at`) and the
//! bridge frames already acknowledged, so a re-sent frame is stored once.

use super::{cached, int, opt, s, SandboxRow, Store};
use crate::error::Result;
use protocol::event::SandboxState;

impl Store {
    pub fn live_sandbox(&self) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes WHERE ended_at IS NULL ORDER BY created_at DESC LIMIT 1",
            vec![],
        )
    }

    pub fn live_sandbox_id(&self) -> Result<Option<String>> {
        cached(&self.live_sandbox_id, || {
            Ok(self.live_sandbox()?.map(|s| s.id))
        })
    }

    /// The newest sandbox, live or ended.
    pub fn latest_sandbox(&self) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes ORDER BY created_at DESC LIMIT 1",
            vec![],
        )
    }

    pub fn sandbox_by_token_hash(&self, token_hash: &str) -> Result<Option<SandboxRow>> {
        self.first(
            "SELECT * FROM sandboxes WHERE token_hash = ?",
            vec![s(token_hash)],
        )
    }

    pub fn insert_sandbox(
        &self,
        id: &str,
        token_hash: &str,
        restored_from: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        *self.live_sandbox_id.borrow_mut() = None;
        self.run(
            "INSERT INTO sandboxes (id, token_hash, status, restored_from, created_at, idle_since)
             VALUES (?, ?, 'spawning', ?, ?, ?)",
            vec![
                s(id),
                s(token_hash),
                opt(restored_from),
                int(now_ms),
                int(now_ms),
            ],
        )
    }

    pub fn set_sandbox_status(
        &self,
        id: &str,
        status: SandboxState,
        detail: Option<&str>,
    ) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET status = ?, detail = ? WHERE id = ?",
            vec![s(status.as_str()), opt(detail), s(id)],
        )
    }

    pub fn set_sandbox_provider_id(&self, id: &str, provider_id: &str) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET provider_id = ? WHERE id = ?",
            vec![s(provider_id), s(id)],
        )
    }

    /// The bridge said `ready`: it is alive now, and runs this agent.
    pub fn sandbox_connected(&self, id: &str, agent: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET agent = ?, heartbeat_at = ? WHERE id = ?",
            vec![s(agent), int(now_ms), s(id)],
        )
    }

    pub fn sandbox_heartbeat(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET heartbeat_at = ? WHERE id = ?",
            vec![int(now_ms), s(id)],
        )
    }

    pub fn sandbox_idle_since(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "UPDATE sandboxes SET idle_since = ? WHERE id = ?",
            vec![int(now_ms), s(id)],
        )
    }

    pub fn end_sandbox(
        &self,
        id: &str,
        status: SandboxState,
        detail: Option<&str>,
        now_ms: u64,
    ) -> Result<()> {
        *self.live_sandbox_id.borrow_mut() = None;
        self.run(
            "UPDATE sandboxes SET status = ?, detail = ?, ended_at = ? WHERE id = ? AND ended_at IS NULL",
            vec![s(status.as_str()), opt(detail), int(now_ms), s(id)],
        )
    }

    /// Records that the sandbox came from the warm pool.
    pub fn mark_warm(&self, id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "INSERT OR IGNORE INTO warm_claims (sandbox_id, claimed_at) VALUES (?, ?)",
            vec![s(id), int(now_ms)],
        )
    }

    /// Whether the sandbox came from the warm pool (rather than started for this session).
    pub fn is_warm(&self, id: &str) -> Result<bool> {
        Ok(self.number(
            "SELECT COUNT(*) AS n FROM warm_claims WHERE sandbox_id = ?",
            vec![s(id)],
        )? > 0)
    }

    pub fn ack_seen(&self, sandbox_id: &str, ack_id: &str) -> Result<bool> {
        Ok(self.number(
            "SELECT COUNT(*) AS n FROM acks WHERE sandbox_id = ? AND ack_id = ?",
            vec![s(sandbox_id), s(ack_id)],
        )? > 0)
    }

    /// An ended sandbox sends nothing more (its bridge is refused with 410): its acks go.
    pub fn forget_acks(&self, sandbox_id: &str) -> Result<()> {
        self.run("DELETE FROM acks WHERE sandbox_id = ?", vec![s(sandbox_id)])
    }

    pub fn record_ack(&self, sandbox_id: &str, ack_id: &str, now_ms: u64) -> Result<()> {
        self.run(
            "INSERT OR IGNORE INTO acks (sandbox_id, ack_id, at) VALUES (?, ?, ?)",
            vec![s(sandbox_id), s(ack_id), int(now_ms)],
        )
    }
}
