"""Soak: many short runs on one store, and what they leave behind (issue 24). A benchmark, not a test.

    python bench/soak.py [--scale 1.0] [--keep DIR]

Four phases on one fresh run store, each in a process of its own so that its memory is its own:
1. sequential: 200 short runs one after another, `scratch-tui train` called in one process (the CLI's
   main(), as the command runs it), so that whatever a run leaves behind piles up where it can be seen;
2. concurrent: 4 training processes at once (10 runs each, one after another), while a fifth keeps
   listing the store (`scratch-tui runs`, in-process) and counts what it could not read;
3. app: one app session (headless Textual, 80x24) kept open through 50 runs it starts as F5 does
   (each trains in a process of its own; the app follows it to its end);
4. runner: a 50-run sweep (`scratch-tui sweep run --detach --parallel 2`) worked through by the queue's
   runner, whose memory, threads and open files are sampled from /proc while it works.

For each phase: memory growth (RSS after the first few runs, the warm-up, against the end), threads
and file descriptors (the same two points), and the runs it made: every one must be there once,
finished, with one epoch row per epoch. At the start and the end: the time `scratch-tui runs` takes
(a fresh process, median of 3, wall and CPU seconds, beside the same command on an empty store at the
same moment, so that the machine's load falls on both) and store.list_runs() (median of 5), and the
store's size.
Targets: under 50 MB growth, no thread or descriptor left over, nothing lost or doubled, listing flat.

--scale multiplies every count (0.2: 40 sequential runs, 4 x 2 concurrent, 10 in the app, a 10-run sweep).
Raw output: bench/results/soak-cpu.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# a tiny run: the bundled mini dataset, 1 epoch of 256 images, a 784-32-10 MLP, one thread, no probe
TINY = ["--epochs", "1", "--max-train-samples", "256", "--hidden", "32", "--threads", "1", "--probe-every", "0",
        "--keep-checkpoints", "1", "--device", "cpu"]
TINY_TOML = ('epochs = 1\nmax_train_samples = 256\nhidden = [32]\nthreads = 1\nprobe_every = 0\n'
             'keep_checkpoints = 1\ndevice = "cpu"\n')
MB = 1024 * 1024


# -- what a process holds ------------------------------------------------------------------------------
def held(pid: int | str = "self") -> dict[str, int]:
    """RSS in bytes, threads and open file descriptors of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def growth(first: dict[str, int], last: dict[str, int]) -> dict[str, float]:
    return {"rss_mb": round((last["rss"] - first["rss"]) / MB, 1), "threads": last["threads"] - first["threads"],
            "fds": last["fds"] - first["fds"], "rss_start_mb": round(first["rss"] / MB, 1),
            "rss_end_mb": round(last["rss"] / MB, 1)}


def warm_up(count: int) -> int:
    """The run after which a phase's baseline is taken: torch, the dataset and Textual load on the first ones."""
    return max(1, min(5, count // 4))


def cli(*argv: str) -> tuple[int, str]:
    """`scratch-tui ARGV` in this process, its stdout kept; its exit code."""
    from tui_trainer.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


# -- the phases, each run in a child process -------------------------------------------------------------
def phase_sequential(store_dir: str, count: int, prefix: str = "seq") -> dict:
    first = None
    failed = []
    for i in range(count):
        code, _ = cli("train", *TINY, "--name", f"{prefix}-{i:04d}", "--seed", str(i), "--runs-dir", store_dir)
        if code != 0:
            failed.append(i)
        if i + 1 == warm_up(count):
            first = held()
    return {"runs": count, "failed": failed, **growth(first, held())}


def phase_lister(store_dir: str, stop_file: str) -> dict:
    """`scratch-tui runs` over and over until the stop file appears: each listing's time and failures."""
    times, failures = [], []
    first = None
    while not os.path.exists(stop_file):
        started = time.perf_counter()
        code, out = cli("runs", "--runs-dir", store_dir)
        times.append(time.perf_counter() - started)
        if code != 0:
            failures.append(out[-200:])
        if len(times) == 5:
            first = held()
    last = held()
    return {"listings": len(times), "failures": failures, "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3), **growth(first or last, last)}


async def _app_session(store_dir: str, count: int) -> dict:
    from tui_trainer.engine.config import TrainConfig
    from tui_trainer.runs.handle import RunLauncher
    from tui_trainer.runs.store import RunStore
    from tui_trainer.ui.app import TrainerApp

    config = TrainConfig(epochs=1, max_train_samples=256, hidden=(32,), threads=1, probe_every=0,
                         keep_checkpoints=1, device="cpu")
    store = RunStore(store_dir)
    app = TrainerApp(launcher=RunLauncher(store), store=store, config=config)
    first, failed = None, []
    async with app.run_test(size=(80, 24)) as pilot:
        for i in range(count):
            app.start_training(config.replace(name=f"app-{i:04d}", seed=i))  # what F5 does
            deadline = time.monotonic() + 300
            while app.run_view.ended is None:
                if time.monotonic() > deadline:
                    failed.append(f"app-{i:04d}: still {app.run_view.state} after 300 s")
                    break
                await pilot.pause(0.1)
            if app.run_view.state != "finished":
                failed.append(f"app-{i:04d}: {app.run_view.state} {app.run_view.message}")
            await pilot.pause(0.2)  # the last events drawn
            if i + 1 == warm_up(count):
                first = held()
        last = held()
    store.close()
    return {"runs": count, "failed": failed, **growth(first, last)}


def phase_app(store_dir: str, count: int) -> dict:
    import asyncio

    return asyncio.run(_app_session(store_dir, count))


PHASES = {"sequential": phase_sequential, "lister": phase_lister, "app": phase_app}


def child(phase: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--phase", phase, *args], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def result_of(process: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": f"exit {process.returncode}, no result"}


# -- the runner phase, from the driver -------------------------------------------------------------------
def phase_runner(store_dir: str, count: int) -> dict:
    from tui_trainer.runs import queue as run_queue
    from tui_trainer.runs.store import RunStore

    sweep = Path(store_dir).parent / "soak-sweep.toml"
    lrs = ", ".join(f"{0.001 * (i + 1):g}" for i in range(max(1, count // 2)))
    sweep.write_text(TINY_TOML + f'\n[sweep]\nname = "soak-sweep"\nlr = [{lrs}]\nseed = [0, 1]\n')
    code, out = cli("sweep", "run", str(sweep), "--detach", "--parallel", "2", "--runs-dir", store_dir)
    if code != 0:
        return {"error": out}
    sweep_id = out.split("Queued sweep ", 1)[1].split(" ", 1)[0]
    samples: list[tuple[int, dict[str, int]]] = []  # (runs ended, what the runner held)
    with RunStore(store_dir) as store:
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            runs = store.list_runs(sweep=sweep_id)
            ended = sum(r.state.value in ("finished", "failed", "stopped", "interrupted") for r in runs)
            pid = run_queue.runner_status(store).runner_pid
            if pid is not None:
                with contextlib.suppress(OSError, KeyError):
                    samples.append((ended, held(pid)))
            if ended == len(runs):
                break
            time.sleep(1.0)
    warm = [s for e, s in samples if e >= warm_up(count)]
    first, last = (warm[0], warm[-1]) if warm else (samples[0][1], samples[-1][1]) if samples else ({}, {})
    return {"runs": len(runs), "sweep_id": sweep_id, "samples": len(samples),
            **(growth(first, last) if first else {"error": "the runner was never seen"}),
            "peak_rss_mb": round(max((s["rss"] for _, s in samples), default=0) / MB, 1)}


# -- the store's records -----------------------------------------------------------------------------------
def check_records(store_dir: str, prefixes: dict[str, int], sweep_id: str | None, sweep_runs: int) -> dict:
    """Every run each phase made, once, finished, with one epoch row per epoch; any other run is a stray."""
    from tui_trainer.runs.store import RunStore

    with RunStore(store_dir) as store:
        runs = store.list_runs()
        report: dict[str, dict] = {}
        for prefix, expected in prefixes.items():
            mine = [r for r in runs if r.name.startswith(prefix + "-")]
            names = [r.name for r in mine]
            report[prefix] = {"expected": expected, "found": len(mine), "lost": expected - len(set(names)),
                              "duplicated": len(names) - len(set(names)),
                              "not_finished": [f"{r.name} {r.status}" for r in mine if r.status != "finished"],
                              "bad_epochs": [r.name for r in mine
                                             if [e["epoch"] for e in store.epochs(r.id)] != list(range(1, r.epochs + 1))]}
        if sweep_id:
            mine = [r for r in runs if r.sweep_id == sweep_id]
            names = [r.name for r in mine]
            report["sweep"] = {"expected": sweep_runs, "found": len(mine), "lost": sweep_runs - len(set(names)),
                               "duplicated": len(names) - len(set(names)),
                               "not_finished": [f"{r.name} {r.status}" for r in mine if r.status != "finished"],
                               "bad_epochs": [r.name for r in mine if [e["epoch"] for e in store.epochs(r.id)]
                                              != list(range(1, r.epochs + 1))]}
        known = {r.id for p in prefixes for r in runs if r.name.startswith(p + "-")} | \
            {r.id for r in runs if sweep_id and r.sweep_id == sweep_id}
        report["strays"] = {"found": len([r for r in runs if r.id not in known])}
    return report


def command_seconds(store_dir: str) -> tuple[float, float]:
    """`scratch-tui runs` in a fresh process: (wall, CPU) seconds. CPU time says more on a loaded machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tui_trainer", "runs", "--runs-dir", store_dir], cwd=ROOT,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def listing_times(store_dir: str, empty_dir: str) -> dict:
    """The listing of this store, and of an empty one side by side (the same load): medians of 3 and 5."""
    from tui_trainer.runs.store import RunStore

    full, empty = [], []
    for _ in range(3):  # interleaved, so that a slow spell of the machine falls on both
        full.append(command_seconds(store_dir))
        empty.append(command_seconds(empty_dir))
    calls = []
    with RunStore(store_dir) as store:
        for _ in range(5):
            started = time.perf_counter()
            listed = len(store.list_runs())
            calls.append(time.perf_counter() - started)
    return {"runs": listed, "command_s": round(statistics.median(w for w, _ in full), 3),
            "command_cpu_s": round(statistics.median(c for _, c in full), 3),
            "empty_store_command_s": round(statistics.median(w for w, _ in empty), 3),
            "empty_store_command_cpu_s": round(statistics.median(c for _, c in empty), 3),
            "list_runs_ms": round(1000 * statistics.median(calls), 2)}


def store_size(store_dir: str) -> dict:
    from tui_trainer.runs.store.connection import STORE_FILE

    files = [p for p in Path(store_dir).rglob("*") if p.is_file()]
    database = sum(p.stat().st_size for p in files if p.name.startswith(STORE_FILE))  # with its -wal and -shm
    return {"total_mb": round(sum(p.stat().st_size for p in files) / MB, 1), "database_mb": round(database / MB, 1),
            "files": len(files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count (default 1: the full soak)")
    parser.add_argument("--keep", metavar="DIR", help="make the store in DIR and keep it (default: a temporary one)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)  # a child's own phase
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="seq", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # a child: its one phase, one JSON line
        if args.phase == "sequential":
            result = phase_sequential(args.store, args.count, args.prefix)
        elif args.phase == "lister":
            result = phase_lister(args.store, args.stop_file)
        else:
            result = phase_app(args.store, args.count)
        print(json.dumps(result), flush=True)
        return

    sys.path.insert(0, str(ROOT / "bench"))
    import torch
    from machine import describe_machine

    counts = {"sequential": round(200 * args.scale), "concurrent": max(1, round(10 * args.scale)),
              "app": max(1, round(50 * args.scale)), "sweep": max(2, round(50 * args.scale) // 2 * 2)}
    home = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="soak-"))
    store_dir = str(home / "runs")
    print(f"soak at scale {args.scale:g}: {counts}; {describe_machine(torch.device('cpu'))}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    report: dict = {"scale": args.scale, "counts": counts}
    began = time.monotonic()

    def timed(name: str, value: dict, since: float) -> dict:
        value["seconds"] = round(time.monotonic() - since, 1)
        print(f"{name}: {json.dumps(value)}", flush=True)
        report[name] = value
        return value

    from tui_trainer.runs.store import RunStore
    empty_dir = str(home / "empty")
    for folder in (store_dir, empty_dir):
        RunStore(folder).close()  # an empty store, so that the first listing has one to read
    timed("listing_at_start", listing_times(store_dir, empty_dir), time.monotonic())
    timed("store_at_start", store_size(store_dir), time.monotonic())

    since = time.monotonic()
    timed("sequential", result_of(child("sequential", "--store", store_dir, "--count", str(counts["sequential"])),
                                  timeout=3600), since)

    since = time.monotonic()
    stop_file = str(home / "stop-listing")
    lister = child("lister", "--store", store_dir, "--stop-file", stop_file)
    trainers = [child("sequential", "--store", store_dir, "--count", str(counts["concurrent"]), "--prefix", f"par{k}")
                for k in range(4)]
    trained = [result_of(t, timeout=3600) for t in trainers]
    Path(stop_file).touch()
    timed("concurrent", {"trainers": trained, "lister": result_of(lister, timeout=120)}, since)

    since = time.monotonic()
    timed("app", result_of(child("app", "--store", store_dir, "--count", str(counts["app"])), timeout=3600), since)

    since = time.monotonic()
    runner = timed("runner", phase_runner(store_dir, counts["sweep"]), since)

    prefixes = {"seq": counts["sequential"], **{f"par{k}": counts["concurrent"] for k in range(4)},
                "app": counts["app"]}
    timed("records", check_records(store_dir, prefixes, runner.get("sweep_id"), counts["sweep"]), time.monotonic())
    timed("listing_at_end", listing_times(store_dir, empty_dir), time.monotonic())
    timed("store_at_end", store_size(store_dir), time.monotonic())
    print(f"soak done in {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end",
          flush=True)
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
