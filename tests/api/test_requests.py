"""Bad requests get a 4xx with a clear message, never a 500: the API over real HTTP."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
import uvicorn

from api.app import create_app
from edgemaxx.settings import Settings
from tests.conftest import TEST_DATA
from tests.service import RedisServer, free_port

TOKEN = "request-test-token"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    redis_server.start()
    settings = Settings(redis_url=redis_server.url, admin_token=TOKEN, data_dir=TEST_DATA, checks_per_hour=3)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", redis_server.url
    server.should_exit = True
    thread.join(10)
    redis_server.kill()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"hotkey": "5F3sa2TJ", "repository": "https://github.com/owner/repo", "revision": "abcdef0",
        "contest": "flux-4090"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (GOOD, {}, 401, "bearer token"),
        (GOOD, {"Authorization": "Bearer wrong"}, 401, "bearer token"),
        (GOOD, {"Authorization": TOKEN}, 401, "bearer token"),
        ({**GOOD, "contest": "nope"}, AUTH, 404, "unknown contest 'nope'"),
        ({**GOOD, "repository": "file:///etc/passwd"}, AUTH, 422, "only https:// is allowed"),
        ({**GOOD, "repository": "http://127.0.0.1/x"}, AUTH, 422, "only https:// is allowed"),
        ({**GOOD, "repository": "https://169.254.169.254/latest"}, AUTH, 422, "private or local"),
        ({**GOOD, "repository": "https://user:pw@github.com/a/b"}, AUTH, 422, "credentials"),
        ({**GOOD, "repository": "/etc"}, AUTH, 422, "local paths are not accepted"),
        ({**GOOD, "revision": "main"}, AUTH, 422, "revision"),
        ({**GOOD, "hotkey": "a b/../c"}, AUTH, 422, "hotkey"),
        ({**GOOD, "uid": -1}, AUTH, 422, "uid"),
        ({"hotkey": "x"}, AUTH, 422, "repository"),
        ([1, 2, 3], AUTH, 422, "valid dictionary"),
    ],
)
def test_bad_submissions_are_4xx(api, body, headers, status, message):
    response = httpx.post(f"{api[0]}/v1/submissions", json=body, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    assert message in response.text


def test_malformed_json_and_wrong_content(api):
    api = api[0]
    for content, kind in ((b"{not json", "application/json"), (b"\xff\xfe", "application/json"),
                          (b"hotkey=x", "application/x-www-form-urlencoded")):
        response = httpx.post(f"{api}/v1/submissions", content=content, headers={**AUTH, "Content-Type": kind},
                              timeout=10)
        assert 400 <= response.status_code < 500, (content, response.status_code, response.text)


def test_unknown_things_are_404(api):
    api = api[0]
    assert httpx.get(f"{api}/v1/submissions/nobody", timeout=10).status_code == 404
    missing = httpx.get(f"{api}/v1/contests/nope", timeout=10)
    assert missing.status_code == 404 and "unknown contest" in missing.text
    assert httpx.get(f"{api}/v1/contests/flux-4090", timeout=10).status_code == 404  # no run yet
    assert httpx.get(f"{api}/v1/contests/..%2F..%2Fetc", timeout=10).status_code in (404, 422)
    assert httpx.get(f"{api}/v1/submissions/{'x' * 200}", timeout=10).status_code == 422


def test_admin_routes_disabled_without_a_token(tmp_path):
    from fastapi.testclient import TestClient

    settings = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=TEST_DATA)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/submissions", json=GOOD, headers=AUTH)
    assert response.status_code == 403 and "EDGEMAXX_ADMIN_TOKEN" in response.text


def test_status_and_openapi(api):
    api = api[0]
    status = httpx.get(f"{api}/v1/status", timeout=10).json()
    assert status["redis"] is True and status["workers"] == [] and status["healthy"] is False
    schema = httpx.get(f"{api}/openapi.json", timeout=10).json()
    assert {"/v1/status", "/v1/contests/{contest_id}", "/v1/submissions/{hotkey}",
            "/v1/submissions"} <= set(schema["paths"])
    assert os.environ.get("EDGEMAXX_ADMIN_TOKEN") is None, "tests must not leak the token"


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ("file:///etc/passwd", "only https:// is allowed"),
        ("http://127.0.0.1/x", "only https:// is allowed"),
        ("https://127.0.0.1/x", "private or local address"),
        ("https://169.254.169.254/latest/meta-data", "private or local address"),
        ("https://[fe80::1]/a/b", "private or local address"),
        ("https://user:pw@host.example/a/b", "credentials"),
        ("ext::sh -c id", "transport helper"),
    ],
)
def test_checks_refuse_bad_urls_before_any_fetch(api, repository, message):
    from redis import Redis
    from rq import Queue

    from state import keys

    base, redis_url = api
    response = httpx.post(f"{base}/v1/checks", json={"repository": repository, "revision": "abcdef0",
                                                     "contest": "flux-4090"}, timeout=10)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert Queue(keys.QUEUE_CHECKS, connection=Redis.from_url(redis_url)).count == 0, "nothing enqueued"


def test_checks_are_queued_then_rate_limited(api):
    from redis import Redis
    from rq import Queue

    from state import keys

    base, redis_url = api
    body = {"repository": "https://github.com/owner/repo", "revision": "abcdef0", "contest": "flux-4090"}
    ids = []
    for _ in range(3):
        response = httpx.post(f"{base}/v1/checks", json=body, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    limited = httpx.post(f"{base}/v1/checks", json=body, timeout=10)
    assert limited.status_code == 429 and "3 checks an hour" in limited.text
    assert int(limited.headers["Retry-After"]) > 0
    record = httpx.get(f"{base}/v1/checks/{ids[0]}", timeout=10).json()
    assert record["state"] == "queued" and record["repository"] == "https://github.com/owner/repo"
    assert Queue(keys.QUEUE_CHECKS, connection=Redis.from_url(redis_url)).count == 3
    assert httpx.get(f"{base}/v1/checks/{'0' * 32}", timeout=10).status_code == 404
    assert httpx.get(f"{base}/v1/checks/not-an-id", timeout=10).status_code == 422


def test_signed_requests_from_the_validator_hotkey(tmp_path):
    """bittensor http_auth: the validator's own hotkey is accepted once; replays, other hotkeys
    and tampered bodies are not. The nonce store is Redis, so two API apps agree."""
    import json

    import bittensor as bt
    from fastapi.testclient import TestClient

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        validator = bt.Wallet("v", "h", path=str(tmp_path / "w"))
        validator.create_new_hotkey(suppress=True)
        stranger = bt.Wallet("s", "h", path=str(tmp_path / "w"))
        stranger.create_new_hotkey(suppress=True)
        settings = Settings(redis_url=server.url, data_dir=TEST_DATA,
                            validator_hotkey=validator.hotkey.ss58_address)
        body = json.dumps({**GOOD, "hotkey": "signed-miner"}).encode()

        def signed(wallet, payload=body):
            return {**bt.http_auth.sign(wallet, method="POST", path="/v1/submissions", body=payload,
                                        receiver_ss58=validator.hotkey.ss58_address),
                    "Content-Type": "application/json"}

        with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
            headers = signed(validator)
            accepted = first.post("/v1/submissions", content=body, headers=headers)
            assert accepted.status_code == 202, accepted.text
            replay = second.post("/v1/submissions", content=body, headers=headers)
            assert replay.status_code == 401 and "Replayed" in replay.text
            other = first.post("/v1/submissions", content=body, headers=signed(stranger))
            assert other.status_code in (401, 403), other.text
            tampered = first.post("/v1/submissions", content=body.replace(b"signed-miner", b"evil-miner"),
                                  headers=signed(validator))
            assert tampered.status_code == 401 and "BadSignature" in tampered.text
            # No token configured and no signature: refused.
            assert first.post("/v1/submissions", json=GOOD).status_code == 403
    finally:
        server.kill()
