-- "Humans prompting now" (GET /v1/metrics): who sent a prompt lately, per repository, written
-- by the room when the prompt is sent (at most once a minute per person and repository), so
-- a prompt still queued or running counts. One row per person and repository: the table
-- stays as small as the set of people who ever prompted.

CREATE TABLE IF NOT EXISTS metrics_prompting (
  author_id TEXT NOT NULL,
  repo      TEXT NOT NULL,     -- lower case, as prompt_metrics.repo
  at        INTEGER NOT NULL,  -- ms since the epoch of their latest prompt there
  PRIMARY KEY (author_id, repo)
);
CREATE INDEX IF NOT EXISTS metrics_prompting_at ON metrics_prompting(at, repo);
