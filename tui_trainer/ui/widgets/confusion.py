"""The confusion matrix as a navigable table: rows are true labels, columns predictions."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


class ConfusionTable(DataTable):
    """Counts coloured by size; Enter on a cell asks for its samples (DataTable.CellSelected)."""

    def __init__(self, **kwargs) -> None:
        # no cell padding: ten count columns and the labels fit in 80 columns
        super().__init__(cursor_type="cell", zebra_stripes=False, cell_padding=0, **kwargs)

    def show(self, confusion: list[list[int]], classes: list[str]) -> None:
        self.clear(columns=True)
        self.add_column("true \\ pred ", key="label")
        for i, name in enumerate(classes):
            self.add_column(Text(short(name, 5).rjust(6)), key=str(i))
        biggest_miss = max((c for t, row in enumerate(confusion) for p, c in enumerate(row) if t != p), default=1) or 1
        for t, row in enumerate(confusion):
            total = sum(row) or 1
            cells: list[Text] = [Text(short(classes[t], 12).ljust(13))]
            for p, count in enumerate(row):
                if t == p:
                    level = count / total
                    style = f"bold black on rgb({40},{int(80 + 150 * level)},{60})"
                elif count:
                    level = count / biggest_miss
                    style = f"bold on rgb({int(90 + 150 * level)},{40},{40})"
                else:
                    style = "dim"
                cells.append(Text.assemble(" ", (f"{count:>5}", style)))  # the gap keeps cells apart
            self.add_row(*cells, key=str(t))
