from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest

from gateway.errors import InvalidMedia
from gateway.media.fetch import (
    IPAddress,
    PublicAddressPolicy,
    RemoteMediaFetcher,
    create_fetch_client,
    host_allowed,
    is_public_address,
)
from gateway.media.settings import MediaSettings
from tests.gateway_media.http_server import IMAGE, ImageServer, image_server

pytestmark = pytest.mark.anyio

PARAM = "messages[0].content[0].image_url"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class TableResolver:
    """Answers from a fixed table; counts the lookups it served."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [ipaddress.ip_address(address) for address in self.table[host]]


class LoopbackStandsInForPublic:
    """Treats 127.0.0.1 (the test server) as public; every other address as in production."""

    def allows(self, address: IPAddress) -> bool:
        return address == LOOPBACK or PublicAddressPolicy().allows(address)


@pytest.fixture
def server() -> Iterator[ImageServer]:
    with image_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with create_fetch_client(MediaSettings()) as made:
        yield made


def settings(**overrides: object) -> MediaSettings:
    values: dict[str, object] = {
        "allow_remote_images": True,
        "remote_image_hosts": ["images.test", "internal.test", "169.254.169.254"],
    }
    values.update(overrides)
    return MediaSettings.model_validate(values)


def pinned_fetcher(
    client: httpx.AsyncClient, resolver: TableResolver | None = None, **overrides: object
) -> RemoteMediaFetcher:
    table = {"images.test": ["127.0.0.1"], "internal.test": ["10.0.0.7"]}
    return RemoteMediaFetcher(
        settings(**overrides),
        client,
        resolver=resolver or TableResolver(table),
        policy=LoopbackStandsInForPublic(),
    )


async def refused(fetcher: RemoteMediaFetcher, url: str) -> InvalidMedia:
    with pytest.raises(InvalidMedia) as caught:
        await fetcher.fetch(url, param=PARAM)
    assert caught.value.param == PARAM
    return caught.value


async def test_disabled_remote_images_are_refused(server, client):
    fetcher = RemoteMediaFetcher(settings(allow_remote_images=False), client)
    error = await refused(fetcher, server.url("/image.png", "images.test"))
    assert error.code == "image_url_forbidden"
    assert server.hits == []


async def test_allowlisted_loopback_ip_is_refused(server, client):
    fetcher = RemoteMediaFetcher(settings(remote_image_hosts=["127.0.0.1"]), client)
    error = await refused(fetcher, server.url("/image.png"))
    assert error.code == "image_url_forbidden"
    assert server.hits == []


async def test_allowlisted_name_resolving_to_loopback_is_refused(server, client):
    fetcher = RemoteMediaFetcher(settings(remote_image_hosts=["localhost"]), client)
    error = await refused(fetcher, server.url("/image.png", "localhost"))
    assert error.code == "image_url_forbidden"
    assert error.message == "Host 'localhost' does not resolve to a public address."
    assert server.hits == []


async def test_host_outside_the_allowlist_is_refused(server, client):
    fetcher = pinned_fetcher(client, remote_image_hosts=["other.test"])
    error = await refused(fetcher, server.url("/image.png", "images.test"))
    assert error.code == "image_url_forbidden"
    assert server.hits == []


async def test_allowed_host_is_fetched_from_the_pinned_address_with_its_name(server, client):
    resolver = TableResolver({"images.test": ["127.0.0.1"]})
    fetcher = pinned_fetcher(client, resolver)
    body = await fetcher.fetch(server.url("/image.png", "images.test"), param=PARAM)
    # images.test exists only in the table: the request reached the server because it was
    # sent to the address checked here, not to whatever the system would resolve.
    assert body == IMAGE
    assert server.hits == [("/image.png", f"images.test:{server.port}")]
    assert resolver.calls == ["images.test"]


async def test_same_host_redirect_is_followed(server, client):
    fetcher = pinned_fetcher(client)
    body = await fetcher.fetch(server.url("/redirect?to=/image.png", "images.test"))
    assert body == IMAGE
    assert [path for path, _ in server.hits] == ["/redirect?to=/image.png", "/image.png"]


async def test_redirect_to_an_allowlisted_host_with_a_private_address_is_refused(server, client):
    target = quote("http://internal.test/secret.png", safe="")
    error = await refused(
        pinned_fetcher(client), server.url(f"/redirect?to={target}", "images.test")
    )
    assert error.code == "image_url_forbidden"
    assert error.message == "Host 'internal.test' does not resolve to a public address."
    assert len(server.hits) == 1


async def test_redirect_to_the_metadata_address_is_refused(server, client):
    target = quote("http://169.254.169.254/latest/meta-data/", safe="")
    error = await refused(
        pinned_fetcher(client), server.url(f"/redirect?to={target}", "images.test")
    )
    assert error.code == "image_url_forbidden"


async def test_redirect_to_a_host_outside_the_allowlist_is_refused(server, client):
    target = quote(f"http://localhost:{server.port}/image.png", safe="")
    error = await refused(
        pinned_fetcher(client), server.url(f"/redirect?to={target}", "images.test")
    )
    assert error.code == "image_url_forbidden"
    assert len(server.hits) == 1


async def test_redirects_are_capped(server, client):
    error = await refused(pinned_fetcher(client), server.url("/loop", "images.test"))
    assert error.code == "image_fetch_failed"
    assert len(server.hits) == 4


async def test_streamed_body_over_the_limit_is_cut_off(server, client):
    fetcher = pinned_fetcher(client, remote_max_bytes=100_000)
    error = await refused(fetcher, server.url("/big?size=1000000", "images.test"))
    assert error.code == "image_too_large"


async def test_declared_length_over_the_limit_is_refused(server, client):
    fetcher = pinned_fetcher(client, remote_max_bytes=100_000)
    error = await refused(fetcher, server.url("/big?size=1000000&declare=1", "images.test"))
    assert error.code == "image_too_large"


async def test_slow_server_times_out(server, client):
    fetcher = pinned_fetcher(client, remote_fetch_timeout=0.5)
    error = await refused(fetcher, server.url("/slow", "images.test"))
    assert error.code == "image_fetch_failed"
    assert "timed out" in error.message


async def test_error_status_fails(server, client):
    error = await refused(pinned_fetcher(client), server.url("/missing.png", "images.test"))
    assert error.code == "image_fetch_failed"
    assert "404" in error.message


async def test_host_with_any_private_address_is_refused(server, client):
    resolver = TableResolver({"images.test": ["127.0.0.1", "192.168.1.5"]})
    error = await refused(pinned_fetcher(client, resolver), server.url("/image.png", "images.test"))
    assert error.code == "image_url_forbidden"
    assert "192.168" not in error.message
    assert server.hits == []


async def test_unresolvable_host_is_refused_like_a_private_one(client):
    error = await refused(pinned_fetcher(client), "http://images.test.invalid/x.png")
    assert error.code == "image_url_forbidden"
    fetcher = pinned_fetcher(client, TableResolver({"internal.test": ["10.0.0.7"]}))
    missing = await refused(fetcher, "http://images.test/x.png")
    private = await refused(fetcher, "http://internal.test/x.png")
    assert (missing.code, private.code) == ("image_url_forbidden", "image_url_forbidden")
    assert missing.message.replace("images.test", "internal.test") == private.message


async def test_resolved_addresses_go_to_the_debug_log_only(client, caplog):
    resolver = TableResolver({"db.corp.test": ["10.1.2.3"]})
    fetcher = pinned_fetcher(client, resolver, remote_image_hosts=["*.corp.test"])
    with caplog.at_level(logging.DEBUG, logger="gateway.media.fetch"):
        error = await refused(fetcher, "http://db.corp.test/x.png")
    assert "10.1.2.3" not in error.message
    assert "db.corp.test" in error.message
    assert any("10.1.2.3" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://images.test/x.png",
        "file:///etc/passwd",
        "http://user:secret@images.test/x.png",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
async def test_unsafe_urls_are_refused(client, url: str):
    hosts = ["images.test", "metadata.google.internal"]
    fetcher = pinned_fetcher(client, remote_image_hosts=hosts)
    assert (await refused(fetcher, url)).code == "image_url_forbidden"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),
        ("169.254.169.254", False),
        ("169.254.1.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", False),  # IPv4-mapped addresses are refused outright
        ("64:ff9b::a00:1", False),
        ("2002:7f00:1::", False),
        ("fec0::1", False),
    ],
)
def test_public_address_policy(address: str, public: bool):
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("images.test", True),
        ("cdn.example.com", True),
        ("a.b.example.com", True),
        ("example.com", False),
        ("badexample.com", False),
        ("images.test.evil", False),
        ("static.other.org", True),
        ("other.org", False),
    ],
)
def test_host_allowlist(host: str, allowed: bool):
    assert host_allowed(host, ["images.test", "*.example.com", ".other.org"]) is allowed
