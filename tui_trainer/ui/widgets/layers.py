"""Looking inside the network: the probe's layer table, its verdict and a layer's histograms (engine/probe.py).

    LayerTable.show(view)              # one row per layer at the last probe, each number with its sparkline
    verdict(view.diagnoses)            # the init check's verdict and the flags since, as lines
    histogram_lines(hist, width, h)    # [low, high, counts...] as rows of unicode bars
    layer_lines(stats)                 # a narrow plain table of one probe (the comparison's)

A number out of its healthy range is red and ends in "!": half the units dead or saturated, an update ratio
outside 1e-5..1e-1 per step, an activation spread above 3 or below 0.1, a gradient 1e-7 or 1e2 times its weights.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.widgets import DataTable

BARS = " ▁▂▃▄▅▆▇█"
SPARK = 7  # a sparkline's cells
NAME = 10  # a layer name's cells, cut from the left ("…ures.0.conv")
COLUMNS = ("layer", "act std", "dead/sat", "grad norm", "update")
BAD = "bold red"


def out_of_range(layer: Any) -> set[str]:
    """Which of a LayerStat's numbers are out of their healthy range: act_std, dead, grad_norm, update_ratio."""
    bad = set()
    if layer.act_std is not None and not 0.1 <= layer.act_std <= 3:
        bad.add("act_std")
    if max(layer.dead or 0, layer.saturated or 0) >= 0.5:
        bad.add("dead")
    if layer.grad_norm is not None and layer.weight_norm:
        if not 1e-7 <= layer.grad_norm / layer.weight_norm <= 1e2:
            bad.add("grad_norm")
    if layer.update_ratio is not None and not 1e-5 <= layer.update_ratio <= 1e-1:
        bad.add("update_ratio")
    return bad


def sparkline(values: Iterable[float | None], width: int = SPARK) -> str:
    """Values over the run in `width` cells of ▁..█ (the whole run, sampled evenly; the last is always in)."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    span = high - low
    return "".join(BARS[1 + round((v - low) / span * 7)] if span > 0 else BARS[4] for v in values)


def number(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def share(layer: Any) -> str:
    """Dead share after a ReLU, saturated share after tanh or sigmoid ("40% sat"), else "-"."""
    if layer.saturated is not None:
        return f"{layer.saturated:.0%} sat"
    return "-" if layer.dead is None else f"{layer.dead:.0%}"


def short(name: str, width: int = NAME) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def value(layer: Any, key: str) -> float | None:
    """A LayerStat's number by its column; "dead": the dead or saturated share, whichever it has."""
    if key == "dead":
        return None if layer.dead is None and layer.saturated is None else max(layer.dead or 0, layer.saturated or 0)
    return getattr(layer, key)


def cells(layer: Any, history: list[Any] | None = None, spark: int = SPARK, name: int = NAME) -> list[Text]:
    """A layer's row: its name, then each number (red with "!" when out of range) and its sparkline."""
    bad = out_of_range(layer)
    history = history or []
    row = [Text(short(layer.name, name))]
    for key, text in (("act_std", number(layer.act_std)), ("dead", share(layer)),
                      ("grad_norm", number(layer.grad_norm)), ("update_ratio", number(layer.update_ratio, ".0e"))):
        cell = Text(text + ("!" if key in bad else ""), style=BAD if key in bad else "")
        if spark and history:
            cell.append(" " + sparkline([value(x, key) for x in history], spark), style="cyan")
        row.append(cell)
    return row


def history_of(view: Any) -> dict[str, list[Any]]:
    """Each layer's LayerStat at every probe so far, by its name."""
    history: dict[str, list[Any]] = {}
    for stats in view.layer_stats:
        for layer in stats.layers:
            history.setdefault(layer.name, []).append(layer)
    return history


def probe_line(stats: Any) -> str:
    """"step 300 (epoch 2): probe loss 0.52 (ln K 2.3), logits std 4.1"."""
    return (f"step {stats.step:,} (epoch {stats.epoch}): probe loss {number(stats.loss)} "
            f"(ln K {number(stats.expected_loss)}), logits std {number(stats.logits_std)}")


def verdict(diagnoses: list[Any], last: int = 3) -> list[tuple[str, bool]]:
    """(line, healthy) of the init check's verdict and the latest flags since: the init check first, then the
    last `last` - 1 flags, the newest last."""
    if not diagnoses:
        return [("No probe yet: the verdict comes with the first measurement (step 0).", True)]
    init = [d for d in diagnoses if d.step == 0]
    later = [d for d in diagnoses if d.step != 0]
    shown = (init[:1] + later[-(last - min(len(init), 1)):]) if later else init[:last]
    return [(d.describe(), d.healthy) for d in shown]


class LayerTable(DataTable):
    """One row per layer at the last probe; the row key is the layer's name (Enter: its histograms)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        # the name's width fixed, as `short` cuts it: sized from the cells, it could stay the header's ("layer")
        # when a probe's rows were replaced before the table measured them (seen in the tmux tour)
        self.add_column(COLUMNS[0], width=NAME)
        self.add_columns(*COLUMNS[1:])

    def show(self, view: Any) -> None:
        """The view's last probe; rebuilt only when a new probe came."""
        if not view.layer_stats:
            return
        latest = view.layer_stats[-1]
        key = (latest.step, len(view.layer_stats), len(latest.layers))
        if key == self._shown:
            return
        self._shown = key
        history = history_of(view)
        row = self.cursor_row
        self.clear()
        for layer in latest.layers:
            self.add_row(*cells(layer, history.get(layer.name)), key=layer.name)
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1))

    @property
    def selected_layer(self) -> str | None:
        """The layer under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def histogram_lines(hist: list[float], width: int = 72, height: int = 4) -> list[str]:
    """[low, high, counts...] as `height` rows of bars (each bin ⌊width / bins⌋ cells), then the range below."""
    if len(hist) < 3:
        return ["(no values)"] + [""] * height
    low, high, counts = hist[0], hist[1], hist[2:]
    each = max(1, width // len(counts))
    top = max(counts) or 1.0
    rows = []
    for r in range(height - 1, -1, -1):
        line = ""
        for c in counts:
            eighths = round(c / top * height * 8) - r * 8
            line += (BARS[8] if eighths >= 8 else BARS[max(eighths, 0)] if c else " ") * each
        rows.append(line)
    left, right = f"{low:.3g}", f"{high:.3g}"
    rows.append(left + right.rjust(each * len(counts) - len(left)))
    return rows


def layer_lines(stats: Any, width: int = 38) -> list[Text]:
    """One probe's layers as a narrow table (the comparison's): name, activation std, dead (or saturated) share,
    gradient norm, update ratio."""
    widths = (width - 27, 7, 6, 7, 7)
    head = Text("".join(h[:w - 1].ljust(w) for h, w in zip(("layer", "std", "dead", "grad", "update"), widths)),
                style="bold")
    lines = [head]
    for layer in stats.layers:
        line = Text()
        for cell, w in zip(cells(layer, spark=0, name=widths[0] - 1), widths):
            cell.truncate(w - 1)
            cell.pad_right(w - cell.cell_len)
            line.append_text(cell)
        lines.append(line)
    return lines
