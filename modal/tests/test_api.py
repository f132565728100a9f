import json
import logging

import pytest

from config import Config
from planning import volume_name
from provider_api import app_from_env
from provider_helpers import BODY, COORDINATOR, DELETE, SECRET, TOKEN, ApiClient, Clock, body, call, make_api, nonce, only_create

SANDBOX_ID = BODY["sandbox_id"]


def error_of(response):
    status, payload = response
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    return status, payload["error"]["code"], payload["error"]["message"]


# -- health and signature ----------------------------------------------------------------------------


def test_health_needs_no_signature(fake_modal):
    api = make_api(fake_modal, app_name="my-app")
    assert api.handle("GET", "/health", {}, b"") == (
        200,
        {"ok": True, "provider": "modal", "app": "my-app", "runtime_version": "session-coordinator-sandbox"},
    )


def test_health_looks_the_app_up_and_reports_refused_credentials(fake_modal, monkeypatch):
    looked_up = []

    def lookup(name, create_if_missing=False):
        looked_up.append((name, create_if_missing))
        raise fake_modal.exception.Error("token rejected: ak-1234 is not valid")

    monkeypatch.setattr(fake_modal.App, "lookup", staticmethod(lookup))
    api = make_api(fake_modal, app_name="my-app")
    status, payload = api.handle("GET", "/health", {}, b"")
    assert status == 200 and payload["ok"] is False
    assert looked_up == [("my-app", False)]
    assert payload["problems"] == ["modal App.lookup failed: FakeModalError: token rejected: ak-1234 is not valid"]


def test_health_reports_missing_configuration(fake_modal):
    api = make_api(fake_modal, provider_secret=None, coordinator_allowlist=frozenset())
    status, payload = api.handle("GET", "/health", {}, b"")
    assert status == 200 and payload["ok"] is False and payload["provider"] == "modal"
    assert payload["problems"] == ["PROVIDER_SECRET is not set", "COORDINATOR_ALLOWLIST is empty"]


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"sign": False}, "missing"),
        ({"secret": "not-the-secret"}, "does not match"),
        ({"headers": {"X-Coordinator-Signature": "t=oops"}}, "malformed"),
        ({"t": 1_800_000_000_000 - 5 * 60 * 1000 - 1}, "too old"),
        ({"t": 1_800_000_000_000 + 5 * 60 * 1000 + 1}, "too old"),
    ],
)
def test_bad_signatures_are_401_and_create_nothing(fake_modal, kwargs, fragment):
    api = make_api(fake_modal)
    status, code, message = error_of(call(api, "POST", "/sandboxes", BODY, **kwargs))
    assert (status, code) == (401, "unauthorized") and fragment in message
    assert fake_modal.created() == []


def test_signature_covers_the_exact_body_bytes(fake_modal):
    api = make_api(fake_modal)
    raw = json.dumps(BODY).encode()
    import signature

    header = signature.sign(SECRET, int(api.clock()), nonce(), "POST", "/sandboxes", raw)
    tampered = raw.replace(b'"cpu": 2', b'"cpu": 8')
    status, code, _ = error_of(api.handle("POST", "/sandboxes", {"x-coordinator-signature": header}, tampered))
    assert (status, code) == (401, "unauthorized")
    # The header name is case-insensitive.
    assert api.handle("POST", "/sandboxes", {"x-coordinator-signature": header}, raw)[0] == 201


@pytest.mark.parametrize(
    "method,path",
    [("DELETE", "/sandboxes"), ("POST", "/images"), ("POST", "/sandboxes?x=1"), ("POST", "/sandboxes/x/snapshot")],
)
def test_signature_is_bound_to_the_method_and_the_path_with_its_query(fake_modal, method, path):
    api = make_api(fake_modal)
    raw = json.dumps(BODY).encode()
    import signature

    header = signature.sign(SECRET, int(api.clock()), nonce(), method, path, raw)
    status, code, _ = error_of(api.handle("POST", "/sandboxes", {"x-coordinator-signature": header}, raw))
    assert (status, code) == (401, "unauthorized")
    assert fake_modal.created() == []


def test_a_signed_request_is_accepted_once(fake_modal):
    api = make_api(fake_modal)
    import signature

    header = signature.sign(SECRET, int(api.clock()), nonce(), "GET", "/images/b_nope", b"")
    first = api.handle("GET", "/images/b_nope", {"x-coordinator-signature": header}, b"")
    assert first[0] == 404
    status, code, message = error_of(api.handle("GET", "/images/b_nope", {"x-coordinator-signature": header}, b""))
    assert (status, code) == (401, "unauthorized") and "already used" in message


def test_the_previous_secret_is_accepted_during_a_rotation(fake_modal):
    api = make_api(fake_modal, provider_secret_previous="the-secret-before")
    assert call(api, "GET", "/images/b_nope", secret=SECRET)[0] == 404
    assert call(api, "GET", "/images/b_nope", secret="the-secret-before")[0] == 404
    assert error_of(call(api, "GET", "/images/b_nope", secret="never-the-secret"))[:2] == (401, "unauthorized")
    plain = make_api(fake_modal)
    assert error_of(call(plain, "GET", "/images/b_nope", secret="the-secret-before"))[:2] == (401, "unauthorized")


def test_v1_signatures_are_refused(fake_modal):
    import hashlib
    import hmac

    api = make_api(fake_modal)
    raw = json.dumps(BODY).encode()
    t = int(api.clock())
    v1 = hmac.new(SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    status, code, message = error_of(api.handle("POST", "/sandboxes", {"x-coordinator-signature": f"t={t},v1={v1}"}, raw))
    assert (status, code) == (401, "unauthorized") and "malformed" in message
    assert fake_modal.created() == []


def test_unsigned_requests_learn_nothing_about_routes(fake_modal):
    api = make_api(fake_modal)
    assert call(api, "GET", "/nope", sign=False)[0] == 401
    assert error_of(call(api, "GET", "/nope"))[:2] == (404, "not_found")
    assert error_of(call(api, "GET", "/sandboxes"))[:2] == (405, "method_not_allowed")


def test_unconfigured_secret_refuses_everything(fake_modal):
    api = make_api(fake_modal, provider_secret=None)
    assert error_of(call(api, "POST", "/sandboxes", BODY))[:2] == (500, "internal")


def test_bad_configuration_is_reported_not_crashed(fake_modal, monkeypatch):
    monkeypatch.setenv("COORDINATOR_ALLOWLIST", "not a url")
    monkeypatch.setenv("PROVIDER_SECRET", SECRET)
    api = ApiClient(app_from_env(None, {}))
    status, payload = api.handle("GET", "/health", {}, b"")
    assert payload["ok"] is False and "COORDINATOR_ALLOWLIST" in payload["problems"][0]
    assert error_of(call(api, "POST", "/sandboxes", BODY))[:2] == (500, "internal")


def test_config_from_env():
    config = Config.from_env(
        {
            "PROVIDER_SECRET": "x",
            "COORDINATOR_ALLOWLIST": "https://Coord.Example.com/, http://127.0.0.1:8787",
            "SANDBOX_ENV_ALLOWLIST": "GITHUB_TOKEN, NPM_TOKEN",
            "SANDBOX_EXTRA_ALLOWED_HOSTS": "API.anthropic.com",
            "MODEL_KEYS_SECRET": "",
            "BRIDGE_COMMAND": "bridge run --agent opencode",
        }
    )
    assert config.coordinator_allowlist == {"https://coord.example.com", "http://127.0.0.1:8787"}
    assert config.env_allowlist == {"GITHUB_TOKEN", "NPM_TOKEN"}
    assert config.extra_allowed_hosts == ("api.anthropic.com",)
    assert config.model_keys_secret is None
    assert config.bridge_command == ("bridge", "run", "--agent", "opencode")
    defaults = Config.from_env({})
    assert defaults.env_allowlist == frozenset() and defaults.model_keys_secret == "session-coordinator-model-keys"


# -- create ------------------------------------------------------------------------------------------


def test_create_passes_resources_env_secret_volume_tags_and_network(fake_modal):
    api = make_api(fake_modal)
    status, payload = call(api, "POST", "/sandboxes", BODY)
    assert status == 201
    assert payload["sandbox_id"] == SANDBOX_ID and payload["provider_id"].startswith("sb-")
    assert payload["workspace"] == "clone"

    args, kwargs = only_create(fake_modal)
    assert args == ("sandbox-entry", "bridge", "run", "--agent", "opencode", "--workspace", "/workspace")
    assert kwargs["app"] == "the-app"
    assert (kwargs["cpu"], kwargs["memory"], kwargs["timeout"]) == (2.0, 4096, 3600)
    assert kwargs["env"] == {
        "COORDINATOR_URL": COORDINATOR,
        "SESSION_ID": BODY["session_id"],
        "SANDBOX_ID": SANDBOX_ID,
        "SANDBOX_TOKEN": TOKEN,
        "REPO_OWNER": "acme",
        "REPO_NAME": "web",
        "REPO_BRANCH": "main",
        "REPO_CLONE_URL": "https://github.com/acme/web.git",
        "WORKSPACE": "/workspace",
        "WORKSPACE_MODE": "clone",
        "MEMORY_DIR": "/memory",
    }
    assert kwargs["secrets"] == [("secret", "session-coordinator-model-keys")]
    assert kwargs["volumes"] == {"/memory": ("volume", "agent-memory-acme--web")}
    assert ("Volume.from_name", "agent-memory-acme--web", True) in fake_modal.calls
    assert kwargs["tags"] == {"role": "agent", "session_id": BODY["session_id"], "sandbox_id": SANDBOX_ID, "repo": "acme/web"}
    assert kwargs["outbound_domain_allowlist"] == ["coord.example.com", "github.com", "api.anthropic.com", "*.npmjs.org"]
    assert "outbound_cidr_allowlist" not in kwargs and "block_network" not in kwargs
    assert kwargs["image"].source == "from_name" and kwargs["image"].ref == "session-coordinator-sandbox"
    # The handle is detached (the sandbox keeps running); the mapping sandbox_id -> Modal id is kept.
    assert ("Sandbox.detach", payload["provider_id"]) in fake_modal.calls
    assert api.store.get(f"sandbox:{SANDBOX_ID}")["provider_id"] == payload["provider_id"]


def test_block_network_allows_only_what_the_sandbox_cannot_work_without(fake_modal):
    api = make_api(fake_modal, extra_allowed_hosts=("models.dev",))
    request = body(network={"block_network": True, "allowed_hosts": ["api.anthropic.com"]},
                   repo={"owner": "acme", "name": "web", "branch": "dev", "clone_url": "https://git.example.org/acme/web.git"})
    assert call(api, "POST", "/sandboxes", request)[0] == 201
    _, kwargs = only_create(fake_modal)
    assert kwargs["outbound_domain_allowlist"] == ["coord.example.com", "git.example.org"]
    assert kwargs["env"]["REPO_CLONE_URL"] == "https://git.example.org/acme/web.git"


def test_provider_extra_hosts_are_added_and_star_means_unrestricted(fake_modal):
    api = make_api(fake_modal, extra_allowed_hosts=("models.dev",))
    assert call(api, "POST", "/sandboxes", body(network={"block_network": False, "allowed_hosts": []}))[0] == 201
    assert only_create(fake_modal)[1]["outbound_domain_allowlist"] == ["coord.example.com", "github.com", "models.dev"]

    fake_modal.reset()
    api = make_api(fake_modal)
    assert call(api, "POST", "/sandboxes", body(network={"block_network": False, "allowed_hosts": ["*"]}))[0] == 201
    _, kwargs = only_create(fake_modal)
    assert "outbound_domain_allowlist" not in kwargs and "outbound_cidr_allowlist" not in kwargs


def test_ip_hosts_go_to_the_cidr_allowlist(fake_modal):
    api = make_api(fake_modal, coordinator_allowlist=frozenset({"http://203.0.113.7:8787"}))
    request = body(coordinator_url="http://203.0.113.7:8787/", network={"block_network": False, "allowed_hosts": ["10.0.0.0/8", "pypi.org"]})
    assert call(api, "POST", "/sandboxes", request)[0] == 201
    _, kwargs = only_create(fake_modal)
    assert kwargs["outbound_cidr_allowlist"] == ["203.0.113.7/32", "10.0.0.0/8"]
    assert kwargs["outbound_domain_allowlist"] == ["github.com", "pypi.org"]
    assert kwargs["env"]["COORDINATOR_URL"] == "http://203.0.113.7:8787"


def test_env_passthrough_is_empty_by_default_and_dropped_names_are_reported(fake_modal):
    api = make_api(fake_modal)
    status, payload = call(api, "POST", "/sandboxes", body(env={"GITHUB_TOKEN": "ghs_x", "FOO": "1"}))
    assert status == 201 and payload["dropped_env"] == ["FOO", "GITHUB_TOKEN"]
    env = only_create(fake_modal)[1]["env"]
    assert "GITHUB_TOKEN" not in env and "FOO" not in env


def test_env_allowlist_passes_listed_names_but_never_reserved_ones(fake_modal):
    api = make_api(fake_modal, env_allowlist=frozenset({"GITHUB_TOKEN", "SANDBOX_TOKEN"}))
    request = body(env={"GITHUB_TOKEN": "ghs_short_lived", "SANDBOX_TOKEN": "forged", "OTHER": "x"})
    status, payload = call(api, "POST", "/sandboxes", request)
    assert status == 201 and payload["dropped_env"] == ["OTHER", "SANDBOX_TOKEN"]
    env = only_create(fake_modal)[1]["env"]
    assert env["GITHUB_TOKEN"] == "ghs_short_lived" and env["SANDBOX_TOKEN"] == TOKEN and "OTHER" not in env


def test_image_selection_snapshot_then_image_then_recorded_then_base(fake_modal):
    api = make_api(fake_modal)
    api.store.put("snapshot:im-snap1", {"session_id": BODY["session_id"]})
    call(api, "POST", "/sandboxes", body(sandbox_id="sbx_a", snapshot_id="im-snap1", image_id="im-repo1"))
    call(api, "POST", "/sandboxes", body(sandbox_id="sbx_b", image_id="im-repo1"))
    api.store.put("image:acme/web", {"image_id": "im-cron1"})
    call(api, "POST", "/sandboxes", body(sandbox_id="sbx_c"))
    api.store.put("image:acme/web@main", {"image_id": "im-branch1"})
    status, payload = call(api, "POST", "/sandboxes", body(sandbox_id="sbx_d"))
    call(api, "POST", "/sandboxes", body(sandbox_id="sbx_e", repo={"owner": "acme", "name": "api", "branch": "main"}))
    assert payload["image_id"] == "im-branch1" and payload["workspace"] == "image"

    images = [(kw["image"].source, kw["image"].object_id or kw["image"].ref, kw["env"]["WORKSPACE_MODE"]) for _, kw in fake_modal.created()]
    assert images == [
        ("from_id", "im-snap1", "restore"),
        ("from_id", "im-repo1", "image"),
        ("from_id", "im-cron1", "image"),
        ("from_id", "im-branch1", "image"),
        ("from_name", "session-coordinator-sandbox", "clone"),
    ]


def test_a_vanished_recorded_image_falls_back_to_the_base_image(fake_modal):
    api = make_api(fake_modal)
    api.store.put("image:acme/web", {"image_id": "im-expired"})
    fake_modal.fail_next["create"] = fake_modal.exception.NotFoundError("Image im-expired not found")
    status, payload = call(api, "POST", "/sandboxes", BODY)
    assert status == 201 and payload["workspace"] == "clone"
    assert [kw["image"].source for _, kw in fake_modal.created()] == ["from_id", "from_name"]
    assert api.store.get("image:acme/web") is None


def test_a_missing_requested_snapshot_is_a_provider_error(fake_modal):
    api = make_api(fake_modal)
    api.store.put("snapshot:im-gone", {"session_id": BODY["session_id"]})
    fake_modal.fail_next["create"] = fake_modal.exception.NotFoundError("Image im-gone not found")
    status, code, message = error_of(call(api, "POST", "/sandboxes", body(snapshot_id="im-gone")))
    assert (status, code) == (502, "provider_error") and "NotFoundError" in message
    assert len(fake_modal.created()) == 1


@pytest.mark.parametrize(
    "allowlist,url",
    [
        ({COORDINATOR}, "https://evil.example.com"),
        ({COORDINATOR}, "http://coord.example.com"),
        ({COORDINATOR}, "https://coord.example.com:8443"),
        (set(), COORDINATOR),
    ],
)
def test_coordinator_url_outside_the_allowlist_is_403(fake_modal, allowlist, url):
    api = make_api(fake_modal, coordinator_allowlist=frozenset(allowlist))
    status, code, _ = error_of(call(api, "POST", "/sandboxes", body(coordinator_url=url)))
    assert (status, code) == (403, "forbidden")
    assert fake_modal.created() == []


def test_allowlist_matches_origins_not_paths_or_default_ports(fake_modal):
    api = make_api(fake_modal)
    assert call(api, "POST", "/sandboxes", body(coordinator_url="https://COORD.example.com:443/base/"))[0] == 201
    assert only_create(fake_modal)[1]["env"]["COORDINATOR_URL"] == "https://COORD.example.com:443/base"


@pytest.mark.parametrize(
    "changes,fragment",
    [
        ({"session_id": DELETE}, "session_id is required"),
        ({"session_id": ""}, "session_id must be 1-128 letters"),
        ({"sandbox_id": "sbx/../x"}, "sandbox_id must be 1-128 letters"),
        ({"sandbox_id": 7}, "sandbox_id must be a string"),
        ({"coordinator_url": "ftp://coord.example.com"}, "coordinator_url must be an http(s) URL"),
        ({"coordinator_url": "https://user:pw@coord.example.com"}, "without credentials"),
        ({"sandbox_token": ""}, "sandbox_token must be 1-4096 printable ASCII"),
        ({"sandbox_token": "has space"}, "printable ASCII"),
        ({"repo": DELETE}, "repo is required"),
        ({"repo": "acme/web"}, "repo must be an object"),
        ({"repo": {"owner": "acme", "name": "web"}}, "repo.branch is required"),
        ({"repo": {"owner": "ac me", "name": "web", "branch": "main"}}, "repo.owner must be 1-100 letters"),
        ({"repo": {"owner": "acme", "name": "..", "branch": "main"}}, "repo.name must be 1-100 letters, digits, '-', '_' or '.', and not '.' or '..'"),
        ({"repo": {"owner": "acme", "name": "web", "branch": "a..b"}}, "repo.branch must be a git branch name"),
        ({"repo": {"owner": "acme", "name": "web", "branch": "-x"}}, "repo.branch must be a git branch name"),
        ({"repo": {"owner": "acme", "name": "web", "branch": "main", "clone_url": "https://x:tok@github.com/a/b"}}, "without credentials"),
        ({"repo": {"owner": "acme", "name": "web", "branch": "main", "clone_url": "git@github.com:a/b.git"}}, "clone_url must be an https URL"),
        ({"image_id": "im id"}, "image_id must be 1-128 letters"),
        ({"snapshot_id": ""}, "snapshot_id must be 1-128 letters"),
        ({"resources": DELETE}, "resources is required"),
        ({"resources__cpu": "2"}, "resources.cpu must be a number"),
        ({"resources__cpu": True}, "resources.cpu must be a number"),
        ({"resources__cpu": 0}, "resources.cpu must be at least 0.125"),
        ({"resources__memory_mb": 10**9}, "resources.memory_mb must be between"),
        ({"resources__memory_mb": 1024.5}, "resources.memory_mb must be a whole number"),
        ({"resources__timeout_s": 5}, "resources.timeout_s must be between"),
        ({"resources__timeout_s": DELETE}, "resources.timeout_s is required"),
        ({"network": DELETE}, "network is required"),
        ({"network__block_network": "no"}, "network.block_network must be true or false"),
        ({"network__allowed_hosts": "github.com"}, "network.allowed_hosts must be a list"),
        ({"network__allowed_hosts": ["https://github.com"]}, "network.allowed_hosts[0] must be a host name"),
        ({"network__allowed_hosts": ["ok.com", "bad host"]}, "network.allowed_hosts[1]"),
        ({"env": ["A=1"]}, "env must be an object"),
        ({"env": {"A": 1}}, "env.A must be a string"),
        ({"env": {"1BAD": "x"}}, "env name '1BAD' must be at most 128 letters"),
    ],
)
def test_validation_errors_are_422_with_the_field(fake_modal, changes, fragment):
    api = make_api(fake_modal)
    status, code, message = error_of(call(api, "POST", "/sandboxes", body(**changes)))
    assert (status, code) == (422, "invalid_field")
    assert fragment in message, message
    assert TOKEN not in message
    assert fake_modal.created() == []


def test_bad_json_and_size(fake_modal):
    api = make_api(fake_modal, max_body_bytes=2048)
    assert error_of(call(api, "POST", "/sandboxes", b"{not json"))[:2] == (400, "invalid_json")
    assert error_of(call(api, "POST", "/sandboxes", b"\xff\xfe"))[:2] == (400, "invalid_json")
    assert error_of(call(api, "POST", "/sandboxes", [1, 2]))[:2] == (422, "invalid_field")
    big = body(env={"X": "y" * 4096})
    assert error_of(call(api, "POST", "/sandboxes", big))[:2] == (413, "too_large")


def test_a_retried_create_is_idempotent_and_a_reused_id_conflicts(fake_modal):
    api = make_api(fake_modal)
    first = call(api, "POST", "/sandboxes", BODY)
    again = call(api, "POST", "/sandboxes", BODY)
    assert first[0] == again[0] == 201 and again[1]["provider_id"] == first[1]["provider_id"]
    assert len(fake_modal.created()) == 1
    status, code, _ = error_of(call(api, "POST", "/sandboxes", body(session_id="ses_other")))
    assert (status, code) == (409, "conflict")


def test_modal_errors_are_502_without_secret_values(fake_modal, caplog):
    caplog.set_level(logging.DEBUG)
    api = make_api(fake_modal, env_allowlist=frozenset({"GITHUB_TOKEN"}))
    github_token = "ghs_0123456789abcdefghijABCDEFGHIJ"
    fake_modal.fail_next["create"] = RuntimeError(f"boom: env SANDBOX_TOKEN={TOKEN} GITHUB_TOKEN={github_token} key={SECRET}")
    status, code, message = error_of(call(api, "POST", "/sandboxes", body(env={"GITHUB_TOKEN": github_token})))
    assert (status, code) == (502, "provider_error")
    assert "Sandbox.create" in message and "RuntimeError" in message
    for secret in (TOKEN, github_token, SECRET):
        assert secret not in message
        assert secret not in caplog.text
    assert api.store.get(f"sandbox:{SANDBOX_ID}") is None


def test_tokens_never_reach_the_logs(fake_modal, caplog):
    caplog.set_level(logging.DEBUG)
    api = make_api(fake_modal)
    assert call(api, "POST", "/sandboxes", BODY)[0] == 201
    call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {})
    call(api, "DELETE", f"/sandboxes/{SANDBOX_ID}")
    assert SANDBOX_ID in caplog.text
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_unexpected_exceptions_are_500_internal(fake_modal):
    class Broken:
        def create_sandbox(self, plan):
            raise KeyError(plan.env["SANDBOX_TOKEN"])

    api = make_api(fake_modal)
    api.backend = Broken()
    status, code, message = error_of(call(api, "POST", "/sandboxes", BODY))
    assert (status, code, message) == (500, "internal", "internal error")


def test_volume_names_are_valid_modal_names():
    assert volume_name("Acme", "Web.App") == "agent-memory-acme--web.app"
    long = volume_name("o" * 39, "r" * 100)
    assert len(long) <= 64 and long.startswith("agent-memory-ooo")
    assert long != volume_name("o" * 39, "r" * 99)


# -- snapshot and delete -----------------------------------------------------------------------------


def test_snapshot_returns_the_image_id(fake_modal):
    api = make_api(fake_modal)
    provider_id = call(api, "POST", "/sandboxes", BODY)[1]["provider_id"]
    status, payload = call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {})
    assert status == 200 and payload["snapshot_id"].startswith("im-snap")
    assert ("Sandbox.from_id", provider_id) in fake_modal.calls
    assert any(c[0] == "Sandbox.snapshot_filesystem" and c[1] == provider_id for c in fake_modal.calls)
    # A later create with that snapshot restores it.
    call(api, "POST", "/sandboxes", body(sandbox_id="sbx_next", snapshot_id=payload["snapshot_id"]))
    assert fake_modal.created()[-1][1]["image"].object_id == payload["snapshot_id"]


def test_a_snapshot_is_restored_only_into_its_own_session(fake_modal):
    api = make_api(fake_modal)
    call(api, "POST", "/sandboxes", BODY)
    snapshot_id = call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {})[1]["snapshot_id"]
    assert api.store.get(f"snapshot:{snapshot_id}") == {"session_id": BODY["session_id"], "sandbox_id": SANDBOX_ID}
    n_created = len(fake_modal.created())
    other = body(sandbox_id="sbx_other", session_id="ses_someone_else", snapshot_id=snapshot_id)
    status, code, message = error_of(call(api, "POST", "/sandboxes", other))
    assert (status, code) == (422, "invalid_field") and "belongs to another session" in message
    # A snapshot this app never recorded belongs to no session.
    unknown = body(sandbox_id="sbx_other", snapshot_id="im-never-taken")
    assert error_of(call(api, "POST", "/sandboxes", unknown))[:2] == (422, "invalid_field")
    assert len(fake_modal.created()) == n_created


def test_snapshot_errors(fake_modal):
    api = make_api(fake_modal)
    assert error_of(call(api, "POST", "/sandboxes/sbx_unknown/snapshot", {}))[:2] == (404, "not_found")
    provider_id = call(api, "POST", "/sandboxes", BODY)[1]["provider_id"]

    fake_modal.fail_next["snapshot_filesystem"] = RuntimeError("snapshot service unavailable")
    status, code, message = error_of(call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {}))
    assert (status, code) == (502, "provider_error") and "snapshot_filesystem" in message

    fake_modal.sandboxes[provider_id].returncode = 0  # the sandbox exited on its own
    assert error_of(call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {}))[:2] == (409, "conflict")

    del fake_modal.sandboxes[provider_id]  # Modal no longer knows it
    assert error_of(call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {}))[:2] == (404, "not_found")


def test_delete_terminates_once_and_unknown_is_404(fake_modal):
    api = make_api(fake_modal)
    provider_id = call(api, "POST", "/sandboxes", BODY)[1]["provider_id"]
    assert call(api, "DELETE", f"/sandboxes/{SANDBOX_ID}") == (200, {})
    assert fake_modal.sandboxes[provider_id].terminated
    assert call(api, "DELETE", f"/sandboxes/{SANDBOX_ID}") == (200, {})
    assert [c for c in fake_modal.calls if c[0] == "Sandbox.terminate"] == [("Sandbox.terminate", provider_id)]
    assert error_of(call(api, "POST", f"/sandboxes/{SANDBOX_ID}/snapshot", {}))[:2] == (409, "conflict")
    assert error_of(call(api, "DELETE", "/sandboxes/sbx_unknown"))[:2] == (404, "not_found")


def test_delete_of_a_sandbox_modal_already_forgot_is_200(fake_modal):
    api = make_api(fake_modal)
    provider_id = call(api, "POST", "/sandboxes", BODY)[1]["provider_id"]
    del fake_modal.sandboxes[provider_id]
    assert call(api, "DELETE", f"/sandboxes/{SANDBOX_ID}") == (200, {})


def test_sandboxes_missing_from_the_state_are_found_by_tag(fake_modal):
    state = {}
    api = make_api(fake_modal, state=state)
    provider_id = call(api, "POST", "/sandboxes", BODY)[1]["provider_id"]
    state.clear()
    assert call(api, "DELETE", f"/sandboxes/{SANDBOX_ID}") == (200, {})
    assert ("Sandbox.list", {"sandbox_id": SANDBOX_ID}) in fake_modal.calls
    assert fake_modal.sandboxes[provider_id].terminated


def test_state_store_failures_are_provider_errors(fake_modal):
    class FlakyDict(dict):
        def get(self, key, default=None):
            raise ConnectionError(f"dict unavailable while reading {key} with {TOKEN}")

    api = make_api(fake_modal, state=FlakyDict())
    status, code, message = error_of(call(api, "POST", "/sandboxes", BODY))
    assert (status, code) == (502, "provider_error") and TOKEN not in message


def test_clock_is_used_for_records(fake_modal):
    api = make_api(fake_modal, clock=Clock(0))
    call(api, "POST", "/sandboxes", BODY, t=0)
    assert api.store.get(f"sandbox:{SANDBOX_ID}")["created_at"] == "1970-01-01T00:00:00Z"


def test_a_request_cannot_choose_whom_the_agent_runs_as_or_where_the_bridge_keeps_its_state(fake_modal):
    names = frozenset({"AGENT_USER", "BRIDGE_STATE_DIR", "HOME"})
    api = make_api(fake_modal, env_allowlist=names)
    request = body(env={"AGENT_USER": "root", "BRIDGE_STATE_DIR": "/workspace", "HOME": "/root"})
    status, payload = call(api, "POST", "/sandboxes", request)
    assert status == 201 and payload["dropped_env"] == ["AGENT_USER", "BRIDGE_STATE_DIR", "HOME"]
    env = only_create(fake_modal)[1]["env"]
    assert not names & set(env)
