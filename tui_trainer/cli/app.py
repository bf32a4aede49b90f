"""`scratch-tui` with no command, `attach`, `serve` and `devices`: the commands that open or describe."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TextIO

from .common import EXIT_USAGE, error, table

def open_app(attach: str | None = None, models_dir: str | None = None) -> int:
    # `serve` runs the app with stdout piped to textual-serve, naming its driver in TEXTUAL_DRIVER
    if not sys.stdout.isatty() and not os.environ.get("TEXTUAL_DRIVER"):
        print("scratch-tui: the app needs a terminal; for scripts and pipes use `scratch-tui train`",
              file=sys.stderr)
        return EXIT_USAGE
    if models_dir and not os.path.isdir(models_dir):
        return error(f"--models-dir: {models_dir} is not a folder", "scratch-tui", EXIT_USAGE)
    from ..ui.app import run_app

    return run_app(attach=attach, models_dir=models_dir)


def run_attach(args: argparse.Namespace) -> int:
    from ..runs.store import RunNotFound, RunStore, StoreError

    if args.runs_dir:
        os.environ["SCRATCH_TUI_HOME"] = args.runs_dir  # the app opens the same store
    try:
        with RunStore(args.runs_dir) as store:
            run_id = store.resolve(args.run_id) if args.run_id else store.latest_running()
            why = store.get_run(run_id).unreadable if run_id else ""
    except (StoreError, RunNotFound) as exc:
        return error(str(exc), "attach", EXIT_USAGE)
    if run_id is None:
        return error("no run is running; `scratch-tui runs` lists them, `scratch-tui train --detach` starts one",
                      "attach", EXIT_USAGE)
    if why:
        return error(f"run {run_id} cannot be opened: {why}", "attach")
    return open_app(attach=run_id, models_dir=getattr(args, "models_dir", None))


def run_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import serve
    except ImportError:
        return error("textual-serve is not installed; pip install textual-serve", "serve")
    # serve.py guards it: a token in the URL it prints, same-origin WebSockets, the address checked first
    command = f"{shlex.quote(sys.executable)} -m tui_trainer"
    models_dir = getattr(args, "models_dir", None)
    if models_dir:  # the served app imports model files from here too: whoever holds the token may run them
        if not os.path.isdir(models_dir):
            return error(f"--models-dir: {models_dir} is not a folder", "serve", EXIT_USAGE)
        command += f" --models-dir {shlex.quote(os.path.abspath(models_dir))}"
    return serve(command, args.host, args.port)


def run_devices(out: TextIO) -> int:
    from ..engine.devices import gpu_stats, list_devices, pynvml_installed, runtime_versions

    versions = runtime_versions()
    print(f"torch {versions['torch']}, CUDA {versions['cuda'] or 'none'}, cuDNN {versions['cudnn'] or 'none'}, "
          f"CPU threads {versions['cpu_threads']}", file=out)
    devices = list_devices()
    # live readings for the cards CUDA sees here, by its numbering (NVML's may differ)
    live = {f"cuda:{s.cuda_index}": s for s in gpu_stats() if s.cuda_index is not None}
    rows = [("DEVICE", "NAME", "MEMORY", "COMPUTE") + (("UTIL", "TEMP", "POWER") if live else ())]
    for d in devices:
        memory = f"{d.memory_bytes / 2**30:.1f} GiB" if d.memory_bytes else "-"
        row = (d.name, d.label, memory, d.compute_capability or "-")
        if live:
            s = live.get(d.name)
            row = (d.name, d.label, s and s.memory or memory, d.compute_capability or "-",
                   s and s.utilization or "-", s and s.temperature or "-", s and s.power or "-")
        rows.append(row)
    for line in table(rows):
        print(line, file=out)
    if any(d.kind == "cuda" for d in devices) and not pynvml_installed():
        print("install nvidia-ml-py for live GPU stats", file=out)
    return 0
