"""Every recorded run: sort, filter, mark several to compare curves and configs, open, resume, tidy up.

Runs of one sweep sit together under a header row (the sweep's id and name, how many of its runs are done);
`w` (or Enter on the header) opens its table, the sweep view. Queued runs say their place in the queue."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from ...command_line import command_line
from ...engine.config import ConfigError
from ...engine.events import RunState
from ...runs.export import export_run
from ...runs.retention import (disk_use, epoch_checkpoint, epoch_files, fork_checkpoint,
                               kept_checkpoints, parse_fork_point, prune_checkpoints, step_files)
from ...runs.store import RunNotFound, RunRecord, RunStore, RunSummary, StoreError
from ...format import duration, fit_columns, percent
from ..markup import markup
from ..paths import inside
from ..opening import open_run, queue_positions, queued_message
from ..widgets.chart import Chart
from ..widgets.footer import KeyFooter
from ..widgets.run_table import RunTable
from .help import HELP_IN_FOOTER
from .layers import LayersCompareScreen
from .sweep import SweepScreen
from .prompt import PromptScreen, confirm

# plotext colour names: run i of the marked runs always gets COLORS[i % len]
COLORS = ("cyan", "orange", "magenta", "green", "red", "blue", "yellow", "white")
SORT_KEYS = {
    "started": lambda r: -r.started_at,
    "name": lambda r: (r.name or r.id).lower(),
    "best val": lambda r: -(r.best_val_acc or 0),
    "test": lambda r: -(r.test_acc or 0),
    "status": lambda r: r.status,
    "model": lambda r: r.model,
}


# The table's columns: (key, header). It is fitted to the screen's width: names, models and datasets are
# cut with an ellipsis, then whole columns go in DROP order; id, status, epochs and the accuracies stay.
COLUMNS = (("mark", " "), ("id", "id"), ("name", "name"), ("model", "model"), ("dataset", "dataset"),
           ("status", "status"), ("epochs", "epochs"), ("best", "best val"), ("test", "test"),
           ("duration", "duration"), ("started", "started"))
SQUEEZE = ("name", "model", "dataset")
DROP = ("duration", "started", "dataset", "model", "name")
CHART_HINT = ("Mark runs with space", "to overlay their curves")
SWEEP_ROW = "sweep:"  # + a sweep id: the key of a sweep's header row (run ids are hex, never this)


@dataclass(frozen=True)
class SweepGroup:
    """A sweep's header row: every run of the sweep, whether the filter shows it or not."""

    id: str
    name: str
    runs: tuple[RunSummary, ...]

    @property
    def key(self) -> str:
        return SWEEP_ROW + self.id


def swept_names(names: list[str], sweep_name: str) -> list[str]:
    """The runs of a sweep by what sets them apart: a sweep names its runs "NAME lr=0.001 seed=0", and at
    80 columns the name column showed only "NAME…" on every row. The words all of them start with (the
    sweep's name, a value no axis changed) go: the sweep's header row above says them."""
    split = [name.split(" ") for name in names]
    if len(split) > 1:
        common = 0
        while all(len(words) > common + 1 and words[common] == split[0][common] for words in split):
            common += 1
    else:  # one run: only the sweep's own name can go
        common = len(sweep_name.split(" ")) if sweep_name and names[0].startswith(sweep_name + " ") else 0
    return [" ".join(words[common:]) for words in split]


def size(n: int) -> str:
    """Bytes as the prune prompt says them: 812 KB, 12.3 MB."""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(n, 0) / 1e3:.0f} KB"


def run_keep(store: RunStore, run_id: str) -> int:
    return int(store.get_run(run_id).config.get("keep_checkpoints", 3))


def command_or_why(record: RunRecord) -> str:
    """The command line that repeats the run; for a run this version cannot read, why it cannot be opened."""
    why = record.unreadable
    return f"cannot be opened: {why}" if why else command_line(record.train_config())


def val_curve(store: RunStore, run_id: str) -> list[tuple[float, float]]:
    return [(e["epoch"], e["val_acc"]) for e in store.epochs(run_id) if e.get("val_acc") is not None]


def compare_series(store: RunStore, marked: list[str]) -> list[tuple[str, str, tuple, tuple, float | None]]:
    """(label, colour, epochs, val accs, fork point) of each line of the runs chart: each marked run, and a marked
    fork's parent (unless marked itself) dimmed; a fork's line starts at its parent's point where it forked."""
    series = []
    curves: dict[str, list[tuple[float, float]]] = {}

    def curve(run_id: str) -> list[tuple[float, float]]:
        if run_id not in curves:
            curves[run_id] = val_curve(store, run_id)
        return curves[run_id]

    parents = []
    for i, run_id in enumerate(marked):
        record = store.get_run(run_id)
        parent, at = getattr(record, "parent_id", ""), getattr(record, "parent_epoch", None)
        try:
            points = curve(run_id)
        except StoreError:  # a damaged log: no line for it, the others drawn
            points = []
        fork_at = None
        if parent and at is not None:
            try:
                start = [p for p in curve(parent) if p[0] == at]
            except (RunNotFound, StoreError):  # the parent was deleted: the fork's own epochs
                start = []
            points = start + [p for p in points if p[0] > at]
            fork_at = float(at)
            if parent not in marked and parent not in parents:
                parents.append(parent)
        colour = COLORS[i % len(COLORS)]
        series.append((run_id, colour, tuple(p[0] for p in points), tuple(p[1] for p in points), fork_at))
    for parent in parents:
        try:
            points = curve(parent)
        except (RunNotFound, StoreError):
            continue
        series.append((f"{parent} (parent)", "gray", tuple(p[0] for p in points), tuple(p[1] for p in points), None))
    return series


def config_diff(configs: dict[str, dict]) -> list[str]:
    """Lines naming each setting that differs among the runs, with every run's value."""
    keys = sorted({k for c in configs.values() for k in c})
    lines = []
    for key in keys:
        values = [c.get(key) for c in configs.values()]
        if any(v != values[0] for v in values):
            lines.append(f"{key}: " + " | ".join(f"{rid}={v}" for rid, v in zip(configs, values)))
    return lines


class RunsScreen(Screen):
    HELP_TITLE = "Runs"
    BINDINGS = [
        # the footer holds what fits 80 columns; help and the palette list every key
        Binding("enter", "open", "Open"),
        Binding("space", "mark", "Mark"),
        Binding("o", "sort", "Sort", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("r", "rename", "Rename", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("x", "export", "Export", show=False),
        Binding("u", "resume", "Resume"),
        Binding("w", "sweep", "Sweep", tooltip="Sweep view: the table of the selected run's sweep"),
        Binding("l", "compare_layers", "Layers", tooltip="Compare two marked runs layer by layer: at init and now"),
        Binding("f", "fork", "Fork", show=False,
                tooltip="Fork the run from a checkpoint: setup opens with its config, F5 starts the fork"),
        Binding("c", "prune", "Prune", show=False,
                tooltip="Delete the run's old checkpoints (keeps the newest epoch's and the best; asks)"),
        Binding("ctrl+l", "refresh", "Refresh", show=False),
        Binding("escape", "back", "Back"),
        HELP_IN_FOOTER,
    ]

    def __init__(self, store: RunStore) -> None:
        super().__init__()
        self.store = store
        self.runs: list[RunSummary] = []
        self.marked: list[str] = []
        self.sort_by = "started"
        self.filter_text = ""
        self.positions: dict[str, int] = {}  # queued runs' places in the queue
        self.shown_names: dict[str, str] = {}  # a sweep's runs by their swept values (swept_names)
        self.compare_series: list[tuple[str, str, tuple, tuple, float | None]] = []  # the chart's lines, as drawn

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter by id, name, model, dataset or status", id="runs-filter", compact=True)
        yield RunTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="runs-compare"):
            yield Chart(id="runs-chart")
            # scrolls: several marked runs' config diff ran past the bottom of an 80x24 screen
            with VerticalScroll(id="runs-side"):
                yield Static("", id="runs-detail")
                yield Static("", id="runs-diff")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        self.reload()
        table.focus()
        self.set_interval(2.0, self._poll)  # running runs move on by themselves

    # -- data --------------------------------------------------------------
    def _positions(self, runs: list[RunSummary]) -> dict[str, int]:
        if not any(r.status == RunState.QUEUED for r in runs):
            return {}
        try:
            return queue_positions(self.store)
        except StoreError:
            return self.positions

    def _poll(self) -> None:
        try:
            runs = self.store.list_runs()
            positions = self._positions(runs)
        except StoreError:
            return  # busy for now (another process writing): the next poll asks again
        if runs != self.runs or positions != self.positions:  # rebuilt only when a run moved
            self.reload(runs, positions)

    def reload(self, runs: list[RunSummary] | None = None, positions: dict[str, int] | None = None) -> None:
        self.runs = self.store.list_runs() if runs is None else runs
        self.positions = self._positions(self.runs) if positions is None else positions
        known = {r.id for r in self.runs}
        self.marked = [m for m in self.marked if m in known]
        self._fill_table()
        self._draw_compare()

    def visible_runs(self) -> list[RunSummary]:
        needle = self.filter_text.lower()
        shown = [r for r in self.runs
                 if not needle or any(needle in str(v).lower() for v in (r.id, r.name, r.model, r.dataset, r.status,
                                                                         r.sweep_id, r.sweep_name))]
        return sorted(shown, key=SORT_KEYS[self.sort_by])

    def visible_rows(self) -> list[RunSummary | SweepGroup]:
        """The table's rows in order: runs in the sort's order, the runs of a sweep together under its header
        row, which stands where the sweep's first run would."""
        shown = self.visible_runs()
        groups: dict[str, list[RunSummary]] = {}
        for r in self.runs:
            if r.sweep_id:
                groups.setdefault(r.sweep_id, []).append(r)
        self.shown_names = {}
        for members in groups.values():
            self.shown_names.update(zip((m.id for m in members),
                                        swept_names([m.name or m.id for m in members], members[0].sweep_name)))
        rows: list[RunSummary | SweepGroup] = []
        for r in shown:
            if not r.sweep_id:
                rows.append(r)
            elif r.sweep_id in groups:
                members = groups.pop(r.sweep_id)
                rows.append(SweepGroup(r.sweep_id, next((m.sweep_name for m in members if m.sweep_name), ""),
                                       tuple(members)))
                rows.extend(m for m in shown if m.sweep_id == r.sweep_id)
        return rows

    def _cells(self, r: RunSummary, last_of_sweep: bool = False) -> dict[str, Text]:
        if r.id in self.marked:
            mark = Text("●", style=COLORS[self.marked.index(r.id) % len(COLORS)])
        elif r.sweep_id:  # a guide down from the sweep's header row
            mark = Text("└" if last_of_sweep else "│", style="dim")
        else:
            mark = Text(" ")
        position = self.positions.get(r.id)
        status = f"queued #{position}" if r.status == RunState.QUEUED and position else r.status_text
        # Text cells: a plain string cell is read as markup, and names are the user's
        name = self.shown_names.get(r.id) or r.name or "-"
        return {"mark": mark, "id": Text(r.id), "name": Text(name), "model": Text(r.model),
                "dataset": Text(r.dataset), "status": Text(status), "epochs": Text(f"{r.epochs_done}/{r.epochs}"),
                "best": Text(percent(r.best_val_acc)), "test": Text(percent(r.test_acc)),
                "duration": Text(duration(r.duration_s)),
                "started": Text(time.strftime("%m-%d %H:%M", time.localtime(r.started_at)))}

    def _group_cells(self, g: SweepGroup) -> dict[str, Text]:
        """A sweep's header row: its id and name, how many of its runs finished, its best accuracies."""
        def one_or_mixed(values: set[str]) -> str:
            return values.pop() if len(values) == 1 else "mixed"

        done = sum(r.status == RunState.FINISHED for r in g.runs)
        best = [r.best_val_acc for r in g.runs if r.best_val_acc is not None]
        test = [r.test_acc for r in g.runs if r.test_acc is not None]
        style = "bold"
        cells = {"mark": "▾", "id": g.id, "name": g.name or "sweep",
                 "model": one_or_mixed({r.model for r in g.runs}), "dataset": one_or_mixed({r.dataset for r in g.runs}),
                 "status": f"{done}/{len(g.runs)} done", "epochs": "",
                 "best": percent(max(best)) if best else "", "test": percent(max(test)) if test else "",
                 "duration": "", "started": time.strftime("%m-%d %H:%M", time.localtime(min(r.started_at for r in g.runs)))}
        return {key: Text(value, style=style) for key, value in cells.items()}

    def _row_cells(self) -> list[tuple[str, dict[str, Text]]]:
        """(row key, cells) of every row the table shows."""
        rows = self.visible_rows()
        out = []
        for i, item in enumerate(rows):
            if isinstance(item, SweepGroup):
                out.append((item.key, self._group_cells(item)))
            else:
                following = rows[i + 1] if i + 1 < len(rows) else None
                last = bool(item.sweep_id) and not (isinstance(following, RunSummary)
                                                    and following.sweep_id == item.sweep_id)
                out.append((item.id, self._cells(item, last)))
        return out

    def _fit(self, rows: list[dict[str, Text]]) -> dict[str, int]:
        """The columns that fit the table's width now, with their widths."""
        table = self.query_one("#runs-table", DataTable)
        natural = {key: max([cell_len(header)] + [row[key].cell_len for row in rows]) for key, header in COLUMNS}
        minimum = {key: min(natural[key], max(cell_len(header), 8)) for key, header in COLUMNS}
        width = table.size.width or self.app.size.width
        if table.size.height and len(rows) > table.size.height - 1:  # rows below the header overflow
            width -= table.styles.scrollbar_size_vertical
        gap = 2 * table.cell_padding
        if self.shown_names:
            # a sweep's runs differ only in their names (their swept values): keep those whole, letting the
            # model and the dataset go first (the sweep's header row says them)
            fitted = fit_columns(natural, minimum, width, gap, ("model", "dataset"), DROP, gap_after_last=True)
            if fitted.get("name") == natural["name"]:
                return fitted
        return fit_columns(natural, minimum, width, gap, SQUEEZE, DROP, gap_after_last=True)

    def _fill_table(self) -> None:
        table = self.query_one("#runs-table", RunTable)
        selected = self.selected_key()
        keyed = self._row_cells()
        fitted = self._fit([cells for _, cells in keyed])
        table.refit(COLUMNS, fitted)
        for key, row in keyed:
            for cell in row.values():  # a cell wider than its column is drawn cut short, and kept whole
                cell.no_wrap, cell.overflow = True, "ellipsis"
            table.add_row(*(row[column] for column in fitted), key=key)
        if selected is not None and selected in {key for key, _ in keyed}:
            table.move_cursor(row=table.get_row_index(selected))
        self._draw_detail()
        self.refresh_bindings()

    @on(RunTable.Resized)
    def _table_resized(self) -> None:
        shown = self.query_one("#runs-table", RunTable).fitted
        if self._fit([cells for _, cells in self._row_cells()]) != shown:
            self._fill_table()

    def selected_key(self) -> str | None:
        """The selected row's key: a run id, or SWEEP_ROW + a sweep id on a sweep's header row."""
        try:
            table = self.query_one("#runs-table", DataTable)
        except NoMatches:
            return None
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected_id(self) -> str | None:
        """The selected run's id; None on a sweep's header row."""
        key = self.selected_key()
        return None if key is None or key.startswith(SWEEP_ROW) else key

    def selected_run(self) -> RunSummary | None:
        run_id = self.selected_id()
        return next((r for r in self.runs if r.id == run_id), None)

    def selected_sweep(self) -> str | None:
        """The sweep of the selected header row or run; None for a run of no sweep."""
        key = self.selected_key()
        if key is not None and key.startswith(SWEEP_ROW):
            return key[len(SWEEP_ROW):]
        run = self.selected_run()
        return run.sweep_id or None if run else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # shown but greyed out where it cannot act: a queued run is the queue's to start, not resumed
        if action == "resume":
            run = self.selected_run()
            return None if run is None or run.status == RunState.QUEUED else True
        return True

    def _draw_detail(self) -> None:
        detail = self.query_one("#runs-detail", Static)
        key = self.selected_key()
        if key is None:
            detail.update("No runs yet: start one from setup (F5), or `scratch-tui train`." if not self.runs
                          else "No run matches the filter.")
            return
        if key.startswith(SWEEP_ROW):
            sweep_id = key[len(SWEEP_ROW):]
            members = [r for r in self.runs if r.sweep_id == sweep_id]
            counts = {state: sum(r.state == state for r in members) for state in RunState}
            parts = [f"{counts[RunState.FINISHED]}/{len(members)} finished"]
            parts += [f"{counts[s]} {s.value}" for s in (RunState.RUNNING, RunState.PAUSED, RunState.QUEUED,
                                                           RunState.STOPPED, RunState.FAILED, RunState.INTERRUPTED)
                      if counts[s]]
            name = next((r.sweep_name for r in members if r.sweep_name), "")
            detail.update(markup("[b]Sweep $id[/b] $name\n$counts\nw or Enter: its table, one row per config",
                                 id=sweep_id, name=name, counts=" · ".join(parts)))
            return
        try:
            record = self.store.get_run(key)
        except RunNotFound:
            return
        status = record.status_text
        if record.status == RunState.QUEUED and key in self.positions:
            status = f"queued (position {self.positions[key]})"
        template = "[b]$id[/b] $name · $status\n$cli" + ("\n$message" if record.message else "")
        if record.sweep_id:
            template += "\nsweep $sweep · w: its table"
        parent = ""
        if getattr(record, "parent_id", ""):
            template += "\nfork of $parent"
            try:
                forked = self.store.view(record.id, only=("forked_from",)).forked
            except StoreError:  # a damaged log: the row's epoch is enough here
                forked = None
            parent = f"{record.parent_id} at {forked.where() if forked else record.parent_epoch}"
        detail.update(markup(template, id=record.id, name=record.name, status=status,
                             cli=command_or_why(record), message=record.message,
                             sweep=f"{record.sweep_id} {record.sweep_name}".strip(), parent=parent))

    def _draw_compare(self) -> None:
        chart = self.query_one("#runs-chart", Chart)
        plt = chart.plt
        plt.clear_figure()
        plt.title("Validation accuracy % (marked runs)")
        configs = {}
        self.compare_series = compare_series(self.store, self.marked)
        drawn = False
        for label, colour, xs, ys, fork_at in self.compare_series:
            if xs:
                plt.plot(list(xs), list(ys), label=label, color=colour, marker="braille")
                drawn = True
            if fork_at is not None:
                plt.vline(fork_at, colour)  # where the fork left its parent
        for run_id in self.marked:
            configs[run_id] = self.store.get_run(run_id).config
        if drawn:
            plt.xlabel("epoch")
        else:  # an empty box says how to fill it
            lines = CHART_HINT if not self.marked else ("No validation accuracy", "in the marked runs yet")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
            plt.text(lines[0], 0.5, 0.6, alignment="center")
            plt.text(lines[1], 0.5, 0.4, alignment="center")
        chart.refresh()
        diff = self.query_one("#runs-diff", Static)
        if len(configs) >= 2:
            lines = config_diff(configs)
            diff.update(markup("[b]Config diff[/b]\n$diff", diff="\n".join(lines) if lines else "identical configs"))
        else:
            diff.update("Mark runs with space to overlay their curves and compare configs.")

    # -- events and actions ------------------------------------------------
    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self) -> None:
        self._draw_detail()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#runs-table")
    def _selected(self) -> None:
        self.action_open()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._fill_table()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one("#runs-table").focus()

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_sort(self) -> None:
        keys = list(SORT_KEYS)
        self.sort_by = keys[(keys.index(self.sort_by) + 1) % len(keys)]
        self._fill_table()
        self.notify(f"Sorted by {self.sort_by}")

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self._fill_table()
        self._draw_compare()

    def action_compare_layers(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark two runs with space to compare their layers.", severity="warning")
            return
        self.app.push_screen(LayersCompareScreen(self.store, self.marked[:2]))

    def action_refresh(self) -> None:
        self.reload()

    def action_open(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        if key.startswith(SWEEP_ROW):
            self.action_sweep()
            return
        open_run(self.app, self.store, key)

    def action_sweep(self) -> None:
        sweep_id = self.selected_sweep()
        if sweep_id is None:
            run_id = self.selected_id()
            if run_id is not None:
                self.notify(f"Run {run_id} is not part of a sweep.", severity="warning", markup=False)
            return
        self.app.push_screen(SweepScreen(self.store, sweep_id))

    def action_rename(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return

        def check(name: str) -> str | None:
            try:
                self.store.rename(run_id, name)
            except ValueError as exc:
                return str(exc)
            return None

        self.app.push_screen(PromptScreen(f"New name for run {run_id}:", self.store.get_run(run_id).name, check),
                             lambda _: self.reload())

    def action_delete(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        record = self.store.get_run(run_id)
        if record.state.active:
            self.notify("Stop the run before deleting it.", severity="warning")
            return

        def delete() -> None:
            self.store.mark_interrupted()
            if self.store.get_run(run_id).state.active:  # resumed while the question was open
                self.notify(f"Run {run_id} is running again; stop it before deleting it.", severity="warning")
                return
            self.store.delete(run_id)
            self.notify(f"Deleted run {run_id}")
            self.reload()

        confirm(self.app, f"Delete run {run_id} and its checkpoints? Type yes:", "delete", delete)

    def action_export(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return

        # typed by whoever holds the keyboard (under `serve`, someone remote): inside the working directory or
        # the runs dir, nowhere else
        folders = [Path.cwd()] + ([Path(self.store.root)] if getattr(self.store, "root", None) else [])

        def check(path: str) -> str | None:
            fmt = Path(path).suffix.lstrip(".").lower()
            if fmt not in ("csv", "json"):
                return "the file name must end in .csv or .json"
            try:
                target = inside(folders, path, "export path")
            except ValueError as exc:
                return str(exc)
            try:
                text = export_run(self.store, run_id, fmt)
            except ConfigError as exc:  # a run this version cannot read: its JSON needs its settings (CSV does not)
                return str(exc)
            try:
                target.write_text(text, encoding="utf-8")
            except OSError as exc:
                return f"cannot write {path}: {exc.strerror}"
            return None

        self.app.push_screen(PromptScreen(f"Export run {run_id} metrics to (.csv or .json):", f"{run_id}.csv", check),
                             lambda path: path and self.notify(f"Wrote {path}", markup=False))

    def action_fork(self) -> None:
        """Ask for the epoch to fork from, or a checkpoint asked for (step-N), its last checkpoint by default; then
        open setup with the run's config."""
        run = self.selected_run()
        if run is None:
            return
        if run.status == RunState.QUEUED:
            self.notify(f"{queued_message(self.store, run.id)}: it has no checkpoint to fork from yet.",
                        severity="warning", markup=False)
            return
        try:
            folder = self.store.checkpoint_dir(run.id)
            epochs, steps = list(epoch_files(folder)), list(step_files(folder))
            epoch_checkpoint(self.store, run.id, None)
        except (LookupError, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        have = ", ".join(map(str, epochs)) if epochs else "none by epoch"
        asked = f"; on demand: {', '.join(f'step-{s}' for s in steps)}" if steps else ""

        def point(text: str) -> int | str | None:
            return parse_fork_point(text) if text.strip() else None

        def check(text: str) -> str | None:
            try:
                fork_checkpoint(self.store, run.id, point(text))
            except ValueError:
                return (f"epoch: got {text.strip()!r}; a whole number, one of {have}{asked} "
                        f"(empty: its last checkpoint)")
            except (LookupError, StoreError) as exc:
                return str(exc)
            return None

        def chosen(text: str | None) -> None:
            if text is None:
                return
            from .setup import SetupScreen  # setup starts the fork (runs/fork.py, through the launcher)

            try:
                config = self.store.get_run(run.id).train_config()
            except Exception as exc:  # a config the store cannot give back: one line
                self.notify(str(exc), severity="error", markup=False)
                return
            self.app.push_screen(SetupScreen(config, fork=(run.id, point(text))))

        self.app.push_screen(PromptScreen(f"Fork run {run.id} from the checkpoint of epoch\n(with one: {have}{asked}; "
                                          f"empty: its last checkpoint):", str(epochs[-1]) if epochs else "", check),
                             chosen)

    def action_prune(self) -> None:
        """Delete the run's old checkpoints, all but the newest epoch's and the best's, once the user says yes."""
        run = self.selected_run()
        if run is None:
            return
        try:
            kept = kept_checkpoints(self.store, run.id)
            before = disk_use(self.store, run.id)
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if run.status == RunState.RUNNING:
            self.notify(f"Run {run.id} is training: it keeps its own last {run_keep(self.store, run.id)} epoch "
                        f"checkpoints and the best. Prune it once it has stopped.", severity="warning", markup=False)
            return
        epochs = [k.epoch for k in kept if k.name.startswith("epoch-")]
        steps = [k.step for k in kept if k.name.startswith("step-")]
        if len(epochs) <= 1 and len(steps) <= 1:
            self.notify(f"Run {run.id} has no old checkpoints to delete ({size(before)} on disk).", markup=False)
            return

        def prune() -> None:
            try:
                deleted = prune_checkpoints(self.store, run.id, keep=1)
                after = disk_use(self.store, run.id)
            except (ValueError, StoreError, OSError) as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.notify(f"Deleted {len(deleted)} checkpoint file{'s' * (len(deleted) != 1)} of run {run.id}: "
                        f"{size(before - after)} freed, {size(after)} left.", markup=False)
            self._draw_detail()

        lines = [f"Run {run.id}: {len(kept)} checkpoint files, {size(before)} on disk"]
        for k in kept:  # a few to a line: the prompt is 54 columns wide
            name = f"{k.name} {size(k.bytes)}"
            if len(lines) > 1 and len(lines[-1]) + len(name) + 3 <= 54:
                lines[-1] += f" · {name}"
            else:
                lines.append(name)
        lines += ["Delete all but the newest epoch's, the best and the newest on demand?", "Type yes:"]
        confirm(self.app, "\n".join(lines), "delete them", prune)

    def action_resume(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        if run.status == RunState.QUEUED:  # the palette reaches it even while the key is greyed out
            self.notify(f"{queued_message(self.store, run.id)}: the queue's runner starts it; there is nothing to "
                        f"resume.", severity="warning", markup=False)
            return
        self.app.resume(run.id)

    def action_back(self) -> None:
        filter_input = self.query_one("#runs-filter", Input)
        if filter_input.has_focus:  # Esc in the filter drops the filter, not the screen
            filter_input.value = ""
            self.query_one("#runs-table").focus()
            return
        self.app.pop_screen()
