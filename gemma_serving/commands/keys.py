"""``gemma-serving keys``: create, list, show, revoke and limit API keys in Redis.

A key's secret is printed once, by ``create`` (or ``dev``); Redis keeps only its
SHA-256. ``usage KEY_ID`` prints what a key used this minute and today, per model.
Limits: ``--rpm`` requests per minute, ``--tpm`` tokens per minute, ``--tpd`` tokens
per day, ``--concurrency`` requests in flight; a per-model override is
``--model-limit MODEL:rpm=10,tpm=5000,tpd=100000,concurrency=2``.
``--priority-class interactive|standard|batch`` orders the key's requests at the
engines (``gateway.priority``); ``--weight`` is the key's share of a saturated model
(``gateway.fair_share``). ``--guard prompts|prompts_and_answers`` screens the key's
prompts (and answers) with the content guard, ``--guard-threshold
[prompt:|answer:]CATEGORY=VALUE`` sets a category's bar (``gateway.moderation``);
``set-guard KEY_ID MODE`` changes both later.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gateway.errors import AuthenticationFailed, GatewayError
from gateway.moderation.key_policy import GuardMode, GuardPolicy, parse_thresholds
from gateway.moderation.policies import CATEGORIES
from gateway.priority import DEFAULT_CLASS, PriorityClass
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.records import key_to_dict
from gateway.quotas.settings import DEFAULT_REDIS_URL, QuotaSettings
from gateway.quotas.store import RedisKeyStore, new_secret

app = typer.Typer(no_args_is_help=True, help=__doc__)

T = TypeVar("T")
DEV_TENANT = "local-dev"
_SHORT = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "tpd": "tokens_per_day"}
_SHORT["concurrency"] = "max_concurrent"

RedisUrl = Annotated[
    str,
    typer.Option("--redis-url", envvar="GATEWAY_QUOTA__REDIS_URL", help="Redis holding the keys."),
]
KeyPrefix = Annotated[
    str,
    typer.Option("--key-prefix", envvar="GATEWAY_QUOTA__KEY_PREFIX", help="Redis key prefix."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute (-1: unlimited).")]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute (-1: unlimited).")]
Tpd = Annotated[int | None, typer.Option("--tpd", help="Tokens per day (-1: unlimited).")]
Conc = Annotated[
    int | None, typer.Option("--concurrency", help="Requests in flight (-1: unlimited).")
]
ModelLimit = Annotated[
    list[str] | None,
    typer.Option(
        "--model-limit", help="Per-model limits, MODEL:rpm=..,tpm=..,tpd=..,concurrency=.."
    ),
]
Weight = Annotated[
    float | None,
    typer.Option("--weight", min=0.001, max=1000, help="Share of a saturated model (default 1)."),
]
Priority = Annotated[
    PriorityClass | None,
    typer.Option("--priority-class", help="Engine priority of the key's requests."),
]
Guard = Annotated[
    GuardMode | None,
    typer.Option("--guard", help="Screen the key's prompts (and answers) with the content guard."),
]
GuardThreshold = Annotated[
    list[str] | None,
    typer.Option(
        "--guard-threshold",
        help="[prompt:|answer:]CATEGORY=VALUE, flagged above VALUE (0-1); categories: "
        + ", ".join(CATEGORIES),
    ),
]


def _guard(mode: GuardMode | None, thresholds: list[str] | None) -> GuardPolicy:
    try:
        prompt, answer = parse_thresholds(thresholds or [], CATEGORIES)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--guard-threshold") from exc
    return GuardPolicy(mode or GuardMode.OFF, prompt, answer)


def _run(url: str, prefix: str, work: Callable[[RedisKeyStore], Awaitable[T]]) -> T:
    return _run_backend(url, prefix, lambda backend: work(backend.keys))


def _run_backend(url: str, prefix: str, work: Callable[[RedisQuotaBackend], Awaitable[T]]) -> T:
    settings = QuotaSettings(redis_url=url, key_prefix=prefix, timeout=5.0, connect_timeout=5.0)

    async def main() -> T:
        backend = RedisQuotaBackend.from_settings(settings)
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def parse_model_limit(spec: str) -> tuple[str, Limits]:
    """``MODEL:rpm=10,tpm=5000`` -> (model, Limits); the model may itself contain ':'."""
    model, sep, body = spec.rpartition(":")
    if not sep or not model:
        raise typer.BadParameter(f"expected MODEL:rpm=..,tpm=.., got {spec!r}")
    values: dict[str, int | None] = {}
    for part in filter(None, body.split(",")):
        name, _, raw = part.partition("=")
        field = _SHORT.get(name.strip())
        if field is None or not raw.strip().lstrip("-").isdigit():
            raise typer.BadParameter(f"bad limit {part!r} in {spec!r}")
        number = int(raw)
        values[field] = None if number < 0 else number
    return model, Limits(**values)


def _limits(base: Limits, **given: int | None) -> Limits:
    """``base`` with the given options applied (-1 clears a limit)."""
    values = {field: getattr(base, field) for field in _SHORT.values()}
    for short, number in given.items():
        if number is not None:
            values[_SHORT[short]] = None if number < 0 else number
    return Limits(**values)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _fmt(limit: int | None) -> str:
    return "-" if limit is None else str(limit)


def _print_key(key: ApiKey, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(key_to_dict(key), indent=2))
        return
    lim = key.limits
    state = "revoked" if key.revoked else "active"
    typer.echo(
        f"{key.key_id}  tenant={key.tenant}  {state}  gsk-…{key.hint}  "
        f"class={key.priority_class} weight={key.weight:g} guard={key.guard.mode}  "
        f"rpm={_fmt(lim.requests_per_minute)} tpm={_fmt(lim.tokens_per_minute)} "
        f"tpd={_fmt(lim.tokens_per_day)} concurrency={_fmt(lim.max_concurrent)}"
    )
    for model, m in sorted(key.model_limits.items()):
        typer.echo(
            f"    {model}: rpm={_fmt(m.requests_per_minute)} tpm={_fmt(m.tokens_per_minute)} "
            f"tpd={_fmt(m.tokens_per_day)} concurrency={_fmt(m.max_concurrent)}"
        )


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Who the key belongs to.")],
    name: Annotated[str, typer.Option("--name", help="A label for people.")] = "",
    models: Annotated[
        str | None, typer.Option("--models", help="Allowed models, comma-separated (default all).")
    ] = None,
    capabilities: Annotated[
        str | None,
        typer.Option("--capabilities", help="Allowed capabilities: text,vision,audio,tools."),
    ] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    tpd: Tpd = None,
    concurrency: Conc = None,
    model_limit: ModelLimit = None,
    priority_class: Priority = None,
    weight: Weight = None,
    guard: Guard = None,
    guard_threshold: GuardThreshold = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Create a key and print its secret (shown this once only)."""
    guard_policy = _guard(guard, guard_threshold)
    limits = _limits(Limits(), rpm=rpm, tpm=tpm, tpd=tpd, concurrency=concurrency)
    overrides = dict(parse_model_limit(spec) for spec in model_limit or [])
    secret, key = _run(
        redis_url,
        key_prefix,
        lambda store: store.create(
            tenant=tenant,
            name=name,
            limits=limits,
            model_limits=overrides,
            allowed_models=_csv(models),
            allowed_capabilities=_csv(capabilities),
            priority_class=priority_class or DEFAULT_CLASS,
            weight=1.0 if weight is None else weight,
            guard=guard_policy,
        ),
    )
    if as_json:
        typer.echo(json.dumps({**key_to_dict(key), "key": secret}, indent=2))
        return
    _print_key(key, as_json=False)
    typer.echo(secret)
    typer.echo("Store this secret now: it cannot be shown again.", err=True)


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """List keys (never their secrets)."""
    found = _run(redis_url, key_prefix, lambda store: store.list(tenant=tenant))
    if as_json:
        typer.echo(json.dumps([key_to_dict(k) for k in found], indent=2))
        return
    for key in found:
        _print_key(key, as_json=False)


@app.command("show")
def show(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Show one key."""
    _print_key(_run(redis_url, key_prefix, lambda store: store.get(key_id)), as_json)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Revoke a key: every gateway refuses it from the next request on."""
    _print_key(_run(redis_url, key_prefix, lambda store: store.revoke(key_id)), as_json=False)


@app.command("set-limits")
def set_limits(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    rpm: Rpm = None,
    tpm: Tpm = None,
    tpd: Tpd = None,
    concurrency: Conc = None,
    model_limit: ModelLimit = None,
    clear_model_limits: Annotated[
        bool, typer.Option("--clear-model-limits", help="Drop every per-model override first.")
    ] = False,
    priority_class: Priority = None,
    weight: Weight = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Change limits and class; options not given keep their value, -1 makes a limit unlimited."""

    async def work(store: RedisKeyStore) -> ApiKey:
        key = await store.get(key_id)
        limits = _limits(key.limits, rpm=rpm, tpm=tpm, tpd=tpd, concurrency=concurrency)
        models = {} if clear_model_limits else dict(key.model_limits)
        models.update(parse_model_limit(spec) for spec in model_limit or [])
        return await store.set_limits(key_id, limits, models, priority_class, weight)

    _print_key(_run(redis_url, key_prefix, work), as_json)


@app.command("set-guard")
def set_guard(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    mode: Annotated[GuardMode, typer.Argument(help="off, prompts or prompts_and_answers.")],
    guard_threshold: GuardThreshold = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Replace the key's content guard: its mode and thresholds (others get the default)."""
    policy = _guard(mode, guard_threshold)
    _print_key(_run(redis_url, key_prefix, lambda store: store.set_guard(key_id, policy)), as_json)


def _window(name: str, w: dict[str, Any]) -> str:
    if w["limit"] is None:
        return f"{name}={w['used']}"
    reset = f", resets in {w['resets_in_seconds']:g}s" if w["resets_in_seconds"] else ""
    return f"{name}={w['used']}/{w['limit']} ({w['remaining']} left{reset})"


def _print_usage(usage: dict[str, Any]) -> None:
    day = datetime.fromtimestamp(usage["day"]["start"], UTC).strftime("%Y-%m-%d")
    minute = datetime.fromtimestamp(usage["minute"]["start"], UTC).strftime("%H:%M:%S")
    typer.echo(f"{usage['key_id']}  tenant={usage['tenant']}  day {day}  minute from {minute} UTC")
    typer.echo(
        f"  {'model':<32}{'min req':>9}{'min tok':>9}{'day req':>9}{'day tok':>10}{'batch tok':>10}"
    )
    for row in usage["data"]:
        m, d = row["minute"], row["day"]
        typer.echo(
            f"  {row['model']:<32}{m['requests']:>9}{m['tokens']:>9}{d['requests']:>9}"
            f"{d['tokens']:>10}{d['batch_tokens']:>10}"
        )
    for scope in usage["limits"]:
        names = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "max_concurrent")
        shorts = ("rpm", "tpm", "tpd", "concurrency")
        windows = "  ".join(
            _window(short, scope[n]) for short, n in zip(shorts, names, strict=True)
        )
        typer.echo(f"  limits of {scope['model'] or 'the key'}: {windows}")


@app.command("usage")
def usage(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    as_json: AsJson = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """A key's requests and tokens this minute and today, per model, against its limits."""

    async def work(backend: RedisQuotaBackend) -> dict[str, Any]:
        return (await backend.gate.usage(await backend.keys.get(key_id))).to_dict()

    found = _run_backend(redis_url, key_prefix, work)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        _print_usage(found)


def default_dev_key_file() -> Path:
    home = os.environ.get("GEMMA_SERVING_HOME")
    root = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "gemma-serving"
    return (Path(home).expanduser() if home else root) / "dev-key"


async def ensure_dev_key(store: RedisKeyStore, kept: str) -> tuple[str, bool]:
    """The development key's secret, and whether it was filed in Redis just now.

    ``kept`` is the secret of an earlier run (or ""): it is reused while it
    authenticates, filed again if Redis lost it, and replaced if it was revoked.
    """
    if kept:
        try:
            await store.authenticate(kept)
            return kept, False
        except AuthenticationFailed:
            if await store.is_filed(kept):  # revoked: never reuse its secret
                kept = ""
    secret = kept or new_secret()
    await store.create(tenant=DEV_TENANT, name="dev", secret=secret)
    return secret, True


def obtain_dev_key(
    redis_url: str, key_prefix: str = "gs:", key_file: Path | None = None
) -> tuple[str, bool, Path]:
    """The development key's secret (created or re-filed if needed), whether it was
    filed just now, and the file that keeps it (mode 0600)."""
    path = key_file or default_dev_key_file()
    kept = path.read_text().strip() if path.exists() else ""
    secret, created = _run(redis_url, key_prefix, lambda store: ensure_dev_key(store, kept))
    if secret != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(secret + "\n")
    return secret, created, path


@app.command("dev")
def dev(
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="Where the dev secret is kept (default in the cache)."),
    ] = None,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    key_prefix: KeyPrefix = "gs:",
) -> None:
    """Print the development key of tenant local-dev (no limits), creating it if needed."""
    secret, created, path = obtain_dev_key(redis_url, key_prefix, key_file)
    note = "created" if created else "existing"
    print(f"{note} development key (tenant {DEV_TENANT}), kept in {path}", file=sys.stderr)
    typer.echo(secret)
