"""Sample images drawn with half blocks: each character cell shows two pixels, top and bottom."""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

# From light to dark coverage; used when colour is off (NO_COLOR), one character per two pixels.
DENSITY = " .:-=+*#%@"
HALF_BLOCK = "▀"
BLACK = (0, 0, 0)
CACHED_IMAGES = 320  # one evaluation's samples: up to 310 (4 per class, 3 per mistake cell, ten classes)

# id(image) -> (image, color, strips): kept with the image itself, so that its id is not reused
_strips_cache: OrderedDict[int, tuple[list, bool, list[Strip]]] = OrderedDict()


def _pixel(image: list[list[list[int]]], row: int, col: int) -> tuple[int, int, int]:
    if len(image) == 3:
        return image[0][row][col], image[1][row][col], image[2][row][col]
    v = image[0][row][col]
    return v, v, v


@lru_cache(maxsize=1 << 16)
def _half_block_style(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Style:
    """One Style per (top, bottom) colour pair: parsing an "rgb(...)" string per pixel is slow."""
    return Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom))


def _density(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> str:
    level = (sum(top) + sum(bottom)) / (6 * 255)
    return DENSITY[min(int(level * len(DENSITY)), len(DENSITY) - 1)]


def _cells(image: list[list[list[int]]], color: bool):
    """Per line, per column: (character, style or None)."""
    height, width = len(image[0]), len(image[0][0])
    for row in range(0, height, 2):
        cells = []
        for col in range(width):
            top = _pixel(image, row, col)
            bottom = _pixel(image, row + 1, col) if row + 1 < height else BLACK
            cells.append((HALF_BLOCK, _half_block_style(top, bottom)) if color else (_density(top, bottom), None))
        yield cells


def image_strips(image: list[list[list[int]]], color: bool = True) -> list[Strip]:
    """The image as Strips (Textual's line API): 28x28 -> 14 lines of 28 cells; 32x32 -> 16 of 32.
    Remembered for the same image: the evaluation screen is opened again and again on one evaluation."""
    cached = _strips_cache.get(id(image))
    if cached is not None and cached[0] is image and cached[1] == color:
        _strips_cache.move_to_end(id(image))
        return cached[2]
    strips = _image_strips(image, color)
    _strips_cache[id(image)] = (image, color, strips)
    if len(_strips_cache) > CACHED_IMAGES:
        _strips_cache.popitem(last=False)
    return strips


def _image_strips(image: list[list[list[int]]], color: bool) -> list[Strip]:
    strips = []
    for cells in _cells(image, color):
        if color:
            segments = [Segment(char, style) for char, style in cells]
        else:
            segments = [Segment("".join(char for char, _ in cells))]
        strips.append(Strip(segments, len(cells)).simplify())  # runs of one colour pair: one segment
    return strips
