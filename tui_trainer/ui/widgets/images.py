"""Sample images drawn with half blocks: each character cell shows two pixels, top and bottom."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

# From light to dark coverage; used when colour is off (NO_COLOR), one character per two pixels.
DENSITY = " .:-=+*#%@"


def _pixel(image: list[list[list[int]]], row: int, col: int) -> tuple[int, int, int]:
    if len(image) == 3:
        return image[0][row][col], image[1][row][col], image[2][row][col]
    v = image[0][row][col]
    return v, v, v


def image_lines(image: list[list[list[int]]], color: bool = True) -> list[Text]:
    """28x28 -> 14 lines of 28 cells; 32x32 colour -> 16 lines of 32 cells."""
    height, width = len(image[0]), len(image[0][0])
    lines = []
    for row in range(0, height, 2):
        line = Text()
        for col in range(width):
            top = _pixel(image, row, col)
            bottom = _pixel(image, row + 1, col) if row + 1 < height else (0, 0, 0)
            if color:
                line.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                       bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
            else:
                level = (sum(top) + sum(bottom)) / (6 * 255)
                line.append(DENSITY[min(int(level * len(DENSITY)), len(DENSITY) - 1)])
        lines.append(line)
    return lines
