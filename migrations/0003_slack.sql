-- Slack: event ids already handled (Slack retries a delivery it thinks was lost), kept a day;
-- and each thread's session, kept 7 days after the thread's last activity. A thread whose
-- repository is still being picked has no session yet and keeps the request in `pending`.
-- Times are milliseconds since the epoch.

CREATE TABLE IF NOT EXISTS slack_events (
  event_id    TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS slack_events_received ON slack_events(received_at);

CREATE TABLE IF NOT EXISTS slack_threads (
  team_id      TEXT NOT NULL,
  channel_id   TEXT NOT NULL,
  thread_ts    TEXT NOT NULL,
  session_id   TEXT,
  user_id      TEXT NOT NULL,
  last_seen_ts TEXT NOT NULL,
  pending      TEXT,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (team_id, channel_id, thread_ts)
);
CREATE INDEX IF NOT EXISTS slack_threads_updated ON slack_threads(updated_at);
