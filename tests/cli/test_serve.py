"""`scratch-tui serve` against the real server on 127.0.0.1: the token, the WebSocket's origin, and the
address checks that refuse before anything starts."""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web

from tui_trainer.cli import main
from tui_trainer.cli.serve import Address, GuardedServer

TOKEN = "t0ken-for-tests-" + "x" * 27


@contextmanager
def guarded_server(command: str = "true"):
    """The server `serve` runs, on a free port of 127.0.0.1, in a thread; stopped on the way out.

    The command behind the WebSocket is `true`: the handshake is what is tested, not the app."""
    server = GuardedServer(command, Address("127.0.0.1", 1, loopback=True), token=TOKEN)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner: web.AppRunner | None = None

    async def start() -> int:
        nonlocal runner
        runner = web.AppRunner(await server._make_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: the OS picks a free one, no race
        await site.start()
        return runner.addresses[0][1]

    try:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        server.loop = loop  # for a test that runs the server's own coroutines
        yield port, server
    finally:
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def port():
    with guarded_server() as (p, _):
        yield p


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", f"?token={TOKEN[:-1]}", f"?token={TOKEN}x"])
def test_no_or_wrong_token_is_403_and_nothing_else(port, query):
    status, body, headers = get(f"http://127.0.0.1:{port}/{query}")
    assert status == 403
    # it says how to get in (the printed URL with its ?token=), never what the token is
    assert body.startswith("403 Forbidden: this page needs the token that `scratch-tui serve` printed")
    assert "/?token=..." in body and TOKEN not in body and TOKEN[:8] not in body
    assert "Set-Cookie" not in headers


def test_every_path_needs_the_token(port):
    for path in ("/static/js/textual.js", "/static/", "/download/anything", "/ws"):
        assert get(f"http://127.0.0.1:{port}{path}")[0] == 403, path
    assert get(f"http://127.0.0.1:{port}/static/js/textual.js?token={TOKEN}")[0] == 200


def test_good_token_serves_the_page_and_leaves_a_strict_cookie(port):
    status, body, headers = get(f"http://127.0.0.1:{port}/?token={TOKEN}")
    assert status == 200
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"scratch-tui-token-1={TOKEN};")  # named by the bound port
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_page_follows_the_host_the_browser_used(port):
    # opened at localhost, the page's socket must go to localhost too, where its cookie is
    body = get(f"http://127.0.0.1:{port}/?token={TOKEN}", {"Host": f"localhost:{port}"})[1]
    assert f'data-session-websocket-url="ws://localhost:{port}/ws"' in body


@contextmanager
def forwarded(port: int):
    """What `ssh -L OTHER:127.0.0.1:PORT` does: bytes from another local port passed on unchanged."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def connection(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def start():
        return await asyncio.start_server(connection, "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    async def stop():
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_tunnel_to_another_port_opens_the_page_from_the_box_alone(port):
    with forwarded(port) as other:
        status, body, _ = get(f"http://localhost:{other}/?token={TOKEN}")
        assert status == 200
        # the page's socket goes where the browser is, the tunnel's end, not the port serve bound
        assert f'data-session-websocket-url="ws://localhost:{other}/ws"' in body
        # nothing from outside: no web font from Google, every URL in the page is this server's
        urls = [a or b for a, b in re.findall(r'(?:href|src)="([^"]*)"|url\("?([^")"]*)"?\)', body)]
        outside = [url for url in urls if not url.startswith((f"http://localhost:{other}/", "static/"))]
        assert outside == [] and "googleapis" not in body
        font = re.search(r'url\("(static/fonts/[^"]+)"\)', body).group(1)
        with urllib.request.urlopen(f"http://localhost:{other}/{font}?token={TOKEN}", timeout=5) as served:
            assert served.status == 200 and len(served.read()) > 10_000
        # and the socket opens through the tunnel, with the cookie the page left
        assert asyncio.run(handshake(other, origin=f"http://localhost:{other}", via_cookie=True,
                                     page_host="localhost")) == 101


async def handshake(port: int, *, origin: str | None, query: str = "", host: str | None = None,
                    via_cookie: bool = False, page_host: str = "127.0.0.1") -> int:
    """The WebSocket handshake's status: 101 when accepted."""
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies from an IP address such as 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        if via_cookie:  # as a browser does: load the page with the token, then open the socket without it
            async with session.get(f"http://{page_host}:{port}/?token={TOKEN}") as page:
                assert page.status == 200
        headers = {"Host": host} if host else {}
        try:
            async with session.ws_connect(f"http://{page_host}:{port}/ws{query}", origin=origin, headers=headers,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_websocket_from_another_origin_is_refused_even_with_the_token(port):
    assert asyncio.run(handshake(port, origin="http://evil.example", query=f"?token={TOKEN}")) == 403
    assert asyncio.run(handshake(port, origin="http://evil.example", via_cookie=True)) == 403
    assert asyncio.run(handshake(port, origin=f"http://127.0.0.1:{port + 1}", via_cookie=True)) == 403
    assert asyncio.run(handshake(port, origin="null", via_cookie=True)) == 403


def test_websocket_without_the_token_is_refused_even_from_the_origin(port):
    assert asyncio.run(handshake(port, origin=f"http://127.0.0.1:{port}")) == 403
    assert asyncio.run(handshake(port, origin=f"http://127.0.0.1:{port}", query="?token=wrong")) == 403


def test_dns_rebinding_is_refused(port):
    # a site whose name now resolves to 127.0.0.1 sends its own name as Host and Origin alike
    assert asyncio.run(handshake(port, origin=f"http://evil.example:{port}", host=f"evil.example:{port}",
                                 query=f"?token={TOKEN}")) == 403


def test_websocket_from_the_page_is_accepted(port):
    assert asyncio.run(handshake(port, origin=f"http://127.0.0.1:{port}", via_cookie=True)) == 101
    assert asyncio.run(handshake(port, origin=f"http://127.0.0.1:{port}", query=f"?token={TOKEN}")) == 101
    # no Origin: not a browser (they always send one on a WebSocket), so the token alone decides
    assert asyncio.run(handshake(port, origin=None, query=f"?token={TOKEN}")) == 101


def test_shutdown_ends_an_open_pages_app_that_will_not_quit():
    # Ctrl-C ran on_shutdown, which waited for each page's app to quit in its own time (3-20 s seen):
    # an app that ignores the quit message must be ended, not waited for
    with guarded_server("sleep 60") as (port, server):
        async def open_page():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"http://127.0.0.1:{port}/ws?token={TOKEN}"):
                    while not server.apps or next(iter(server.apps))._process is None:
                        await asyncio.sleep(0.01)
                    (app,) = server.apps
                    # its own session: a Ctrl-C in serve's terminal goes to serve, which ends it
                    assert os.getsid(app._process.pid) == app._process.pid
                    shutdown = asyncio.run_coroutine_threadsafe(server.on_shutdown(None), server.loop)
                    await asyncio.wrap_future(shutdown)
                    return app._process

        process = asyncio.run(asyncio.wait_for(open_page(), 20))  # far below the app's 60 s
    assert process.returncode is not None  # ended, not left behind


# --- the command itself -------------------------------------------------------------------------------

@pytest.fixture
def never_serves(monkeypatch):
    """A refusal must come before the server starts; if it does not, fail instead of serving for ever."""
    def serve(self, debug=False):
        raise AssertionError("the server started")
    monkeypatch.setattr(GuardedServer, "serve", serve)


@pytest.mark.parametrize("argv, message", [
    (["--port", "abc"], "scratch-tui serve: error: argument --port: invalid int value: 'abc'"),
    (["--port", "0"], "scratch-tui serve: error: --port must be between 1 and 65535, not 0"),
    (["--port", "65536"], "scratch-tui serve: error: --port must be between 1 and 65535, not 65536"),
    (["--port", "-1"], "scratch-tui serve: error: --port must be between 1 and 65535, not -1"),
    (["--host", "no-such-host.invalid"], "scratch-tui serve: error: unknown host 'no-such-host.invalid'"),
])
def test_bad_port_or_host_is_one_line_and_exit_2(never_serves, capsys, argv, message):
    try:
        code = main(["serve", *argv])
    except SystemExit as exc:  # argparse's own refusal of a non-number
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_port_in_use_is_one_line_and_exit_2(never_serves, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"scratch-tui serve: error: port {port} is in use on 127.0.0.1; pick another with --port\n"


def test_help_shows_the_defaults_and_the_token(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default 127.0.0.1" in out and "default 8000" in out
    assert "a secret token (/?token=...): every request needs it" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readline(stream, timeout: float = 30) -> str:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    assert sel.select(timeout), "no line from `scratch-tui serve`"
    return stream.readline()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.stdout.close()
    process.stderr.close()


@contextmanager
def serve_command(*argv: str):
    """`scratch-tui serve ARGV --port P` on a free port, with the port and the line it printed on stdout;
    stopped with Ctrl-C on the way out, killed if that fails."""
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "tui_trainer", "serve", *argv, "--port", str(port)],
                                   text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "COLUMNS": "200"})
        line = readline(process.stdout)
        if line or "is in use" not in process.stderr.read():
            break
        stop(process)  # another process took the free port before serve bound it: try another
    try:
        yield process, port, line
    finally:
        stop(process)


def test_serve_prints_a_token_url_that_opens_the_page_and_stops_on_ctrl_c():
    with serve_command() as (process, port, line):
        prefix = f"Serving scratch-tui at http://127.0.0.1:{port}/?token="
        assert line.startswith(prefix), line
        token = line[len(prefix):].split()[0]
        assert len(token) >= 43  # token_urlsafe(32)
        assert get(f"http://127.0.0.1:{port}/")[0] == 403
        assert get(f"http://127.0.0.1:{port}/?token={token}")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        rest = process.stdout.read() + process.stderr.read()
    assert "warning" not in rest
    assert "GET /?token=[token]" in rest and token not in rest  # the access log shows the URL without it


def test_non_loopback_host_warns_in_one_line():
    with serve_command("--host", "0.0.0.0") as (process, port, line):
        assert "/?token=" in line
        assert readline(process.stderr) == (
            f"scratch-tui serve: warning: --host 0.0.0.0 is reachable from other machines: anyone "
            f"who reaches port {port} controls training on this machine, and the token is the only "
            f"guard (prefer the default 127.0.0.1 and `ssh -L {port}:127.0.0.1:{port} host`)\n")
