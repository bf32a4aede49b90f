"""`scratch-tui attach` and `scratch-tui serve` from the command line."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import urllib.request

from tui_trainer import cli


def test_attach_without_a_running_run_says_how_to_start_one(tmp_path, capsys):
    code = cli.main(["attach", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "no run is running" in err and "scratch-tui train --detach" in err


def test_attach_to_an_unknown_run_names_it(tmp_path, capsys):
    code = cli.main(["attach", "nope", "--runs-dir", str(tmp_path)])
    assert code == 2
    assert "no run nope" in capsys.readouterr().err


def test_serve_answers_a_browser_on_localhost_and_runs_the_app():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tui_trainer", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()  # "Serving scratch-tui at http://127.0.0.1:PORT/?token=...": the way in
        url = re.search(r"http://\S+\?token=\S+", line)
        assert url, line
        page = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(url[0], timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert page is not None, "the server did not answer"
        assert "scratch-tui" in page
        token = url[0].split("?token=")[1]
        screen = asyncio.run(first_screen(f"http://127.0.0.1:{port}/ws?width=100&height=30&token={token}"))
        assert "Start" in screen and "Device" in screen  # the setup screen, drawn for the browser
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert "failed to start" not in output and "needs a terminal" not in output, output


async def first_screen(url: str, timeout: float = 60.0) -> str:
    """What the app sends a browser's terminal until its setup screen is drawn."""
    import aiohttp  # textual-serve's own dependency

    received = ""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while "Start" not in received or "Device" not in received:
            message = await asyncio.wait_for(ws.receive(), max(deadline - loop.time(), 0.1))
            if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            data = message.data
            received += data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return received
