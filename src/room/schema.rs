//! The room's SQLite schema as numbered migrations, applied in order when the room starts
//! and recorded in `_schema_migrations`. Append new steps; never edit an applied one.

pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "session, participants, events, messages, artifacts",
        sql: "
        CREATE TABLE IF NOT EXISTS session (
            id TEXT PRIMARY KEY, repo TEXT NOT NULL, branch TEXT NOT NULL, title TEXT NOT NULL,
            owner_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS participants (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
            email TEXT NOT NULL, joined_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY, type TEXT NOT NULL, json TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS messages (
            id TEXT PRIMARY KEY, seq INTEGER NOT NULL, author_id TEXT NOT NULL,
            author_user_id TEXT NOT NULL, author_name TEXT NOT NULL, content TEXT NOT NULL,
            source TEXT NOT NULL, client_request_id TEXT, attachments TEXT NOT NULL,
            selection_ids TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
            created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);
        CREATE UNIQUE INDEX IF NOT EXISTS messages_request
            ON messages(author_user_id, client_request_id) WHERE client_request_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_status ON messages(status, seq);
        CREATE TABLE IF NOT EXISTS artifacts (
            id TEXT PRIMARY KEY, seq INTEGER NOT NULL, type TEXT NOT NULL, message_id TEXT,
            author_id TEXT, data TEXT NOT NULL, created_at TEXT NOT NULL);
    ",
    },
    Migration {
        version: 2,
        description: "sandboxes, acknowledged bridge frames, room settings",
        sql: "
        CREATE TABLE IF NOT EXISTS sandboxes (
            id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
            provider_id TEXT, agent TEXT, detail TEXT, restored_from TEXT,
            created_at INTEGER NOT NULL, heartbeat_at INTEGER, idle_since INTEGER NOT NULL,
            ended_at INTEGER);
        CREATE TABLE IF NOT EXISTS acks (
            sandbox_id TEXT NOT NULL, ack_id TEXT NOT NULL, at INTEGER NOT NULL,
            PRIMARY KEY (sandbox_id, ack_id));
        CREATE TABLE IF NOT EXISTS room_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ",
    },
    Migration {
        version: 3,
        description: "prompts from Slack and what was posted back to their threads",
        sql: "
        CREATE TABLE IF NOT EXISTS slack_prompts (
            message_id TEXT PRIMARY KEY, team_id TEXT NOT NULL, channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL, session_url TEXT NOT NULL, offer_pr INTEGER NOT NULL,
            status_ts TEXT, status_text TEXT, status_at INTEGER, status_tried INTEGER NOT NULL,
            final_ts TEXT, final_tried INTEGER NOT NULL, attempts INTEGER NOT NULL,
            next_at INTEGER NOT NULL, done INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS slack_prompts_due ON slack_prompts(done, next_at);
    ",
    },
    Migration {
        version: 4,
        description: "sandboxes claimed from the warm pool",
        sql: "
        CREATE TABLE IF NOT EXISTS warm_claims (
            sandbox_id TEXT PRIMARY KEY, claimed_at INTEGER NOT NULL);
    ",
    },
];

/// The bookkeeping table itself, created before any step.
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _schema_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// The steps still to apply after `applied` (the highest version recorded).
pub fn pending(applied: u32) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |m| m.version > applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_from_one() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, i + 1);
            assert!(!migration.description.is_empty());
            // Steps must be idempotent so a half-applied step can run again.
            for statement in migration
                .sql
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                assert!(
                    statement.contains("IF NOT EXISTS"),
                    "not idempotent: {statement}"
                );
            }
        }
        assert_eq!(pending(0).count(), MIGRATIONS.len());
        assert_eq!(pending(MIGRATIONS.len() as u32).count(), 0);
    }
}
