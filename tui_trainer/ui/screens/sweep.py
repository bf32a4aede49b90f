"""One sweep at a glance: a row per config (mean ± std over seeds, best first), the top configs' validation
curves overlaid, and the metric against one swept field.

The numbers are runs/sweep.py's: `sweep_table` makes the rows, `SweepTable.cells` writes them and
`metric_by_field` makes the field chart, as `scratch-tui sweep show` prints them. This screen only lays them
out, and reads the store again every REFRESH_S off the UI thread while the sweep's runs train. `e` extends the
sweep: setup opens with its grid (runs/sweep_life.py's sweep_grid), and its F7 queues what the sweep lacks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...engine.config import SETTINGS
from ...engine.events import RunState
from ...format import counted, fit_columns
from ...runs.queue import QueueError, resolve_sweep, sweep_packs, sweep_records
from ...runs.store import RunDamaged, RunRecord, RunStore, StoreError
from ...runs.study import StudyError, load as load_study, study_link, trial_results, trial_rows
from ...runs.sweep import METRICS, RunResult, SweepError, SweepRow, SweepTable, config_group, metric_by_field, \
    sweep_table
from ...runs.sweep_life import sweep_grid
from ..widgets.charts import CurvesChart, FieldChart, Series
from .help import HELP_IN_FOOTER
from .setup import SetupScreen
from ..opening import open_run
from ..widgets.footer import KeyFooter

REFRESH_S = 1.5  # while its runs train, the view reads the store again this often
TOP_K = 3  # configs whose curves are overlaid, by default; `k` cycles 1 to MAX_K
MAX_K = 5
METRIC_NAMES = {"test_acc": "test acc %", "best_val_acc": "best val %", "seconds": "seconds"}
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclass(frozen=True)
class SweepView:
    """What the screen shows, read from the store in one go (in a worker thread)."""

    sweep_id: str
    name: str
    table: SweepTable
    runs: tuple[tuple[str, str, int], ...]  # (run id, status, epochs done) of every run, in queue order
    curves: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)  # run id -> (epoch, val acc)
    records: tuple[RunRecord, ...] = field(default=(), compare=False)  # those in the table
    left_out: tuple[tuple[str, str], ...] = ()  # (run id, why) of the runs this version cannot read
    # a study's sweep (runs/study.py): every box's trials make the table; run id -> the host that trains it
    hosts: dict[str, str] = field(default_factory=dict)
    study: str = ""  # the study's name; "" for a sweep of this store alone
    pruned: str = ""  # a study's trials its pruner stopped: "2 pruned by asha"; "" when none was
    packs: tuple[tuple[str, str], ...] = ()  # (run id, pack) of the runs that trained together in a pack

    def key(self) -> object:
        """Equal when nothing on screen would change."""
        return (self.table, self.runs, tuple(sorted(self.curves.items())), self.name, self.pruned,
                tuple(sorted(self.hosts.items())), self.packs)

    def training_elsewhere(self, here: str) -> list[tuple[str, str]]:
        """(host, run id) of the study's runs training on other boxes now."""
        return [(self.hosts[run_id], run_id) for run_id, status, _ in self.runs
                if status == RunState.RUNNING and self.hosts.get(run_id, here) != here]
    def cells(self) -> list[list[str]]:
        """The table's cells, with a pack column where runs trained together: P1, P2, ... each a pack (named in
        the note), '-' for a config whose runs trained alone."""
        cells = self.table.cells()
        if not self.packs:
            return cells
        labels = self.pack_labels()
        of_run = dict(self.packs)
        by_config: dict[object, list[str]] = {}
        for record in self.records:
            if record.id in of_run:
                by_config.setdefault(config_group(record.train_config()), []).append(labels[of_run[record.id]])
        rows = [cells[0] + ["pack"]]
        for row, texts in zip(self.table.rows, cells[1:]):
            mine = sorted(set(by_config.get(config_group(row.config), [])), key=lambda p: int(p[1:]))
            rows.append(texts + [",".join(mine) or "-"])
        return rows

    def pack_labels(self) -> dict[str, str]:
        """Each pack's label (P1, P2, ...) in the order its first run was queued."""
        labels: dict[str, str] = {}
        for _, pack in self.packs:
            labels.setdefault(pack, f"P{len(labels) + 1}")
        return labels


def curve_run(row: SweepRow, records: list[RunRecord]) -> str:
    """The run whose curve stands for a config: its best finished run, else its run furthest along."""
    if row.best_run_id:
        return row.best_run_id
    group = config_group(row.config)
    members = [r for r in records if config_group(r.train_config()) == group]
    best = max(members, key=lambda r: r.epochs_done, default=None)
    return best.id if best is not None and best.epochs_done else ""


def row_label(table: SweepTable, cells: list[list[str]], row: SweepRow) -> str:
    """A config as the table's columns name it, `cells` being table.cells(): lr=0.003 wd=0.01."""
    values = cells[table.rows.index(row) + 1]
    return " ".join(f"{f}={v}" for f, v in zip(table.fields, values)) or "config"


def row_key(row: SweepRow) -> str:
    """A config's key in the table: its values of the varied fields (which tell every two configs apart)."""
    return repr(tuple(row.values.items())) or "config"


class SweepTableWidget(DataTable):
    class Resized(Message):
        pass

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())


class SweepScreen(Screen):
    HELP_TITLE = "Sweep"
    DEFAULT_CSS = """
    SweepScreen #sweep-title { height: 1; padding: 0 1; background: $boost; }
    SweepScreen #sweep-table { height: auto; max-height: 45%; width: 100%; }
    SweepScreen #sweep-charts { height: 1fr; min-height: 8; width: 100%; }
    SweepScreen #sweep-curves, SweepScreen #sweep-field { width: 1fr; }
    SweepScreen #sweep-note { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open best", tooltip="Open the evaluation of the config's best run"),
        Binding("f", "next_field", "Field", tooltip="Chart the metric against the next swept field"),
        Binding("m", "next_metric", "Metric", show=False, tooltip="Chart test acc, best val or seconds"),
        Binding("k", "top_k", "Top k", show=False, tooltip="Overlay the curves of the top 1 to 5 configs"),
        Binding("c", "export('csv')", "CSV", tooltip="Export the table as CSV"),
        Binding("j", "export('json')", "JSON", tooltip="Export the table as JSON"),
        Binding("e,f4", "extend", "Extend", tooltip="Extend the sweep: setup opens with its grid; F4 adds values or "
                                                    "seeds, F7 queues the runs it lacks under its id"),
        Binding("ctrl+l", "refresh", "Refresh", show=False),
        Binding("escape,b", "back", "Back"),
        HELP_IN_FOOTER,
    ]

    def __init__(self, store: RunStore, sweep_id: str, top_k: int = TOP_K) -> None:
        super().__init__()
        self.store = store
        self.sweep_id = sweep_id
        self.top_k = top_k
        self.field_index = 0
        self.metric: str | None = None  # None: the one the table sorts by
        self.view: SweepView | None = None
        self.exported: Path | None = None  # the last file written by c or j
        self._epochs: dict[tuple[str, str, int], tuple[tuple[float, float], ...]] = {}  # cache per run state
        self._packs: dict[str, str] = {}  # run id -> its pack ('' alone), read once it has started
        self._fitted: dict[int, int] = {}
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Static("", id="sweep-title")
        yield SweepTableWidget(id="sweep-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="sweep-charts"):
            yield CurvesChart(id="sweep-curves")
            yield FieldChart(id="sweep-field")
        yield Static("", id="sweep-note")
        yield KeyFooter()

    def on_mount(self) -> None:
        try:
            link = study_link(self.store, self.sweep_id)
            self.sweep_id = link.sweep_id if link is not None else resolve_sweep(self.store, self.sweep_id)
            self._show(self.load())
        except (QueueError, StoreError) as exc:
            self.query_one("#sweep-title", Static).update(Text(str(exc)))
        self.query_one("#sweep-table").focus()
        self.set_interval(REFRESH_S, self._poll)

    # -- data ----------------------------------------------------------------
    def load(self) -> SweepView:
        """The sweep as the store has it now (safe in a worker thread: the store is)."""
        link = study_link(self.store, self.sweep_id)
        every = sweep_records(self.store, self.sweep_id) if link is None or self.store.sweep_ids(self.sweep_id) else []
        # a run made by another version has no config to group by: it is counted, and left out of the table
        why = {r.id: r.unreadable for r in every}
        left_out = tuple((run_id, reason) for run_id, reason in why.items() if reason)
        records = [r for r in every if not why[r.id]]
        results = [RunResult.from_record(r) for r in records]
        hosts: dict[str, str] = {}
        pruned = ""
        if link is not None:  # every box's trials, read from the study; the local runs give the curves
            try:
                opened = load_study(link)
            except StudyError as exc:
                raise QueueError(str(exc)) from None
            results = trial_results(opened)
            rows = trial_rows(opened)
            hosts = {row.run_id: row.host for row in rows if row.run_id}
            if cut := sum(row.state == "PRUNED" for row in rows):
                pruned = f"{cut} pruned by {opened.spec.pruner}"
        table = sweep_table(results)
        curves: dict[str, tuple[tuple[float, float], ...]] = {}
        for row in table.rows[:self.top_k]:
            run_id = curve_run(row, records)
            if not run_id:
                continue
            record = next((r for r in records if r.id == run_id), None)
            if record is None:  # a study's run on another box: its curve is in that box's store
                continue
            cache_key = (run_id, record.status, record.epochs_done)
            if cache_key not in self._epochs:  # a finished run's curve is read once
                try:
                    epochs = self.store.epochs(run_id)
                except RunDamaged:  # its log cannot be read: no curve for it, the sweep shown all the same
                    epochs = []
                self._epochs[cache_key] = tuple((e["epoch"], e["val_acc"]) for e in epochs
                                                if e.get("val_acc") is not None)
            curves[run_id] = self._epochs[cache_key]
        name = next((r.sweep_name for r in every if r.sweep_name), link.name if link else "")
        runs = tuple((r.id, r.status, r.epochs_done) for r in every)
        if link is not None:
            runs = tuple((r.run_id, r.state, 0) for r in results)
        # a run's pack is said once, as it starts: read once
        new = [r.id for r in records if r.status != RunState.QUEUED and r.id not in self._packs]
        if new:
            self._packs.update({run_id: "" for run_id in new}, **sweep_packs(self.store, new))
        packs = tuple((r.id, self._packs[r.id]) for r in records if self._packs.get(r.id))
        return SweepView(self.sweep_id, name, table, runs, curves, tuple(records), left_out, hosts,
                         link.name if link else "", pruned, packs)

    def _poll(self) -> None:
        if self._loading or self.view is None:
            return
        self._loading = True
        self.run_worker(self._load_in_thread, thread=True, exclusive=True, group="sweep-load", exit_on_error=False)

    def _load_in_thread(self) -> None:
        try:
            view = self.load()
        except (QueueError, StoreError):
            view = None  # busy or removed for now: the next poll asks again
        finally:
            self._loading = False
        if view is not None:
            self.app.call_from_thread(self._show, view)

    def _show(self, view: SweepView) -> None:
        if not self.is_attached:
            return
        if self.view is not None and view.key() == self.view.key():
            return  # nothing moved: no rebuild, no chart build
        self.view = view
        self._draw_title()
        self._fill_table()
        self._draw_charts()

    # -- drawing -------------------------------------------------------------
    def _draw_title(self) -> None:
        view = self.view
        done = sum(status == RunState.FINISHED for _, status, _ in view.runs)
        training = sum(status == RunState.RUNNING for _, status, _ in view.runs)
        queued = sum(status == RunState.QUEUED for _, status, _ in view.runs)
        metric = "test acc" if view.table.sort_metric == "test_acc" else "best val"
        parts = [f"Sweep {view.sweep_id}" + (f" ({view.name})" if view.name else ""),
                 f"{done}/{len(view.runs)} finished"]
        parts += [f"{training} training"] * bool(training) + [f"{queued} queued"] * bool(queued)
        parts.append(f"{len(view.table.rows)} config{'s' if len(view.table.rows) != 1 else ''}")
        self.query_one("#sweep-title", Static).update(Text(" · ".join(parts), no_wrap=True, overflow="ellipsis"))
        note = f"Best first by {metric}, mean ± std over seeds · "
        if view.left_out:
            run_id, why = view.left_out[0]
            note = f"{counted(len(view.left_out), 'run')} left out (run {run_id}: {why}) · " + note
        if view.packs:
            sizes = Counter(pack for _, pack in view.packs)
            note += "Trained together: " + ", ".join(f"{label} pack {pack} ({sizes[pack]} runs)"
                                                      for pack, label in view.pack_labels().items()) + " · "
        elsewhere = view.training_elsewhere(self.store.host)
        if view.study:
            boxes = sorted(set(view.hosts.values()))
            note = f"Study {view.study} on {len(boxes)} box(es)" + "".join(
                f" · {host} trains {run_id}" for host, run_id in elsewhere[:3]) + f" · {view.pruned}" * bool(
                view.pruned) + " · " + note
        note += "Enter: best run · k: top k"
        self.query_one("#sweep-note", Static).update(Text(note, no_wrap=True, overflow="ellipsis"))

    def _fit(self, cells: list[list[str]]) -> dict[int, int]:
        """The columns that fit the width, as the CLI fits the table: varied values narrow first, then time
        and best val go."""
        table = self.query_one("#sweep-table", DataTable)
        n = len(self.view.table.fields)
        natural = {i: max(cell_len(row[i]) for row in cells) for i in range(len(cells[0]))}
        minimum = {i: min(w, 6 if i < n else cell_len(cells[0][i])) for i, w in natural.items()}
        width = table.size.width or self.app.size.width
        if len(cells) - 1 > max(table.size.height - 1, 0) and table.size.height:
            width -= table.styles.scrollbar_size_vertical
        return fit_columns(natural, minimum, width, 2 * table.cell_padding, squeeze=tuple(range(n)),
                           drop=(n + 3, n + 4, n + 2) if self.view.packs else (n + 3, n + 2), gap_after_last=True)

    def _fill_table(self) -> None:
        table = self.query_one("#sweep-table", DataTable)
        selected = self.selected_row()
        cells = self.view.cells()
        fitted = self._fit(cells)
        if fitted != self._fitted or len(table.columns) != len(fitted):
            table.clear(columns=True)
            for i, w in fitted.items():
                table.add_column(Text(cells[0][i], no_wrap=True, overflow="ellipsis"), width=w, key=str(i))
            self._fitted = fitted
        else:
            table.clear()
        for row, texts in zip(self.view.table.rows, cells[1:]):
            table.add_row(*(Text(texts[i], no_wrap=True, overflow="ellipsis") for i in fitted), key=row_key(row))
        if selected is not None:
            key = row_key(selected)
            if any(row_key(r) == key for r in self.view.table.rows):
                table.move_cursor(row=table.get_row_index(key))

    @on(SweepTableWidget.Resized)
    def _table_resized(self) -> None:
        if self.view is not None and self._fit(self.view.cells()) != self._fitted:
            self._fill_table()

    def fields(self) -> tuple[str, ...]:
        return self.view.table.fields if self.view else ()

    def chart_field(self) -> str | None:
        fields = self.fields()
        return fields[self.field_index % len(fields)] if fields else None

    def chart_metric(self) -> str:
        return self.metric or (self.view.table.sort_metric if self.view else "test_acc")

    def _draw_charts(self) -> None:
        view = self.view
        table = view.table
        series = []
        cells = table.cells()
        for row in table.rows[:self.top_k]:
            run_id = curve_run(row, list(view.records))
            points = view.curves.get(run_id, ())
            if points:
                rank = table.rows.index(row) + 1
                series.append(Series((f"#{rank} {row_label(table, cells, row)}", f"#{rank}"),
                                     tuple(p[0] for p in points), tuple(p[1] for p in points)))
        curves = self.query_one(CurvesChart)
        curves.title = f"Val acc %, top {self.top_k}"
        curves.show(tuple(series))
        chart = self.query_one(FieldChart)
        name = self.chart_field()
        metric = self.chart_metric()
        if name is None:
            chart.empty_lines = ("Only the seed varies:", "no field to chart")
            chart.show_values("", (), (), "")
            return
        try:
            pairs = metric_by_field(table, name, metric)
        except SweepError:
            pairs = []
        labels = [_value_text(table, name, value) for value, _ in pairs]
        chart.empty_lines = FieldChart.empty_lines
        chart.show_values(f"{METRIC_NAMES[metric]} by {name}", labels, [y for _, y in pairs], METRIC_NAMES[metric])

    # -- selection and actions -----------------------------------------------
    def selected_row(self) -> SweepRow | None:
        table = self.query_one("#sweep-table", DataTable)
        if self.view is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.view.table.rows if row_key(r) == key), None)

    @on(DataTable.RowSelected, "#sweep-table")
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        if row.best_run_id and self._elsewhere(row.best_run_id):
            return
        if row.best_run_id:
            open_run(self.app, self.store, row.best_run_id)
            return
        group = config_group(row.config)
        training = [r for r in self.view.records if config_group(r.train_config()) == group and r.state.active]
        if training:  # nothing finished yet: the run training it, live
            open_run(self.app, self.store, training[0].id)
        else:
            self.notify(f"No run of this config has finished yet ({row.done}/{row.total} done).", severity="warning",
                        markup=False)

    def _elsewhere(self, run_id: str) -> bool:
        """A study's run on another box: says how to reach it, since this store has not got it."""
        host = self.view.hosts.get(run_id, self.store.host) if self.view else self.store.host
        if host == self.store.host:
            return False
        self.notify(f"Run {run_id} is on {host}: ssh {host} scratch-tui attach {run_id}", markup=False, timeout=10)
        return True

    def action_next_field(self) -> None:
        fields = self.fields()
        if len(fields) < 2:
            self.notify("Only one field varies in this sweep." if fields else "Only the seed varies in this sweep.")
            return
        self.field_index = (self.field_index + 1) % len(fields)
        self._draw_charts()
        self.notify(f"Chart against {self.chart_field()}")

    def action_next_metric(self) -> None:
        metrics = list(METRICS)
        self.metric = metrics[(metrics.index(self.chart_metric()) + 1) % len(metrics)]
        if self.view:
            self._draw_charts()
        self.notify(f"Chart of {METRIC_NAMES[self.metric]}")

    def action_top_k(self) -> None:
        self.top_k = self.top_k % MAX_K + 1
        self.notify(f"Curves of the top {counted(self.top_k, 'config')}")
        self.action_refresh()

    def action_refresh(self) -> None:
        try:
            view = self.load()
        except (QueueError, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.view = None  # drawn again even when nothing moved
        self._show(view)

    def action_export(self, fmt: str) -> None:
        """The table into sweep-ID.csv or .json in the current folder (else the runs folder); says where."""
        if self.view is None:
            return
        if not _SAFE_ID.fullmatch(self.sweep_id):  # the name is built from the id alone: never a path
            self.notify(f"Sweep id {self.sweep_id!r} cannot name a file.", severity="error", markup=False)
            return
        text = self.view.table.to_csv() if fmt == "csv" else self.view.table.to_json()
        errors = []
        for folder in (Path.cwd(), self.store.root):
            path = folder / f"sweep-{self.sweep_id}.{fmt}"
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror}")
                continue
            self.exported = path
            self.notify(f"Wrote {path}", markup=False)
            return
        self.notify("Cannot write the table: " + "; ".join(errors), severity="error", markup=False)

    def action_extend(self) -> None:
        """Setup with the sweep's grid marked; what its F7 queues shows here once it closes."""
        try:
            grid = sweep_grid(self.store, self.sweep_id)
        except (QueueError, SweepError, StoreError) as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        if items := [a.field for a in grid.axes if a.field not in SETTINGS]:  # model_args.width: no field of its own
            self.notify(f"This sweep varies {', '.join(items)}, which the form cannot mark; extend it with "
                        f"`scratch-tui sweep extend {self.sweep_id} FILE`.", severity="warning", timeout=10,
                        markup=False)
            return
        setup = SetupScreen(grid.base, {a.field: a for a in grid.axes}, extend=(self.sweep_id, grid.name))
        self.app.push_screen(setup, self._extended)

    def _extended(self, queued: object | None) -> None:
        if queued is not None:  # the new runs, queued, at once rather than at the next poll
            self.action_refresh()

    def action_back(self) -> None:
        self.app.pop_screen()


def _value_text(table: SweepTable, name: str, value) -> str:
    """A field's value as the table's cells write it."""
    column = table.fields.index(name)
    for row, cells in zip(table.rows, table.cells()[1:]):
        if row.values[name] == value:
            return cells[column]
    return str(value)
