"""``gemma-serving batch run`` end to end on lines that never reach an engine."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gemma_serving.cli import app
from tests.batch.support import chat_line, image_line

runner = CliRunner()


def test_refused_lines_are_answered_without_starting_an_engine(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        "{oops",
        chat_line("unknown", model="nope"),
        image_line("bad-image", url="data:image/png;base64,AAAA"),
        json.dumps({"custom_id": "no-body", "url": "/v1/completions"}),
    ]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", "run", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["total"], summary["failed"], summary["succeeded"]) == (4, 4, 0)
    records = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["response"]["status_code"] for k, r in records.items()} == {
        "line-1": 400,
        "unknown": 404,
        "bad-image": 400,
        "no-body": 400,
    }
    assert records["bad-image"]["error"]["code"] == "invalid_image"

    again = runner.invoke(app, ["batch", "run", str(source), "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert len(out.read_text().splitlines()) == 4
    assert json.loads(again.stdout.strip().splitlines()[-1])["skipped"] == 4


def test_unknown_profile_fails_cleanly(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(chat_line("a") + "\n")
    result = runner.invoke(
        app, ["batch", "run", str(source), "-o", str(tmp_path / "o"), "--profile", "nope"]
    )
    assert result.exit_code == 2
