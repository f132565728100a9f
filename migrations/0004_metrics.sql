-- Metrics, written as things happen: one write (a batch) per prompt when it finishes, by its
-- room through the Worker's D1 binding. Pull requests and their outcome are in pull_requests
-- (0002). Times are milliseconds since the epoch; a day is a UTC day counted from the epoch.
--
-- prompt_metrics keeps each prompt as it ended. The three tables after it count the same
-- prompts per day and repository, so GET /v1/metrics reads at most days × repositories rows
-- (× buckets for latencies) however many prompts there were: latencies are kept as histograms
-- whose buckets are a twentieth of a decade wide (src/metrics.rs).

CREATE TABLE IF NOT EXISTS prompt_metrics (
  message_id     TEXT PRIMARY KEY,
  session_id     TEXT NOT NULL,
  repo           TEXT NOT NULL,     -- lower case, as pull_requests.repo
  author_id      TEXT NOT NULL,     -- the user id of who sent it
  source         TEXT NOT NULL,     -- web, extension, slack, api
  status         TEXT NOT NULL,     -- completed, failed, cancelled, timed_out
  queued_at      INTEGER NOT NULL,
  to_started_ms  INTEGER,           -- queued → prompt_started; NULL if it never started
  to_first_token_ms INTEGER,        -- queued → the first token; NULL if none came
  duration_ms    INTEGER,           -- prompt_started → prompt_finished
  warm           INTEGER            -- 1 a warm sandbox, 0 a cold start, NULL not known (no warm pool yet)
);
CREATE INDEX IF NOT EXISTS prompt_metrics_queued ON prompt_metrics(queued_at, author_id, repo);
CREATE INDEX IF NOT EXISTS prompt_metrics_session_author ON prompt_metrics(session_id, author_id);

-- Prompts per day and repository.
CREATE TABLE IF NOT EXISTS metrics_daily (
  day     INTEGER NOT NULL,
  repo    TEXT NOT NULL,
  prompts INTEGER NOT NULL,
  PRIMARY KEY (day, repo)
);

-- Who prompted, per day and repository (for unique users over any window).
CREATE TABLE IF NOT EXISTS metrics_authors (
  day       INTEGER NOT NULL,
  repo      TEXT NOT NULL,
  author_id TEXT NOT NULL,
  PRIMARY KEY (day, repo, author_id)
);

-- Latency histograms: metric is to_first_token_ms or to_started_ms; warm 1, 0, or -1 (not known).
CREATE TABLE IF NOT EXISTS metrics_latency (
  day    INTEGER NOT NULL,
  repo   TEXT NOT NULL,
  metric TEXT NOT NULL,
  warm   INTEGER NOT NULL,
  bucket INTEGER NOT NULL,
  n      INTEGER NOT NULL,
  PRIMARY KEY (metric, day, repo, warm, bucket)
);

ALTER TABLE sessions ADD COLUMN participants INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN prompt_authors INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS sessions_created ON sessions(created_at);
CREATE INDEX IF NOT EXISTS sessions_repo_created ON sessions(repo COLLATE NOCASE, created_at);

CREATE INDEX IF NOT EXISTS pull_requests_created ON pull_requests(created_at);
CREATE INDEX IF NOT EXISTS pull_requests_merged ON pull_requests(merged_at) WHERE merged_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS pull_requests_repo_created ON pull_requests(repo, created_at);
