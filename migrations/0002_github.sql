-- GitHub: users linked by their GitHub id; their user tokens, AES-256-GCM encrypted by the
-- Worker (a nonce and a ciphertext per token, the id of the key, and a version and lease so a
-- refresh happens once); webhook deliveries already handled; pull requests and their outcome.
-- Times in this file's tables are milliseconds since the epoch, except the RFC 3339 texts.

ALTER TABLE users ADD COLUMN github_id INTEGER;
CREATE UNIQUE INDEX IF NOT EXISTS users_github_id ON users(github_id) WHERE github_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS github_tokens (
  user_id            TEXT PRIMARY KEY REFERENCES users(id),
  key_id             TEXT NOT NULL,
  access_nonce       TEXT NOT NULL,
  access_ciphertext  TEXT NOT NULL,
  access_expires_at  INTEGER,
  refresh_nonce      TEXT,
  refresh_ciphertext TEXT,
  refresh_expires_at INTEGER,
  version            INTEGER NOT NULL DEFAULT 1,
  refreshing_until   INTEGER,
  updated_at         INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  delivery_id TEXT PRIMARY KEY,
  event       TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_received ON webhook_deliveries(received_at);

CREATE TABLE IF NOT EXISTS pull_requests (
  repo       TEXT NOT NULL,
  number     INTEGER NOT NULL,
  session_id TEXT NOT NULL,
  url        TEXT NOT NULL,
  state      TEXT NOT NULL,
  head       TEXT NOT NULL,
  base       TEXT NOT NULL,
  opened_by  TEXT NOT NULL,
  created_at TEXT NOT NULL,
  merged_at  TEXT,
  closed_at  TEXT,
  PRIMARY KEY (repo, number)
);
CREATE INDEX IF NOT EXISTS pull_requests_session ON pull_requests(session_id);
