"""The Batch API through the gateway: files, batches, ownership and bad input.

Real Redis (the shared one, under a prefix of this test's own), real HTTP, the stub
upstream's model list for routing, and an in-process engine double for the job.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from openai import NotFoundError, OpenAI

from tests.gateway.batches_support import (
    TEXT_MODEL,
    ScriptedEngine,
    auth,
    batch_file,
    chat_line,
    create_batch,
    create_key,
    finished,
    lines_of,
    running_gateway,
    settings,
    upload,
    wait_for,
)
from tests.support.shared_redis import unique_prefix
from tests.support.stub_upstream import StubUpstream

MAX_FILE = 64 * 1024


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(block=2)


@pytest.fixture
def gateway(
    stub: StubUpstream, tmp_path: Path, engine: ScriptedEngine
) -> Iterator[tuple[FastAPI, httpx.Client]]:
    with (
        unique_prefix("batches-api") as prefix,
        running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as running,
    ):
        yield running


@pytest.fixture
def http(gateway: tuple[FastAPI, httpx.Client]) -> httpx.Client:
    return gateway[1]


@pytest.fixture
def key(http: httpx.Client) -> dict[str, str]:
    return create_key(http)


def _client(http: httpx.Client, key: dict[str, str]) -> OpenAI:
    secret = key["authorization"].removeprefix("Bearer ")
    return OpenAI(
        base_url=str(http.base_url.join("/v1")), api_key=secret, max_retries=0, timeout=30
    )


def test_openai_client_uploads_runs_and_downloads(
    http: httpx.Client, key: dict[str, str], engine: ScriptedEngine
) -> None:
    lines = [chat_line(f"c-{i}", max_tokens=4) for i in range(5)]
    lines.append(chat_line("bad-model", model="no-such-model"))
    lines.append("{torn")
    client = _client(http, key)
    uploaded = client.files.create(
        file=("input.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
    )
    assert (uploaded.purpose, uploaded.filename, uploaded.status) == (
        "batch",
        "input.jsonl",
        "processed",
    )
    created = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert created.status == "validating"
    assert created.metadata == {"run": "nightly"}
    batch = wait_for(http, key, created.id, finished)
    done = client.batches.retrieve(created.id)
    assert done.status == batch["status"] == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (7, 5)
    assert done.request_counts.failed == 2
    assert done.usage is not None
    assert done.usage.total_tokens == 5 * 7
    assert done.in_progress_at
    assert done.finalizing_at
    assert done.completed_at
    assert done.output_file_id
    assert done.error_file_id

    output = client.files.content(done.output_file_id).text.splitlines()
    answered = [httpx.Response(200, content=line).json() for line in output]
    assert sorted(r["custom_id"] for r in answered) == [f"c-{i}" for i in range(5)]
    body = answered[0]["response"]["body"]
    assert body["choices"][0]["message"]["content"] == f"echo {answered[0]['custom_id']}"
    assert body["model"] == TEXT_MODEL
    errors = lines_of(http, key, done.error_file_id)
    assert {r["custom_id"]: r["response"]["status_code"] for r in errors} == {
        "bad-model": 404,
        "line-7": 400,
    }
    assert engine.calls == [(TEXT_MODEL, [f"c-{i}" for i in range(5)])]
    output_file = client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.bytes == len(client.files.content(done.output_file_id).content)


def test_lists_page_newest_first(http: httpx.Client, key: dict[str, str]) -> None:
    client = _client(http, key)
    file_id = upload(http, key, batch_file(1))["id"]
    ids = [create_batch(http, key, file_id)["id"] for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more
    assert [b.id for b in client.batches.list(limit=2, after=first.data[-1].id).data] == [ids[0]]
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]
    for batch_id in ids:
        wait_for(http, key, batch_id, finished)
    inputs = client.files.list(purpose="batch")
    assert [f.id for f in inputs.data] == [file_id]
    assert {f.purpose for f in client.files.list().data} == {"batch", "batch_output"}


def test_another_key_gets_404_for_everything(http: httpx.Client, key: dict[str, str]) -> None:
    file_id = upload(http, key, batch_file(2))["id"]
    batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
    other = create_key(http)
    for method, path in [
        ("GET", f"/v1/batches/{batch['id']}"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("GET", f"/v1/files/{batch['output_file_id']}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        answer = http.request(method, path, headers=auth(other))
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert http.get("/v1/batches", headers=auth(other)).json()["data"] == []
    assert http.get("/v1/files", headers=auth(other)).json()["data"] == []
    refused = http.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=auth(other),
    )
    assert refused.status_code == 404
    assert refused.json()["error"]["param"] == "input_file_id"
    with pytest.raises(NotFoundError):
        _client(http, other).batches.retrieve(batch["id"])
    assert http.get(f"/v1/batches/{batch['id']}", headers=auth(key)).status_code == 200


def test_requests_without_a_valid_key_are_refused(http: httpx.Client) -> None:
    assert http.get("/v1/batches").status_code == 401
    assert (
        http.post("/v1/files", files={"file": ("a", b"x")}, data={"purpose": "batch"}).status_code
        == 401
    )
    bad = http.get("/v1/files", headers={"authorization": "Bearer gsk-" + "x" * 40})
    assert bad.status_code == 401


def _upload(http: httpx.Client, key: dict[str, str], **kwargs: object) -> httpx.Response:
    return http.post("/v1/files", headers=auth(key), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("files", "data", "param", "code"),
    [
        ({"file": ("in.jsonl", b'{"a": 1}\n')}, {"purpose": "fine-tune"}, "purpose", None),
        ({"file": ("in.jsonl", b'{"a": 1}\n')}, {}, "purpose", None),
        ({"document": ("in.jsonl", b'{"a": 1}\n')}, {"purpose": "batch"}, "file", None),
        ({"file": ("in.jsonl", b"\n  \n")}, {"purpose": "batch"}, "file", "empty_file"),
        ({"file": ("in.jsonl", b"\xff\xfe{}\n")}, {"purpose": "batch"}, "file", "invalid_file"),
        (
            {"file": ("in.jsonl", b"{}\n" * 51)},
            {"purpose": "batch"},
            "file",
            "too_many_requests",
        ),
    ],
)
def test_bad_uploads_are_400(
    http: httpx.Client,
    key: dict[str, str],
    files: dict[str, tuple[str, bytes]],
    data: dict[str, str],
    param: str,
    code: str | None,
) -> None:
    answer = _upload(http, key, files=files, data=data)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert http.get("/v1/files", headers=auth(key)).json()["data"] == []


def test_a_json_body_is_not_an_upload(http: httpx.Client, key: dict[str, str]) -> None:
    answer = _upload(http, key, json={"purpose": "batch"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_form"


def test_oversized_uploads_are_413_declared_or_streamed(
    http: httpx.Client, key: dict[str, str], tmp_path: Path
) -> None:
    big = b'{"x": "' + b"y" * (MAX_FILE * 3) + b'"}\n'
    declared = _upload(http, key, files={"file": ("in.jsonl", big)}, data={"purpose": "batch"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once the bytes pass the limit
        boundary = b"--b0und4ry\r\n"
        yield boundary + b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(MAX_FILE * 3 // 1024):
            yield b"z" * 1024

    streamed = http.post(
        "/v1/files",
        content=chunks(),
        headers={**auth(key), "content-type": "multipart/form-data; boundary=b0und4ry"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["type"] == "invalid_request_error"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_largest_allowed_file_is_accepted(http: httpx.Client, key: dict[str, str]) -> None:
    line = chat_line("c", max_tokens=4).encode() + b"\n"
    content = line + b" " * (MAX_FILE - len(line) - 1) + b"\n"
    assert len(content) == MAX_FILE
    assert upload(http, key, content)["bytes"] == MAX_FILE


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input_file_id": "file-nope"}, "input_file_id"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_batch_requests_are_refused(
    http: httpx.Client, key: dict[str, str], change: dict[str, object], param: str
) -> None:
    file_id = upload(http, key, batch_file(1))["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    answer = http.post("/v1/batches", json={**body, **change}, headers=auth(key))
    assert answer.status_code == (404 if param == "input_file_id" else 400), answer.text
    assert answer.json()["error"]["param"] == param


def test_an_output_file_cannot_be_a_batch_input(http: httpx.Client, key: dict[str, str]) -> None:
    file_id = upload(http, key, batch_file(1))["id"]
    batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
    answer = http.post(
        "/v1/batches",
        json={
            "input_file_id": batch["output_file_id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=auth(key),
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input_file_id"


def test_lines_for_another_endpoint_or_over_the_limits_become_error_lines(
    http: httpx.Client, key: dict[str, str]
) -> None:
    completion = (
        '{"custom_id": "p", "url": "/v1/completions", '
        '"body": {"model": "gemma-3-270m", "prompt": "x"}}'
    )
    lines = [
        chat_line("ok"),
        completion,
        chat_line("big", max_tokens=10**6),
        chat_line("odd", foo=1),
    ]
    file_id = upload(http, key, ("\n".join(lines) + "\n").encode())["id"]
    batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
    assert batch["request_counts"] == {"total": 4, "completed": 1, "failed": 3}
    codes = {
        r["custom_id"]: r["error"]["code"] for r in lines_of(http, key, batch["error_file_id"])
    }
    assert codes == {
        "p": "mismatched_endpoint",
        "big": "max_tokens_too_large",
        "odd": "unknown_parameter",
    }


def test_a_key_limited_to_other_models_gets_403_lines(http: httpx.Client) -> None:
    created = http.post(
        "/admin/keys",
        json={"tenant": "t", "allowed_models": ["tiny-random-gemma-3-vision"]},
        headers={"authorization": "Bearer admin-key-for-batch-tests"},
    ).json()
    key = {"id": created["id"], "authorization": f"Bearer {created['key']}"}
    file_id = upload(http, key, batch_file(1))["id"]
    batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
    (line,) = lines_of(http, key, batch["error_file_id"])
    assert line["response"]["status_code"] == 403


def test_delete_file(http: httpx.Client, key: dict[str, str], tmp_path: Path) -> None:
    client = _client(http, key)
    file_id = upload(http, key, batch_file(1))["id"]
    assert (tmp_path / "files" / file_id).exists()
    deleted = client.files.delete(file_id)
    assert (deleted.id, deleted.deleted) == (file_id, True)
    assert not (tmp_path / "files" / file_id).exists()
    assert http.get(f"/v1/files/{file_id}", headers=auth(key)).status_code == 404
    assert client.files.list().data == []


def test_the_batch_api_is_off_without_the_key_store(http_without_keys: httpx.Client) -> None:
    answer = http_without_keys.get("/v1/batches")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "batch_api_disabled"


@pytest.fixture
def http_without_keys(stub: StubUpstream) -> Iterator[httpx.Client]:
    from gateway.app import create_app
    from tests.gateway.conftest import gateway_settings
    from tests.support.servers import serve_in_thread

    with (
        serve_in_thread(create_app(gateway_settings(stub.base_url))) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client
