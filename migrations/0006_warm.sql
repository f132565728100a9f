-- The warm pool: sandboxes started ahead of any session, bound to none until a room claims
-- one (src/index/warm.rs). Times are milliseconds since the epoch.
--
-- status: starting (the provider is being asked), warm (up, waiting, claimable), claimed
-- (handed to session_id at claimed_at; the room owns it from then on), retired (too old, the
-- image changed, or its provider call failed; the provider is asked to delete it).
-- A row is claimed by one UPDATE … RETURNING over the oldest fresh warm row of its repository,
-- branch and image, so two rooms never get the same sandbox.

CREATE TABLE IF NOT EXISTS warm_sandboxes (
  id          TEXT PRIMARY KEY,     -- the sandbox id, which the claiming room keeps
  repo        TEXT NOT NULL,        -- lower case owner/name
  branch      TEXT NOT NULL,        -- the branch its workspace was prepared on
  image_id    TEXT,                 -- the image it started from; NULL: none (a clone)
  provider_id TEXT,                 -- the provider's own id, once it answered
  status      TEXT NOT NULL,        -- starting, warm, claimed, retired
  created_at  INTEGER NOT NULL,
  claimed_at  INTEGER,
  session_id  TEXT,                 -- the session that claimed it
  retired_at  INTEGER,
  deleted     INTEGER NOT NULL DEFAULT 0  -- a retired one the provider was told to delete
);

CREATE INDEX IF NOT EXISTS warm_sandboxes_claimable ON warm_sandboxes(repo, status, created_at);
