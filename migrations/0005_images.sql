-- Repository images, rebuilt when the default branch moves (src/images.rs, src/schedule.rs).
-- Times are milliseconds since the epoch; repositories are lower case, as pull_requests.repo.
--
-- image_builds keeps every build the Worker's cron asked the provider for: the newest row of a
-- repository is what the next decision compares the branch's head with, its newest `ready` row
-- is the image new sandboxes start from, and GET /v1/repos shows the newest one (a failure with
-- its error).

CREATE TABLE IF NOT EXISTS image_builds (
  id              TEXT PRIMARY KEY,  -- the coordinator's id of the build
  repo            TEXT NOT NULL,
  branch          TEXT NOT NULL,
  commit_sha      TEXT NOT NULL,     -- the head the build was asked for
  runtime_version TEXT NOT NULL,     -- the provider's sandbox runtime when it was asked
  status          TEXT NOT NULL CHECK (status IN ('building', 'ready', 'failed')),
  build_id        TEXT,              -- the provider's build id; NULL if it refused to start one
  image_id        TEXT,              -- set when ready
  error           TEXT,              -- set when failed: one line, no credentials
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER
);
CREATE INDEX IF NOT EXISTS image_builds_repo ON image_builds(repo, started_at);
CREATE INDEX IF NOT EXISTS image_builds_running ON image_builds(status) WHERE status = 'building';

-- When each repository's head was last looked up, so each is checked once per IMAGE_REFRESH_MINUTES
-- however often the cron runs.
CREATE TABLE IF NOT EXISTS image_checks (
  repo       TEXT PRIMARY KEY,
  checked_at INTEGER NOT NULL,
  error      TEXT                    -- why the last lookup failed, if it did
);
