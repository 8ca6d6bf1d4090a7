"""Render a terminal screen captured with `tmux capture-pane -p -e` (text with ANSI colours) to a PNG.

    tmux capture-pane -p -e -t SESSION > pane.ansi && python docs/render_pane.py pane.ansi docs/console.png

Hand-written because the machines here have no SVG-to-PNG converter: rich parses the escape sequences, Pillow
draws each character cell in DejaVu Sans Mono.
"""

from __future__ import annotations

import sys

from PIL import Image, ImageDraw, ImageFont
from rich.color import ColorType
from rich.terminal_theme import MONOKAI
from rich.text import Text

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"


def rgb(color, default):
    if color is None or color.type == ColorType.DEFAULT:
        return default
    return tuple(color.get_truecolor(MONOKAI))


def render(lines: list[str], out: str, size: int = 16) -> None:
    while lines and not lines[-1].strip():
        lines.pop()
    font, bold = ImageFont.truetype(FONT, size), ImageFont.truetype(BOLD, size)
    ascent, descent = font.getmetrics()
    cell_w, cell_h = font.getbbox("M")[2], ascent + descent  # no gap: box-drawing lines join
    width = max(len(Text.from_ansi(line).plain) for line in lines) + 2
    image = Image.new("RGB", (width * cell_w, (len(lines) + 1) * cell_h), tuple(MONOKAI.background_color))
    draw = ImageDraw.Draw(image)
    foreground = tuple(MONOKAI.foreground_color)
    for row, line in enumerate(lines):
        text = Text.from_ansi(line)
        x = cell_w
        for index, char in enumerate(text.plain):
            style = _style_at(text, index)
            color = rgb(style.color, foreground)
            if style.dim:
                color = tuple(int(c * 0.6) for c in color)
            draw.text((x, (row + 0.5) * cell_h), char, font=bold if style.bold else font, fill=color)
            x += cell_w
    image.save(out)


def _style_at(text: Text, index: int):
    from rich.style import Style

    style = Style()
    for span in text.spans:
        if span.start <= index < span.end:
            style += span.style if isinstance(span.style, Style) else Style.parse(span.style)
    return style


if __name__ == "__main__":
    render(open(sys.argv[1]).read().splitlines(), sys.argv[2])
