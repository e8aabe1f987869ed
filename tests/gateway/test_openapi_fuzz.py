"""A property-based fuzz of the real gateway against its own OpenAPI document (schemathesis).

The app comes from ``create_app`` with quotas, the admin API and the Batch API on the shared
Redis (under a prefix of this test's own), in front of the stub upstream, served over real
HTTP. Schemathesis reads ``/openapi.json`` and runs its phases (examples, coverage, fuzzing,
stateful) with every check: no 5xx, every status and content type documented, every body
and header as documented, 405 with a true ``Allow``, data the document calls valid accepted
(or refused for a reason it cannot state: an unknown model, a bad image) and invalid data
refused. Requests name a real model, file, batch or key more often than not, so they get
past the first 404. The run is seeded and bounded: ``MAX_SECONDS`` (the fuzzing and
stateful phases go on until then) and examples per operation; ``GATEWAY_FUZZ_SEED``,
``GATEWAY_FUZZ_SECONDS`` and ``GATEWAY_FUZZ_EXAMPLES`` change them for a longer hunt.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.engine import events

from gateway.app import create_app
from tests.gateway.batches_support import (
    ADMIN,
    ScriptedEngine,
    batch_file,
    create_batch,
    create_key,
    upload,
)
from tests.gateway.conftest import gateway_settings
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import AUDIO_MODEL, TEXT_MODEL, VISION_MODEL, StubUpstream

SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "20261202"))
EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "25"))
MAX_SECONDS = int(os.environ.get("GATEWAY_FUZZ_SECONDS", "90"))
#: Operations whose valid requests must get through (the fuzz reaches the handlers).
SUCCEEDING = ("POST /v1/chat/completions", "POST /v1/completions", "POST /v1/files")

#: Codes of refusals the document states itself (types, bounds, fields, the request limits):
#: data it calls valid must never get one of them.
SCHEMA_CODES = frozenset(
    {
        "invalid_json",
        "invalid_type",
        "invalid_value",
        "missing_required_parameter",
        "unknown_parameter",
        "max_tokens_too_large",
        "n_too_large",
        "too_many_messages",
    }
)


def _error_code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@schemathesis.check
def valid_data_not_refused_by_the_schema_rules(ctx: Any, response: Any, case: Any) -> None:
    """A request the document calls valid is not refused for a rule the document states."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return
    code = _error_code(response)
    if code in SCHEMA_CODES:
        raise AssertionError(f"valid data refused with {code}: {response.text[:300]}")


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis keeps its caches under the test's own folder, not the work tree."""
    set_hypothesis_home_dir(str(tmp_path / "hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture
def gateway(stub: StubUpstream, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The gateway's URL, and the ids that exist in it (with the key's secret)."""
    quota = {"redis_url": SHARED_REDIS_URL, "timeout": 2.0}
    batches = {"files_dir": str(tmp_path), "max_file_bytes": 64 * 1024, "max_lines": 50}
    with unique_prefix("openapi-fuzz") as prefix:
        settings = gateway_settings(
            stub.base_url,
            quota={**quota, "key_prefix": prefix},
            admin_key=ADMIN,
            batches=batches,
        )
        app = create_app(settings, batch_engines=ScriptedEngine)
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            key = create_key(client)
            file_id = upload(client, key, batch_file(2))["id"]
            batch_id = create_batch(client, key, file_id)["id"]
            secret = key["authorization"].removeprefix("Bearer ")
            spare = create_key(client)["id"]  # the admin API's to change and revoke
            yield url, {"secret": secret, "key": spare, "file": file_id, "batch": batch_id}


def _config(known: dict[str, Any]) -> schemathesis.Config:
    """Seeded and bounded; requests name a real model or resource more often than not."""
    models = ["auto", TEXT_MODEL, VISION_MODEL, AUDIO_MODEL]
    bindings = {
        "body.model": "models",
        "body.input_file_id": "files",
        "path.model_id": "models",
        "path.file_id": "files",
        "path.batch_id": "batches",
        "path.key_id": "keys",
    }
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "max-time": MAX_SECONDS,
            "workers": 1,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "auth": {
                "openapi": {"ApiKey": {"bearer": known["secret"]}, "AdminKey": {"bearer": ADMIN}}
            },
            "dictionaries": {
                "models": {"values": models},
                "files": {"values": [known["file"]]},
                "batches": {"values": [known["batch"]]},
                "keys": {"values": [known["key"]]},
            },
            "parameters": {
                name: {"dictionary": dictionary, "probability": 0.7}
                for name, dictionary in bindings.items()
            },
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "429"]
                },
            },
        }
    )


def _failures(finished: events.ScenarioFinished) -> Iterator[str]:
    for nodes in finished.recorder.checks.values():
        for node in nodes:
            if node.failure_info is not None:
                failure = node.failure_info.failure
                yield (
                    f"{finished.recorder.label} [{node.name}] {failure.title}\n"
                    f"    {failure.message.strip()[:400]}\n"
                    f"    {node.failure_info.code_sample[:600]}"
                )


def _statuses(finished: events.ScenarioFinished) -> Iterator[tuple[str, int]]:
    for interaction in finished.recorder.interactions.values():
        if interaction.response is not None:
            yield finished.recorder.label, interaction.response.status_code


@pytest.mark.timeout(MAX_SECONDS + 120)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_the_gateway_behaves_as_its_openapi_document_says(
    gateway: tuple[str, dict[str, Any]],
) -> None:
    url, known = gateway
    schema = schemathesis.openapi.from_url(url + "/openapi.json", config=_config(known))
    found: dict[str, None] = {}
    operations: set[str] = set()
    statuses: Counter[tuple[str, int]] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            statuses.update(_statuses(event))
            found.update(dict.fromkeys(_failures(event)))
        elif isinstance(event, events.NonFatalError):
            found[f"{event.label}: {event.info.title}: {event.info.message[:800]}"] = None
        elif isinstance(event, events.FatalError):
            found[f"fatal: {event.exception!r}"] = None
    print("\n".join(f"{n:5} {status} {label}" for (label, status), n in sorted(statuses.items())))
    if found:
        pytest.fail(f"{len(found)} findings:\n" + "\n".join(found), pytrace=False)
    assert not [key for key in statuses if key[1] >= 500]
    assert len(operations) >= 20, sorted(operations)
    succeeded = {label for label, status in statuses if status < 300}
    assert succeeded.issuperset(SUCCEEDING), sorted(succeeded)
