"""A grid of sample predictions: image, true label, predicted label, confidence.

Drawn with Textual's line API: a Static that renders all of its content would turn every
half-block pixel of every kept sample (about 150 images, 60,000 styled cells) into strips on each
refresh, and a tab switch, a resize or a focus change refreshes it; seconds of CPU. Here each
image becomes Strips once, a line of the grid is put together only when it is on screen, and
lines are kept until the layout (the width's cards per row, the filter) changes.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import Static

from ...engine.events import PredictionSample
from ...format import counted
from .images import image_strips

GAP = 2  # blank cells after each card
CAPTIONS = 2  # lines under each image: true label, predicted label and confidence
OK_STYLE, MISS_STYLE, PLAIN = Style(color="green"), Style(color="red"), Style()


class SampleGallery(Static):
    DEFAULT_CSS = """
    SampleGallery { height: auto; }
    """

    mistakes_only: reactive[bool] = reactive(False)
    cell: reactive[tuple[int, int] | None] = reactive(None)  # (true, predicted) from the confusion matrix

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[PredictionSample] = []
        self.class_names: list[str] = []
        self.confusion: list[list[int]] | None = None
        self._shown: list[int] | None = None  # positions in self.samples, in the order shown
        self._lines: dict[int, Strip] = {}  # y -> a line of the grid, for self._per_row
        self._per_row = 0

    def set_samples(self, samples: list[PredictionSample], classes: list[str],
                    confusion: list[list[int]] | None = None) -> None:
        self.samples, self.class_names, self.confusion = samples, classes, confusion
        self.redraw()

    def watch_mistakes_only(self) -> None:
        self.redraw()

    def watch_cell(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        # a tab switch hides and shows the gallery: nothing to redo unless the cards per row change
        if self.size.width and self._cards_per_row(self.size.width) != self._per_row:
            self._lines.clear()
            self.refresh(layout=True)

    # -- what is shown -------------------------------------------------------
    def visible(self) -> list[PredictionSample]:
        return [self.samples[i] for i in self._visible_positions()]

    def _visible_positions(self) -> list[int]:
        if self._shown is None:
            shown = range(len(self.samples))
            if self.cell is not None:
                shown = [i for i in shown if (self.samples[i].true_label, self.samples[i].predicted_label) == self.cell]
            elif self.mistakes_only:
                shown = [i for i in shown if self.samples[i].true_label != self.samples[i].predicted_label]
            # mistakes first, most confident first: the interesting ones
            self._shown = sorted(shown, key=lambda i: (self.samples[i].true_label == self.samples[i].predicted_label,
                                                       -self.samples[i].confidence))
        return self._shown

    def cell_count(self) -> int | None:
        """How many test images the confusion matrix counts in the selected cell (None: no cell, no matrix)."""
        if self.cell is None or self.confusion is None:
            return None
        t, p = self.cell
        return self.confusion[t][p]

    def heading(self) -> str:
        """What the gallery shows, honestly: the evaluation keeps a few samples per cell, not all."""
        kept = len(self._visible_positions())
        if self.cell is not None:
            t, p = self.cell
            true, predicted = self.class_names[t], self.class_names[p]
            which = f"of true {true!r} predicted {predicted!r}"
            count = self.cell_count()
            if count is None:
                return f"{counted(kept, 'sample')} {which}"
            if count == 0:
                return f"No test images {which}"
            if kept >= count:
                return f"Kept all {count:,} test images {which}" if count > 1 else f"Kept the one test image {which}"
            return f"Kept {kept} of the {count:,} test images {which}"
        if self.confusion is None:
            return f"{kept} {'mistakes' if self.mistakes_only else 'samples'}"
        if self.mistakes_only:
            total = sum(c for t, row in enumerate(self.confusion) for p, c in enumerate(row) if t != p)
            return f"{kept} mistakes kept as samples, of {total:,}"
        total = sum(map(sum, self.confusion))
        return f"{kept} samples kept, of {total:,} test images"

    def empty_message(self) -> str:
        if self.cell is not None and (self.cell_count() or 0) > 0:
            return "The evaluation kept no sample images for this cell; a: all samples."
        if self.cell is not None:
            return "No test image falls in this cell."
        return "No samples to show here."

    def redraw(self) -> None:
        self._shown = None
        self._lines.clear()
        if self.is_mounted:
            self.refresh(layout=True)

    # -- the grid ------------------------------------------------------------
    def _image_width(self) -> int:
        return len(self.samples[0].image[0][0]) if self.samples else 28

    def _image_height(self) -> int:
        return (len(self.samples[0].image[0]) + 1) // 2 if self.samples else 14

    def _cards_per_row(self, width: int) -> int:
        return max(1, (width or 80) // (self._image_width() + GAP))

    def _row_height(self) -> int:
        return self._image_height() + CAPTIONS + 1

    def _line_count(self, width: int) -> int:
        shown = len(self._visible_positions())
        if not shown:
            return 1
        rows = -(-shown // self._cards_per_row(width))
        return rows * self._row_height() + 1  # a blank line under the last row's blank line, as ever

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self._line_count(width)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.visual_style.rich_style
        per_row = self._cards_per_row(width)
        if per_row != self._per_row:
            self._lines.clear()
            self._per_row = per_row
        line = self._lines.get(y)
        if line is None:
            line = self._lines[y] = self._grid_line(y, per_row)
        return line.apply_style(base).crop_extend(0, width, base)

    def _image(self, position: int) -> list[Strip]:
        return image_strips(self.samples[position].image, not self.app.no_color)  # built once, cached there

    def _grid_line(self, y: int, per_row: int) -> Strip:
        """Line y of the grid, unstyled by the widget: images, then two captions, then a blank line."""
        shown = self._visible_positions()
        if not shown:
            return Strip([Segment(self.empty_message())]) if y == 0 else Strip([])
        row, k = divmod(y, self._row_height())
        positions = shown[row * per_row:(row + 1) * per_row]
        if not positions:
            return Strip([])
        gap = Segment(" " * GAP)
        segments: list[Segment] = []
        image_width, image_height = self._image_width(), self._image_height()
        if k < image_height:
            for position in positions:
                segments.extend(self._image(position)[k])
                segments.append(gap)
        elif k < image_height + CAPTIONS:
            for position in positions:
                s = self.samples[position]
                if k == image_height:
                    text, style = f"true {self.class_names[s.true_label]}", PLAIN
                else:
                    mark = "ok" if s.true_label == s.predicted_label else "x"
                    text = f"{mark} {self.class_names[s.predicted_label]} {100 * s.confidence:.0f}%"
                    style = OK_STYLE if s.true_label == s.predicted_label else MISS_STYLE
                segments.append(Segment(text[:image_width].ljust(image_width) + " " * GAP, style))
        return Strip(segments).simplify()

    def render(self) -> Text:
        """The whole grid as Text (for copying and for tests); the screen draws it line by line."""
        width = self.size.width or 80
        per_row = self._cards_per_row(width)
        text = Text()
        for y in range(self._line_count(width)):
            if y:
                text.append("\n")
            for segment in self._grid_line(y, per_row):
                text.append(segment.text, segment.style)
        return text
