"""Fetching remote images and videos without opening a door into the private network.

Each hop (the URL and every redirect) is checked the same way before anything is sent:

1. the scheme is http or https and the URL carries no credentials;
2. the host is in ``remote_image_hosts`` and is not a cloud metadata name;
3. the gateway resolves the host itself (``Resolver``) and every address must pass the
   ``AddressPolicy`` (public unicast only: no private, loopback, link-local, multicast,
   reserved, unspecified or metadata address, including IPv4 embedded in IPv6);
4. the request goes to the checked IP itself (pinned), with the real name in the ``Host``
   header and, for https, as SNI and the certificate name, so a second DNS answer
   (rebinding) cannot send it elsewhere.

Redirects are followed by hand, at most ``remote_max_redirects``; the body is capped while
it streams, and the whole fetch (DNS, redirects, body) runs under one deadline.

A refused or unresolvable host gets one answer, naming only the host the client sent:
the addresses it resolved to (or the resolver's error) go to the debug log, so the
answers cannot map internal DNS names behind a wildcard allowlist.

The ``httpx.AsyncClient`` is injected; make it with ``create_fetch_client`` (no proxies from
the environment, no redirects, no cookies) and keep it for remote media only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Literal, Protocol

import anyio
import httpx

from gateway.errors import InvalidMedia
from gateway.media.settings import MediaSettings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FetchKind = Literal["image", "video"]

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Resolver(Protocol):
    """Turns a host name into the addresses the gateway will choose from."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``; raises ``OSError`` when it cannot be resolved."""
        ...


class AddressPolicy(Protocol):
    """Decides which resolved addresses the gateway may connect to."""

    def allows(self, address: IPAddress) -> bool:
        """True when a connection to ``address`` is safe."""
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a worker thread)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


class PublicAddressPolicy:
    """Allows only public unicast addresses (see ``is_public_address``)."""

    def allows(self, address: IPAddress) -> bool:
        return is_public_address(address)


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address that is no metadata endpoint."""
    if address in METADATA_ADDRESSES:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public_address(embedded):
            return False
        if address.is_site_local:
            return False
    refused = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    return address.is_global and not refused


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def host_allowed(host: str, allowlist: list[str]) -> bool:
    """Exact names match themselves; '*.example.com' and '.example.com' match subdomains."""
    for entry in allowlist:
        if entry.startswith(("*.", ".")):
            suffix = entry[entry.index(".") :]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == entry:
            return True
    return False


def create_fetch_client(settings: MediaSettings) -> httpx.AsyncClient:
    """A client fit for remote media: no env proxies, no redirects, no cookie jar."""
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        timeout=settings.remote_fetch_timeout,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        headers={"user-agent": "gemma-serving-gateway"},
    )


@dataclass(frozen=True)
class _Job:
    """One fetch: what it fetches, for which part, how many bytes it may read, if at all."""

    kind: FetchKind
    param: str | None
    max_bytes: int
    enabled: bool

    def forbidden(self, message: str) -> InvalidMedia:
        return InvalidMedia(message, param=self.param, code=f"{self.kind}_url_forbidden")

    def failed(self, message: str) -> InvalidMedia:
        return InvalidMedia(message, param=self.param, code=f"{self.kind}_fetch_failed")

    def too_large(self) -> InvalidMedia:
        return InvalidMedia(
            f"The remote {self.kind} is larger than {self.max_bytes} bytes.",
            param=self.param,
            code=f"{self.kind}_too_large",
        )


def _not_public(host: str, job: _Job) -> InvalidMedia:
    """The one refusal of a host that does not resolve, or not to public addresses only."""
    return job.forbidden(f"Host {host!r} does not resolve to a public address.")


class RemoteMediaFetcher:
    """Fetches the bytes of an allowlisted, public http(s) image or video URL (see module doc).

    Images need ``allow_remote_images`` and are capped at ``remote_max_bytes``; videos need
    ``allow_remote_videos`` and are capped at ``max_video_bytes``. Everything else is shared.
    """

    def __init__(
        self,
        settings: MediaSettings,
        client: httpx.AsyncClient,
        *,
        resolver: Resolver | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._resolver: Resolver = resolver or SystemResolver()
        self._policy: AddressPolicy = policy or PublicAddressPolicy()

    def _job(self, kind: FetchKind, param: str | None) -> _Job:
        settings = self._settings
        if kind == "video":
            return _Job(kind, param, settings.max_video_bytes, settings.allow_remote_videos)
        return _Job(kind, param, settings.remote_max_bytes, settings.allow_remote_images)

    async def fetch(
        self, url: str, *, param: str | None = None, kind: FetchKind = "image"
    ) -> bytes:
        """The body of ``url``; InvalidMedia ``<kind>_url_forbidden`` or ``<kind>_fetch_failed``."""
        job = self._job(kind, param)
        if not job.enabled:
            raise job.forbidden(f"Remote {kind} URLs are disabled; send a data: URL.")
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise InvalidMedia(
                f"The {kind} URL is invalid.", param=param, code=f"invalid_{kind}"
            ) from exc
        try:
            with anyio.fail_after(self._settings.remote_fetch_timeout):
                return await self._follow(target, job)
        except TimeoutError as exc:
            raise job.failed(f"Fetching the {kind} timed out.") from exc

    async def _follow(self, url: httpx.URL, job: _Job) -> bytes:
        for _ in range(self._settings.remote_max_redirects + 1):
            address = await self._check_hop(url, job)
            body, location = await self._get(url, address, job)
            if location is None:
                return body
            url = location
        raise job.failed(
            f"The {job.kind} URL redirected more than {self._settings.remote_max_redirects} times."
        )

    async def _check_hop(self, url: httpx.URL, job: _Job) -> IPAddress:
        """Check scheme, credentials, host and resolved addresses; the address to connect to."""
        if url.scheme not in _DEFAULT_PORTS:
            raise job.forbidden(f"{job.kind.capitalize()} URLs must be http or https.")
        if url.userinfo:
            raise job.forbidden(f"{job.kind.capitalize()} URLs may not carry credentials.")
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        if not host or host in METADATA_HOSTS:
            raise job.forbidden(f"{job.kind.capitalize()}s may not be fetched from {host!r}.")
        if not host_allowed(host, self._settings.remote_image_hosts):
            raise job.forbidden(f"Host {host!r} is not an allowed {job.kind} host.")
        addresses = await self._addresses(host, url.port or _DEFAULT_PORTS[url.scheme], job)
        refused = [str(address) for address in addresses if not self._policy.allows(address)]
        if refused or not addresses:
            log.debug("refused %s host %r: it resolves to %s", job.kind, host, refused or "nothing")
            raise _not_public(host, job)
        return addresses[0]

    async def _addresses(self, host: str, port: int, job: _Job) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            return await self._resolver.resolve(host, port)
        except OSError as exc:
            log.debug("refused %s host %r: it does not resolve (%s)", job.kind, host, exc)
            raise _not_public(host, job) from exc

    async def _get(
        self, url: httpx.URL, address: IPAddress, job: _Job
    ) -> tuple[bytes, httpx.URL | None]:
        """GET ``url`` from ``address``: (body, None), or (b"", next URL) on a redirect."""
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        request = self._client.build_request(
            "GET",
            url.copy_with(host=str(address)),
            # One request per connection: a pooled connection to this IP, opened for another
            # name, must never carry this one.
            headers={
                "host": url.netloc.decode("ascii"),
                "connection": "close",
                "accept": f"{job.kind}/*",
                "accept-encoding": "identity",
            },
            extensions=extensions,
        )
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                return await self._read(url, response, job)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise job.failed(f"Fetching the {job.kind} failed ({type(exc).__name__}).") from exc

    async def _read(
        self, url: httpx.URL, response: httpx.Response, job: _Job
    ) -> tuple[bytes, httpx.URL | None]:
        if response.status_code in _REDIRECTS and "location" in response.headers:
            return b"", url.join(response.headers["location"])
        if response.status_code != 200:
            raise job.failed(f"The {job.kind} URL answered HTTP {response.status_code}.")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > job.max_bytes:
            raise job.too_large()
        body = bytearray()
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > job.max_bytes:
                raise job.too_large()
        return bytes(body), None
