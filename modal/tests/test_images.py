import builds
from conftest import FakeProcess
from provider_helpers import BODY, Clock, call, make_api


def error_of(response):
    status, payload = response
    return status, payload["error"]["code"], payload["error"]["message"]


def run_spawned(api, fake_modal, **kw):
    """Run the builds the API spawned, as the `build_repo_image` function would."""
    for build_id, repo, set_default in api.spawned:
        builds.run_build(
            api.store, api.backend, build_id, repo, api.clock,
            base_image_name="session-coordinator-sandbox", build_secret=kw.get("build_secret"),
            timeout_s=1800, set_default=set_default,
        )
    api.spawned.clear()


def test_post_images_spawns_a_build_and_get_reports_it(fake_modal):
    api = make_api(fake_modal)
    status, payload = call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "main"}})
    assert status == 202 and builds.BUILD_ID_RE.match(payload["build_id"])
    build_id = payload["build_id"]
    assert api.spawned == [(build_id, {"owner": "acme", "name": "web", "branch": "main"}, False)]
    assert call(api, "GET", f"/images/{build_id}") == (200, {"status": "building"})

    fake_modal.exec_results = [(("git",), FakeProcess(0, stdout="0123abcd\n"))]
    run_spawned(api, fake_modal, build_secret="gh-build-token")

    status, payload = call(api, "GET", f"/images/{build_id}")
    assert status == 200 and payload["status"] == "ready"
    assert payload["image_id"].startswith("im-snap") and payload["commit"] == "0123abcd"
    assert payload["built_at"].endswith("Z")

    # The build sandbox: base image, `sleep infinity`, prepare, commit, snapshot, terminated.
    (args, kwargs), = fake_modal.created()
    assert args == ("sleep", "infinity")
    assert kwargs["image"].source == "from_name" and kwargs["env"]["WORKSPACE_MODE"] == "prepare"
    assert kwargs["env"]["REPO_CLONE_URL"] == "https://github.com/acme/web.git"
    assert kwargs["secrets"] == [("secret", "gh-build-token")]
    assert kwargs["tags"]["role"] == "image-build"
    execs = [c[2] for c in fake_modal.calls if c[0] == "Sandbox.exec"]
    assert execs == [("sandbox-entry", "prepare"), ("git", "-C", "/workspace", "rev-parse", "HEAD")]
    assert next(iter(fake_modal.sandboxes.values())).terminated

    # New sandboxes for that branch start from the image.
    status, created = call(api, "POST", "/sandboxes", BODY)
    assert created["image_id"] == payload["image_id"] and created["workspace"] == "image"


def test_a_running_build_is_reused_and_unknown_builds_are_404(fake_modal):
    api = make_api(fake_modal)
    repo = {"repo": {"owner": "acme", "name": "web", "branch": "main"}}
    first = call(api, "POST", "/images", repo)[1]["build_id"]
    assert call(api, "POST", "/images", repo)[1]["build_id"] == first
    other = call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "dev"}})[1]["build_id"]
    assert other != first and len(api.spawned) == 2
    assert error_of(call(api, "GET", "/images/bld_0000000000000000"))[:2] == (404, "not_found")
    assert error_of(call(api, "GET", "/images/nope"))[:2] == (404, "not_found")
    assert error_of(call(api, "POST", "/images", {"repo": {"owner": "acme"}}))[:2] == (422, "invalid_field")
    assert error_of(call(api, "POST", "/images", {}))[:2] == (422, "invalid_field")


def test_a_failed_build_is_reported_without_secrets_and_keeps_the_previous_image(fake_modal):
    api = make_api(fake_modal)
    api.store.put("image:acme/web@main", {"image_id": "im-previous"})
    build_id = call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "main"}})[1]["build_id"]
    leaked = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    fake_modal.exec_results = [(("sandbox-entry",), FakeProcess(1, stderr=f"fatal: could not read from https://{leaked}@github.com"))]
    run_spawned(api, fake_modal)
    status, payload = call(api, "GET", f"/images/{build_id}")
    assert payload["status"] == "failed" and "exit 1" in payload["error"] and leaked not in payload["error"]
    assert api.store.get("image:acme/web@main") == {"image_id": "im-previous"}
    assert next(iter(fake_modal.sandboxes.values())).terminated
    # The branch can be built again right away.
    assert call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "main"}})[1]["build_id"] != build_id


def test_a_build_that_never_finished_turns_failed(fake_modal):
    clock = Clock()
    api = make_api(fake_modal, clock=clock, build_timeout_s=600)
    build_id = call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "main"}})[1]["build_id"]
    clock.now += (600 + builds.STALE_GRACE_S + 1) * 1000
    status, payload = call(api, "GET", f"/images/{build_id}")
    assert payload["status"] == "failed" and "did not finish" in payload["error"]


def test_a_spawn_failure_is_502(fake_modal):
    def broken_spawn(*args):
        raise RuntimeError("function not deployed")

    api = make_api(fake_modal, spawn=broken_spawn)
    status, code, _ = error_of(call(api, "POST", "/images", {"repo": {"owner": "acme", "name": "web", "branch": "main"}}))
    assert (status, code) == (502, "provider_error")


def test_the_asked_commit_is_built_and_a_running_build_of_another_commit_is_not_reused(fake_modal):
    api = make_api(fake_modal)
    head = "a" * 40
    body = {"repo": {"owner": "acme", "name": "web", "branch": "main"}, "commit": head}
    first = call(api, "POST", "/images", body)[1]["build_id"]
    assert call(api, "POST", "/images", body)[1]["build_id"] == first
    moved = call(api, "POST", "/images", dict(body, commit="b" * 40))[1]["build_id"]
    assert moved != first
    assert [repo.get("commit") for _, repo, _ in api.spawned] == [head, "b" * 40]
    assert call(api, "GET", f"/images/{first}")[1] == {"status": "building", "commit": head}

    # The build checks the commit out (REPO_COMMIT), and an image of another commit is a failure.
    api.spawned[:] = api.spawned[:1]
    fake_modal.exec_results = [(("git",), FakeProcess(0, stdout=head + "\n"))]
    run_spawned(api, fake_modal)
    (_, kwargs), = fake_modal.created()
    assert kwargs["env"]["REPO_COMMIT"] == head
    assert call(api, "GET", f"/images/{first}")[1]["status"] == "ready"

    other = call(api, "POST", "/images", dict(body, commit="c" * 40))[1]["build_id"]
    api.spawned[:] = [s for s in api.spawned if s[0] == other]
    fake_modal.exec_results = [(("git",), FakeProcess(0, stdout=head + "\n"))]
    run_spawned(api, fake_modal)
    status, payload = call(api, "GET", f"/images/{other}")
    assert payload["status"] == "failed" and "not the asked-for" in payload["error"]


def test_a_commit_that_is_not_a_full_id_is_refused(fake_modal):
    api = make_api(fake_modal)
    body = {"repo": {"owner": "acme", "name": "web", "branch": "main"}, "commit": "main"}
    assert error_of(call(api, "POST", "/images", body))[:2] == (422, "invalid_field")
    assert api.spawned == []
