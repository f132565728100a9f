"""Bodies against the contract's schema (provider.schema.json, generated from crates/protocol/src/provider.rs).

The refusals follow the Rust types: what serde refuses for them is refused here too (a missing
``disk_mb``, ``4096.0`` for a ``u32``, ``null`` for a map or a list, NaN), and what serde accepts that
the schema allows is accepted (unknown fields, ``null`` for an optional field).
"""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import validation
from provider_helpers import BODY, DELETE, TOKEN, body, call, make_api, only_create


def refusal(response):
    status, payload = response
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    return status, payload["error"]["code"], payload["error"]["message"]


def test_the_schema_is_a_valid_2020_12_schema_and_the_test_body_matches_it():
    Draft202012Validator.check_schema(validation.SCHEMA)
    validation.check("CreateSandbox", BODY)
    assert set(validation.SCHEMA["$defs"]) >= {"CreateSandbox", "BuildImage", "RepoRef", "Resources", "Network"}


@pytest.mark.parametrize(
    "changes,expected",
    [
        # Missing fields (serde: "missing field").
        ({"sandbox_token": DELETE}, "sandbox_token is required"),
        ({"resources__disk_mb": DELETE}, "resources.disk_mb is required"),
        ({"network__block_network": DELETE}, "network.block_network is required"),
        ({"repo": {"name": "web", "branch": "main"}}, "repo.owner is required"),
        # Wrong types (serde: "invalid type").
        ({"resources__memory_mb": 4096.0}, "resources.memory_mb must be a whole number"),
        ({"resources__timeout_s": "3600"}, "resources.timeout_s must be a whole number"),
        ({"env": None}, "env must be an object"),
        ({"network__allowed_hosts": None}, "network.allowed_hosts must be a list"),
        ({"network": []}, "network must be an object"),
        ({"repo": {"owner": 1, "name": "web", "branch": "main"}}, "repo.owner must be a string"),
        ({"image_id": 5}, "image_id must be a string"),
        # Out of range.
        ({"resources__cpu": -1}, "resources.cpu must be at least 0.125"),
        ({"resources__timeout_s": 86_401}, "resources.timeout_s must be between 60 and 86400"),
        ({"resources__memory_mb": 2**32}, "resources.memory_mb must be between 128 and 4294967295"),
        ({"resources__memory_mb": 65_537}, "resources.memory_mb must be between 128 and 65536"),  # the provider's MAX_MEMORY_MB
        ({"resources__disk_mb": -1}, "resources.disk_mb must be between 0 and 10485760"),
        ({"resources__disk_mb": 10 * 1024 * 1024 + 1}, "resources.disk_mb must be between 0 and 10485760"),
        # Lengths and counts.
        ({"env": {f"V{i}": "x" for i in range(101)}}, "env must have at most 100 entries"),
        ({"env": {"X": "y" * (32 * 1024 + 1)}}, "env.X must be at most 32768 characters"),
        ({"env": {"X": "a\x00b"}}, "env.X must be a string without NUL"),
        ({"network__allowed_hosts": ["h.example"] * 101}, "network.allowed_hosts must have at most 100 entries"),
        ({"network__allowed_hosts": [""]}, "network.allowed_hosts[0] must not be empty"),
        ({"coordinator_url": "https://coord.example.com/" + "p" * 2048}, "coordinator_url must be at most 2048 characters"),
        # Patterns are ECMA-262: `$` does not match before a final newline.
        ({"sandbox_id": "sbx_1\n"}, "sandbox_id must be 1-128 letters"),
        ({"repo": {"owner": "acme", "name": "web\n", "branch": "main"}}, "repo.name must be 1-100 letters"),
        ({"repo": {"owner": "acme", "name": "web", "branch": "main.lock"}}, "repo.branch must be a git branch name"),
        ({"sandbox_token": TOKEN + "\n"}, "sandbox_token must be 1-4096 printable ASCII characters"),
        # What the schema cannot say, checked after it.
        ({"coordinator_url": "https://coord.example.com:99999"}, "coordinator_url is not a valid URL"),
        ({"repo": {"owner": "a", "name": "b", "branch": "main", "clone_url": "https://git.example:x/a.git"}}, "repo.clone_url is not a valid URL"),
        ({"network__allowed_hosts": ["10.0.0.0/33"]}, "network.allowed_hosts[0] must be a host name"),
    ],
)
def test_schema_refusals_are_422_naming_the_field(fake_modal, changes, expected):
    api = make_api(fake_modal)
    status, code, message = refusal(call(api, "POST", "/sandboxes", body(**changes)))
    assert (status, code) == (422, "invalid_field")
    assert message.startswith(expected), message
    assert TOKEN not in message and "yyyy" not in message
    assert fake_modal.created() == []


def test_unknown_fields_are_ignored_as_serde_ignores_them(fake_modal):
    api = make_api(fake_modal)
    request = body(future_field={"x": 1}, resources__gpu="none", network__mode="open")
    request["repo"]["default_branch"] = "main"
    status, payload = call(api, "POST", "/sandboxes", request)
    assert status == 201, payload
    assert "future_field" not in only_create(fake_modal)[1]["env"]


def test_null_optional_fields_count_as_absent_and_defaults_apply(fake_modal):
    api = make_api(fake_modal)
    request = body(image_id=None, snapshot_id=None, env=DELETE, network={"block_network": False})
    request["repo"]["clone_url"] = None
    status, payload = call(api, "POST", "/sandboxes", request)
    assert status == 201 and payload["workspace"] == "clone"
    _, kwargs = only_create(fake_modal)
    assert kwargs["env"]["REPO_CLONE_URL"] == "https://github.com/acme/web.git"
    assert kwargs["outbound_domain_allowlist"] == ["coord.example.com", "github.com"]


@pytest.mark.parametrize(
    "raw,status,code",
    [
        (json.dumps(BODY).replace('"cpu": 2', '"cpu": NaN').encode(), 400, "invalid_json"),
        (json.dumps(BODY).replace('"cpu": 2', '"cpu": Infinity').encode(), 400, "invalid_json"),
        (json.dumps(body(env={"X": "\ud800"})).encode(), 400, "invalid_json"),  # a lone surrogate
        (b"[" * 5000 + b"]" * 5000, 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (json.dumps(BODY)[:-1].encode() + b', "sandbox_id": "sbx_other"}', 422, "invalid_field"),  # twice
    ],
)
def test_json_is_read_as_strictly_as_serde_reads_it(fake_modal, raw, status, code):
    api = make_api(fake_modal)
    assert refusal(call(api, "POST", "/sandboxes", raw))[:2] == (status, code)
    assert fake_modal.created() == []


def test_image_build_bodies_follow_the_same_schema(fake_modal):
    api = make_api(fake_modal)
    repo = {"owner": "acme", "name": "web", "branch": "main"}
    assert call(api, "POST", "/images", {"repo": dict(repo, extra=True)})[0] == 202
    status, code, message = refusal(call(api, "POST", "/images", {"repo": dict(repo, branch="a..b")}))
    assert (status, code) == (422, "invalid_field") and message.startswith("repo.branch must be a git branch name")
    assert refusal(call(api, "POST", "/images", {}))[2] == "repo is required"
    assert refusal(call(api, "POST", "/images", {"repo": dict(repo, clone_url="http://git.example/a.git")}))[2].startswith(
        "repo.clone_url must be an https URL"
    )
    assert api.spawned and len(api.spawned) == 1


def test_answers_outside_the_schema_are_caught_by_the_helper():
    with pytest.raises(Exception):
        validation.validator_for("ImageBuild").validate({"status": "done"})
    with pytest.raises(Exception):
        validation.validator_for("CreatedSandbox").validate({"sandbox_id": "sbx_1"})


BRANCH_VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "crates" / "protocol" / "testdata" / "branch_names.json").read_text()
)


@pytest.mark.parametrize("name", BRANCH_VECTORS["valid"])
def test_branch_names_git_accepts_are_accepted_as_the_rust_rule_accepts_them(name):
    # The same file is read by `branch_names_of_the_shared_vectors` in crates/protocol/src/git.rs.
    validation.validator_for("RepoRef").validate({"owner": "acme", "name": "web", "branch": name})


@pytest.mark.parametrize("name", BRANCH_VECTORS["invalid"])
def test_branch_names_the_rust_rule_refuses_are_refused(name):
    errors = list(validation.validator_for("RepoRef").iter_errors({"owner": "acme", "name": "web", "branch": name}))
    assert errors, repr(name)
