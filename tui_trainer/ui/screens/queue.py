"""The queue: runs waiting to train, in order, then the queue's runs still training; reorder, cancel,
pause and resume the queue, start its runner, open a run.

Everything shown is read from the store (runs/queue.py), again every second off the UI thread, so a
runner or a `scratch-tui queue` command in another terminal shows here as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...format import fit_columns
from ...runs import queue as run_queue
from ...runs.queue import QueuedRun, QueueStatus
from ...runs.spawn import SpawnError
from ...runs.store import RunNotFound, RunStore, StoreError
from ..markup import plain
from ..opening import cannot_open
from ..widgets.footer import KeyFooter
from ..widgets.run_table import RunTable
from .help import HELP_IN_FOOTER
from .prompt import confirm

REFRESH_S = 1.0
# (key, header); fitted to the width like the runs screen's: the hyperparameters, names and sweeps are
# cut first, then whole columns go in DROP order
COLUMNS = (("pos", "#"), ("id", "id"), ("name", "name"), ("sweep", "sweep"), ("device", "device"),
           ("state", "state"), ("params", "hyperparameters"))
SQUEEZE = ("params", "name", "sweep")
DROP = ("device", "name", "sweep")


def runner_line(status: QueueStatus, started: int | None = None) -> str:
    """One sentence on the runner, for a notification after queueing and for the queue's status line."""
    if started is not None:
        return f"Started the queue's runner (pid {started})."
    if status.paused:
        return "The queue is paused: F3, then p, resumes it."
    if status.running:
        return f"The queue's runner is running (pid {status.runner_pid})."
    if status.waiting:
        return "The queue's runner is not running: F3, then s, starts it."
    return "The queue's runner is not running (nothing waits)."


def hyperparameters(run: QueuedRun) -> str:
    c = run.config
    if c is None:  # queued by another version: why this one cannot train it, in the place of its settings
        return f"cannot be opened: {run.unreadable}"
    return f"lr={c.lr:g} seed={c.seed} ep={c.epochs} bs={c.batch_size} {c.optimizer} {c.model} {c.dataset}"


@dataclass(frozen=True)
class QueueView:
    """What the screen shows, read in one go: the runs in order and the runner's state."""

    runs: list[QueuedRun]
    status: QueueStatus

    @classmethod
    def read(cls, store: RunStore) -> "QueueView":
        return cls(run_queue.queued(store, include_running=True), run_queue.runner_status(store))


class QueueScreen(Screen):
    HELP_TITLE = "Queue"
    BINDINGS = [
        # the footer holds what fits 80 columns; help and the palette list every key
        Binding("enter", "open", "Open", tooltip="Open a training run; a waiting one: its place"),
        Binding("shift+up,left_square_bracket", "move(-1)", "Up", tooltip="Move the run up the queue"),
        Binding("shift+down,right_square_bracket", "move(1)", "Down", tooltip="Move the run down the queue"),
        Binding("x,delete", "cancel", "Cancel", tooltip="Cancel the waiting run (asks; it is deleted)"),
        Binding("p", "toggle_pause", "Pause", tooltip="Pause/Resume the queue"),
        Binding("s", "start_runner", "Start", tooltip="Start the queue's runner"),
        Binding("escape", "back", "Back"),
        HELP_IN_FOOTER,
    ]

    def __init__(self, store: RunStore) -> None:
        super().__init__()
        self.store = store
        self.queue_view: QueueView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="queue-status")
        yield RunTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="queue-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#queue-table").focus()
        self.reload()
        self.set_interval(REFRESH_S, self._poll)

    # -- data --------------------------------------------------------------
    @work(thread=True, exclusive=True, group="queue-poll", exit_on_error=False)
    def _poll(self) -> None:
        """Off the UI thread: a queue of hundreds of runs takes a while to read."""
        try:
            view = QueueView.read(self.store)
        except (StoreError, RunNotFound):
            return  # busy for now (another process writing): the next poll asks again
        self.app.call_from_thread(self.show, view)

    def reload(self) -> None:
        """Read the store now, on this thread: after a key, so what it did shows at once."""
        try:
            self.show(QueueView.read(self.store))
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def show(self, view: QueueView) -> None:
        if not self.is_attached:
            return  # read by a poll that finished after the screen was closed
        if view == self.queue_view:
            return  # nothing moved: the table and the cursor are left alone
        self.queue_view = view
        self._fill_table()
        self._draw_status()

    def _draw_status(self) -> None:
        assert self.queue_view is not None
        status, runs = self.queue_view.status, self.queue_view.runs
        training = sum(r.position is None for r in runs)
        runner = f"runner running (pid {status.runner_pid})" if status.running else "runner not running"
        paused = "PAUSED (p resumes)" if status.paused else "not paused"
        per = f"{status.per_device} run{'s' if status.per_device != 1 else ''} per device"
        line = f"{status.waiting} waiting · {training} training · {runner} · {paused} · {per}"
        widget = self.query_one("#queue-status", Static)
        widget.update(plain(line))
        widget.set_class(status.paused, "paused")
        detail = self.query_one("#queue-detail", Static)
        if not runs:
            detail.update("The queue is empty: in setup, F6 queues the form's config and F7 the sweep of "
                          "its marked fields (F4 marks one).")
        else:
            detail.update(plain(runner_line(status)))

    def _cells(self, run: QueuedRun) -> dict[str, Text]:
        sweep = run.sweep_name or run.sweep_id or "-"
        device = run.config.device if run.config else "-"
        return {"pos": Text(str(run.position) if run.position is not None else "-"), "id": Text(run.id),
                "name": Text(run.name or "-"), "sweep": Text(sweep), "device": Text(device),
                "state": Text(str(run.state)), "params": Text(hyperparameters(run))}

    def _fit(self, rows: list[dict[str, Text]]) -> dict[str, int]:
        table = self.query_one("#queue-table", DataTable)
        natural = {key: max([cell_len(header)] + [row[key].cell_len for row in rows]) for key, header in COLUMNS}
        minimum = {key: min(natural[key], max(cell_len(header), 8)) for key, header in COLUMNS}
        width = table.size.width or self.app.size.width
        if table.size.height and len(rows) > table.size.height - 1:
            width -= table.styles.scrollbar_size_vertical
        return fit_columns(natural, minimum, width, 2 * table.cell_padding, SQUEEZE, DROP, gap_after_last=True)

    def _fill_table(self) -> None:
        table = self.query_one("#queue-table", RunTable)
        selected = self.selected()
        runs = self.queue_view.runs if self.queue_view else []
        rows = [self._cells(r) for r in runs]
        table.refit(COLUMNS, self._fit(rows))
        for run, row in zip(runs, rows):
            for cell in row.values():
                cell.no_wrap, cell.overflow = True, "ellipsis"
            table.add_row(*(row[key] for key in table.fitted), key=run.id)
        ids = [r.id for r in runs]
        if selected is not None and selected.id in ids:
            table.move_cursor(row=ids.index(selected.id))

    @on(RunTable.Resized)
    def _table_resized(self) -> None:
        shown = self.query_one("#queue-table", RunTable).fitted
        if self.queue_view and self._fit([self._cells(r) for r in self.queue_view.runs]) != shown:
            self._fill_table()

    def selected(self) -> QueuedRun | None:
        table = self.query_one("#queue-table", DataTable)
        if not table.row_count or self.queue_view is None:
            return None
        run_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.queue_view.runs if r.id == run_id), None)

    def _waiting(self, doing: str) -> QueuedRun | None:
        """The selected run, when it is still waiting; None (said why) otherwise."""
        run = self.selected()
        if run is None:
            self.notify("The queue is empty.", severity="warning")
            return None
        if run.position is None:
            self.notify(f"Run {run.id} is training already: only waiting runs {doing}. Open it (Enter) to stop it.",
                        severity="warning", markup=False)
            return None
        return run

    # -- actions -----------------------------------------------------------
    @on(DataTable.RowSelected, "#queue-table")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.config is None:
            self.notify(cannot_open(run.id, run.unreadable), severity="error", markup=False)
            return
        if run.position is None:  # training: live, on the training screen, as the runs screen opens one
            self.app.attach(run.id)
            return
        assert self.queue_view is not None
        status = self.queue_view.status
        waits = " The queue is paused: p resumes it." if status.paused else (
            "" if status.running else " The runner is not running: s starts it.")
        self.notify(f"Run {run.id} is queued at position {run.position} of {status.waiting}; it starts when "
                    f"{run.config.device} has a free slot.{waits}", markup=False)

    def action_move(self, by: int) -> None:
        run = self._waiting("move")
        if run is None:
            return
        try:
            run_queue.move(self.store, run.id, by=by)
        except (run_queue.QueueError, RunNotFound, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
        self.reload()

    def action_cancel(self) -> None:
        run = self._waiting("are cancelled")
        if run is None:
            return

        def cancel() -> None:
            try:
                run_queue.cancel(self.store, run.id)
            except (run_queue.QueueError, RunNotFound, StoreError) as exc:  # started meanwhile
                self.notify(str(exc), severity="warning", markup=False)
            else:
                self.notify(f"Took run {run.id} off the queue.")
            self.reload()

        confirm(self.app, f"Cancel queued run {run.id} (it never trained; it is deleted)? Type yes:", "cancel it",
                cancel)

    def action_toggle_pause(self) -> None:
        try:
            if run_queue.runner_status(self.store).paused:
                started = run_queue.unpause_queue(self.store)
                self.notify("Queue resumed. " + runner_line(run_queue.runner_status(self.store), started))
            else:
                run_queue.pause_queue(self.store)
                self.notify("Queue paused: nothing new starts; the runs training go on.")
        except (SpawnError, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
        self.reload()

    def action_start_runner(self) -> None:
        try:
            started = run_queue.ensure_runner(self.store)
            status = run_queue.runner_status(self.store)
        except (SpawnError, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if started is None and not status.running and not status.paused:
            self.notify("Nothing waits in the queue: the runner starts when there is work for it.")
        else:
            self.notify(runner_line(status, started), markup=False)
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()
