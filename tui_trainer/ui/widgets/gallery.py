"""A grid of sample predictions: image, true label, predicted label, confidence."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ...engine.events import PredictionSample
from .images import image_lines


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

    def set_samples(self, samples: list[PredictionSample], classes: list[str]) -> None:
        self.samples, self.class_names = samples, classes
        self.redraw()

    def watch_mistakes_only(self) -> None:
        self.redraw()

    def watch_cell(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def visible(self) -> list[PredictionSample]:
        shown = self.samples
        if self.cell is not None:
            shown = [s for s in shown if (s.true_label, s.predicted_label) == self.cell]
        elif self.mistakes_only:
            shown = [s for s in shown if s.true_label != s.predicted_label]
        # mistakes first, most confident first: the interesting ones
        return sorted(shown, key=lambda s: (s.true_label == s.predicted_label, -s.confidence))

    def heading(self) -> str:
        count = len(self.visible())
        if self.cell is not None:
            t, p = self.cell
            return f"{count} sample(s) of true {self.class_names[t]!r} predicted {self.class_names[p]!r}"
        return f"{count} {'mistakes' if self.mistakes_only else 'samples'}"

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        shown = self.visible()
        if not shown:
            self.update("No samples to show here.")
            return
        color = not self.app.no_color
        image_width = len(shown[0].image[0][0])
        card = image_width + 2
        per_row = max(1, (self.size.width or 80) // card)
        out = Text()
        for start in range(0, len(shown), per_row):
            row = shown[start:start + per_row]
            images = [image_lines(s.image, color) for s in row]
            for line in range(len(images[0])):
                for i, lines in enumerate(images):
                    out.append_text(lines[line])
                    out.append("  ")
                out.append("\n")
            for caption in (self._true, self._predicted):
                for s in row:
                    text = caption(s)[:image_width].ljust(image_width)
                    style = "green" if s.true_label == s.predicted_label else "red"
                    out.append(text + "  ", style=style if caption is self._predicted else "")
                out.append("\n")
            out.append("\n")
        self.update(out)

    def _true(self, s: PredictionSample) -> str:
        return f"true {self.class_names[s.true_label]}"

    def _predicted(self, s: PredictionSample) -> str:
        mark = "ok" if s.true_label == s.predicted_label else "x"
        return f"{mark} {self.class_names[s.predicted_label]} {100 * s.confidence:.0f}%"
