"""The warm pool on Modal: ``POST /warm-sandboxes`` starts a sandbox with no session secret in it, and
``POST /sandboxes/:id/claim`` writes its assignment into the running sandbox, once."""

import json

from planning import ASSIGNMENT_FILE
from provider_helpers import BODY, COORDINATOR, TOKEN, call, make_api

WARM = {
    "sandbox_id": "sbx_warm0123456789abcdef",
    "repo": {"owner": "acme", "name": "web", "branch": "main"},
    "resources": {"cpu": 2, "memory_mb": 4096, "disk_mb": 10240, "timeout_s": 3600},
    "network": {"block_network": False, "allowed_hosts": []},
    "env": {},
}
CLAIM = {"session_id": BODY["session_id"], "coordinator_url": COORDINATOR, "sandbox_token": TOKEN}


def started(fake_modal):
    creates = [c for c in fake_modal.calls if c[0] == "Sandbox.create"]
    assert len(creates) == 1, creates
    return creates[0][2]


def test_a_warm_sandbox_holds_no_session_secret(fake_modal):
    api = make_api(fake_modal)
    status, payload = call(api, "POST", "/warm-sandboxes", WARM)
    assert status == 201, payload
    assert payload["sandbox_id"] == WARM["sandbox_id"]
    kwargs = started(fake_modal)
    env = kwargs["env"]
    for name in ("SESSION_ID", "COORDINATOR_URL", "SANDBOX_TOKEN", "SANDBOX_TOKEN_FILE"):
        assert name not in env, name
    assert env["SANDBOX_ASSIGNMENT_FILE"] == ASSIGNMENT_FILE
    assert env["SANDBOX_ID"] == WARM["sandbox_id"]
    assert kwargs["tags"] == {"role": "warm", "sandbox_id": WARM["sandbox_id"], "repo": "acme/web"}
    # It may reach the coordinators it could be claimed by, and the git host.
    assert "coord.example.com" in kwargs["outbound_domain_allowlist"]
    assert TOKEN not in json.dumps(kwargs, default=str)
    record = api.store.get(f"sandbox:{WARM['sandbox_id']}")
    assert record["warm"] is True and record["session_id"] is None
    # Starting it again answers with the same sandbox.
    assert call(api, "POST", "/warm-sandboxes", WARM) == (201, payload)
    assert len([c for c in fake_modal.calls if c[0] == "Sandbox.create"]) == 1


def test_the_claim_writes_the_assignment_once(fake_modal):
    api = make_api(fake_modal)
    _, started_answer = call(api, "POST", "/warm-sandboxes", WARM)
    path = f"/sandboxes/{WARM['sandbox_id']}/claim"
    status, payload = call(api, "POST", path, CLAIM)
    assert status == 200, payload
    assert payload == started_answer
    sandbox = fake_modal.sandboxes[payload["provider_id"]]
    assert json.loads(sandbox.files[ASSIGNMENT_FILE]) == CLAIM
    assert f"{ASSIGNMENT_FILE}.tmp" not in sandbox.files, "written whole, then moved into place"
    record = api.store.get(f"sandbox:{WARM['sandbox_id']}")
    assert record["session_id"] == CLAIM["session_id"]
    # The same claim again is answered alike; another session's is refused.
    assert call(api, "POST", path, CLAIM) == (200, payload)
    status, error = call(api, "POST", path, dict(CLAIM, session_id="ses_other"))
    assert status == 409 and error["error"]["code"] == "conflict"
    # Its snapshots are that session's from now on, as a cold sandbox's would be.
    assert call(api, "POST", f"/sandboxes/{WARM['sandbox_id']}/snapshot")[0] == 200


def test_claims_that_cannot_be(fake_modal):
    api = make_api(fake_modal)
    status, error = call(api, "POST", "/sandboxes/sbx_nope/claim", CLAIM)
    assert status == 404, error
    call(api, "POST", "/sandboxes", BODY)
    status, error = call(api, "POST", f"/sandboxes/{BODY['sandbox_id']}/claim", CLAIM)
    assert (status, error["error"]["code"]) == (409, "conflict"), "a cold sandbox is not claimable"
    call(api, "POST", "/warm-sandboxes", WARM)
    status, error = call(api, "POST", f"/sandboxes/{WARM['sandbox_id']}/claim", dict(CLAIM, coordinator_url="https://evil.example"))
    assert (status, error["error"]["code"]) == (403, "forbidden")
    status, error = call(api, "POST", f"/sandboxes/{WARM['sandbox_id']}/claim", {"session_id": "ses_1"})
    assert (status, error["error"]["code"]) == (422, "invalid_field")
    # An ended warm sandbox is not claimable.
    call(api, "DELETE", f"/sandboxes/{WARM['sandbox_id']}")
    status, error = call(api, "POST", f"/sandboxes/{WARM['sandbox_id']}/claim", CLAIM)
    assert (status, error["error"]["code"]) == (409, "conflict")
