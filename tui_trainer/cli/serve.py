"""`scratch-tui serve`'s guard: a token on every request and a same-origin WebSocket, as Jupyter does.

textual-serve has neither, so any local user or any web page open in the user's browser could drive
the app (cross-site WebSocket hijacking). Rather than fork it, this wraps its aiohttp app in one
middleware and checks the address before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import logging
import re
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from .common import EXIT_USAGE, error

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

# Ctrl-C must end `serve` within a second: each open page's app gets this long to quit by itself
# before it is ended (it holds no run: runs are their own processes), then the sockets this long.
# A page closed while serving goes on gives its app longer.
APP_QUIT_SECONDS = 0.25
SOCKETS_CLOSE_SECONDS = 0.1
PAGE_CLOSED_QUIT_SECONDS = 5.0

# textual-serve's page asks Google for its font; a locked-down network breaks on that, an open one
# leaks each visit. The same font ships in its static folder, so the page names that copy instead.
OUTSIDE_FONT = re.compile(r'<link[^>]*href="https?://fonts\.googleapis\.com[^"]*"[^>]*>', re.S)
LOCAL_FONT = "".join(
    f'@font-face {{ font-family: "Roboto Mono"; font-style: {style}; src: url("static/fonts/{name}"); }}'
    for style, name in (("normal", "RobotoMono-VariableFont_wght.ttf"),
                        ("italic", "RobotoMono-Italic-VariableFont_wght.ttf")))


def forbidden_text(port: int) -> str:
    """What a request without the token reads: how to get in, never the token itself."""
    return ("403 Forbidden: this page needs the token that `scratch-tui serve` printed when it started.\n"
            f"Open the whole URL from that line (it ends in /?token=...); through an SSH tunnel, keep the "
            f"?token=... part and change only the host and port (this server listens on port {port}).\n")


class AddressError(Exception):
    """The host or port cannot be served; the message is one line for the user."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    loopback: bool  # every address the host resolves to is this machine's own


def check_address(host: str, port: int) -> Address:
    """Refuse a port out of range, a host that does not resolve, or an address we cannot bind, before
    anything starts (aiohttp would otherwise fail with a traceback after the banner)."""
    if not 1 <= port <= 65535:
        raise AddressError(f"--port must be between 1 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressError(f"unknown host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    # aiohttp binds every address the host resolves to (localhost: 127.0.0.1 and ::1), so try each
    for family, kind, proto, _, sockaddr in dict.fromkeys((i[0], i[1], i[2], None, i[4]) for i in infos):
        with socket.socket(family, kind, proto) as probe:
            # as aiohttp's server does, so a port left in TIME_WAIT by the last run is not "in use"
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise AddressError(_bind_message(host, port, exc)) from None
    loopback = all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)
    return Address(host, port, loopback)


def _bind_message(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is in use on {host}; pick another with --port"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port} (ports below 1024 need root); pick another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def exposed_warning(address: Address) -> str:
    return (f"warning: --host {address.host} is reachable from other machines: anyone who reaches port "
            f"{address.port} controls training on this machine, and the token is the only guard "
            f"(prefer the default 127.0.0.1 and `ssh -L {address.port}:127.0.0.1:{address.port} host`)")


def url_host(host: str) -> str:
    """The host as a URL names it: a wildcard bind by this machine's name, IPv6 in brackets."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


class ServedApp(AppService):
    """One page's app process: in its own session, so a Ctrl-C meant for `serve` does not reach it
    half-way through its own start, and asked to quit, then ended if it has not within `grace` seconds."""

    async def _open_app_process(self, width: int = 80, height: int = 24):
        self._process = process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", f"exec {self.command}", start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height))
        self._stdin = process.stdin
        return process

    async def stop(self, grace: float = PAGE_CLOSED_QUIT_SECONDS) -> None:
        task, process = self._task, self._process
        if task is None or process is None:
            return
        self._task = None
        await self.send_meta({"type": "quit"})
        try:
            await asyncio.wait_for(process.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await task


class GuardedServer(Server):
    """textual-serve's server, refusing every request without the token (403, nothing else) and every
    WebSocket upgrade from another origin."""

    def __init__(self, command: str, address: Address, token: str | None = None, **kwargs) -> None:
        super().__init__(command, host=address.host, port=address.port, **kwargs)
        self.address = address
        self.token = token or secrets.token_urlsafe(32)
        # cookies ignore ports: a name per port keeps two servers on one host from overwriting each other's
        self.cookie = f"scratch-tui-token-{address.port}"
        self.url = f"http://{url_host(address.host)}:{address.port}/?token={self.token}"
        self.apps: set[ServedApp] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)  # before the app is frozen at startup, so it applies
        return app

    def _good(self, candidate: str | None) -> bool:
        # constant time, so the token cannot be guessed a character at a time from response times
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def _same_origin(self, request: web.Request) -> bool:
        """A browser always sends Origin on a WebSocket; a missing one is a script or a command-line
        client, which must still hold the token (Jupyter lets those through too). A present Origin must
        be the page's own: the host the request was sent to."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != request.host.lower():
            return False
        # bound to loopback, the page must have come from a loopback name: a site that re-binds its
        # DNS name to 127.0.0.1 (DNS rebinding) sends its own name as Host and Origin alike
        return not self.address.loopback or (parts.hostname or "") in LOOPBACK_NAMES

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        via_query = self._good(request.query.get("token"))
        if not (via_query or self._good(request.cookies.get(self.cookie))):
            return web.Response(status=403, text=forbidden_text(self.address.port))
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket" and not self._same_origin(request):
            return web.Response(status=403, text="403 Forbidden: a WebSocket from another site\n")
        response = await handler(request)
        if via_query and not response.prepared:
            # the page's WebSocket and assets cannot carry the query (textual.js builds the socket's URL
            # itself), so the first good request leaves the token in a cookie that only this site sends
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """textual-serve writes absolute URLs into the page from the bind address; name the host the
        browser used instead, so the page's WebSocket goes to the origin that holds the cookie (a page
        opened at localhost would otherwise open ws://127.0.0.1/…, without it, and be refused; one
        bound to 0.0.0.0 would point the browser at 0.0.0.0). The page is built without a pause after
        this, so concurrent requests cannot mix their hosts."""
        self.public_url = f"{request.scheme}://{request.host}"
        response = await super().handle_index(request)
        response.text = OUTSIDE_FONT.sub(f"<style>{LOCAL_FONT}</style>", response.text)
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's, with the app kept in `self.apps`, so that Ctrl-C can end it without delay."""
        websocket = web.WebSocketResponse(heartbeat=15)
        app = ServedApp(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                        close=websocket.close, download_manager=self.download_manager, debug=self.debug)
        self.apps.add(app)
        try:
            await websocket.prepare(request)
            await app.start(to_int(request.query.get("width", "80"), 80),
                            to_int(request.query.get("height", "24"), 24))
            await self._process_messages(websocket, app)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as exc:  # as textual-serve does: one page's failure is logged, the server goes on
            logging.getLogger("textual-serve").exception(exc)
        finally:
            self.apps.discard(app)
            await app.stop()
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        """Ctrl-C: end every open page's app now. aiohttp would otherwise wait for each page's socket to
        close, and each app to quit in its own time, which took many seconds with a page open."""
        await asyncio.gather(*(served.stop(APP_QUIT_SECONDS) for served in list(self.apps)))

    def initialize_logging(self) -> None:
        super().initialize_logging()
        # the access log shows each request's URL; keep the token out of the terminal and its scrollback
        logging.getLogger("aiohttp.access").addFilter(self._redact)

    def _redact(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "[token]"), ()
        return True

    async def on_startup(self, app: web.Application) -> None:
        pass  # textual-serve's banner shows the URL without the token; ours is printed once the port listens

    def serve(self, debug: bool = False) -> None:
        """textual-serve's serve, but the URL is printed by aiohttp's hook that runs once the port listens:
        printed at startup, before the bind, a URL opened at once (a script, a quick click) was refused."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for stop in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(stop, self.request_exit)
            except NotImplementedError:  # Windows: Ctrl-C still ends aiohttp's loop
                pass
        web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                    shutdown_timeout=SOCKETS_CLOSE_SECONDS,
                    print=lambda _: print(f"Serving scratch-tui at {self.url}  (Ctrl-C stops)", flush=True))


def serve(command: str, host: str, port: int) -> int:
    """Check the address, warn when it is exposed, then serve until Ctrl-C. Exit 2 on a bad address."""
    try:
        address = check_address(host, port)
    except AddressError as exc:
        return error(str(exc), "serve", EXIT_USAGE)
    if not address.loopback:
        print(f"scratch-tui serve: {exposed_warning(address)}", file=sys.stderr, flush=True)
    server = GuardedServer(command, address, title="scratch-tui")
    try:
        server.serve()
    except OSError as exc:  # someone took the port between the check and the bind
        return error(_bind_message(host, port, exc), "serve", EXIT_USAGE)
    return 0
