#!/usr/bin/env python3
"""Render a terminal capture (`tmux capture-pane -e -p -N`: text with ANSI SGR escapes) to a PNG.

    render.py --cols 120 --rows 36 [--title TEXT] CAPTURE.ansi OUT.png [CAPTURE2.ansi OUT2.png ...]

The capture is fed to pyte (a VT100 emulator) of exactly COLS x ROWS; every cell of its
screen buffer is then painted with Pillow: background, then the glyph in DejaVu Sans Mono
(bold cells in DejaVu Sans Mono Bold). The 16 ANSI colours map to the palette below; 256-colour
and truecolor sequences are honoured. Box-drawing, block-element, shade and braille characters
are drawn as geometry rather than glyphs, so borders join across cells and sparkline bars stack
without gaps, whatever the font's metrics.
"""

import argparse
import os
import sys

import pyte
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = os.environ.get("IDEMTOP_SHOTS_FONT_DIR", "/usr/share/fonts/truetype/dejavu")
FONTS = {
    (False, False): "DejaVuSansMono.ttf",
    (True, False): "DejaVuSansMono-Bold.ttf",
    (False, True): "DejaVuSansMono-Oblique.ttf",
    (True, True): "DejaVuSansMono-BoldOblique.ttf",
}
FALLBACK_FONT = "DejaVuSans.ttf"

# A dark palette (index = ANSI colour number).
PALETTE = [
    "#2e3440",  # 0 black
    "#e06c75",  # 1 red
    "#98c379",  # 2 green
    "#e5c07b",  # 3 yellow
    "#4f7fc0",  # 4 blue
    "#c678dd",  # 5 magenta
    "#56b6c2",  # 6 cyan
    "#c0c5ce",  # 7 white (ratatui Gray)
    "#6c7380",  # 8 bright black (ratatui DarkGray)
    "#ff7b86",  # 9 bright red
    "#b5e890",  # 10 bright green
    "#f5d48f",  # 11 bright yellow
    "#6cb2f0",  # 12 bright blue
    "#dda6f0",  # 13 bright magenta
    "#7fd8e2",  # 14 bright cyan
    "#f5f7fa",  # 15 bright white (ratatui White)
]
DEFAULT_BG = "#1a1d23"
DEFAULT_FG = "#c0c5ce"
CHROME_BG = "#2a2e36"
CHROME_FG = "#9aa1ad"

NAMES = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]
NAMED = {n: i for i, n in enumerate(NAMES)}
NAMED.update({"bright" + n: i + 8 for i, n in enumerate(NAMES)})
NAMED["yellow"] = 3
NAMED["brightyellow"] = 11
NAMED["bfightmagenta"] = 13  # pyte's spelling of SGR 105


def hex_rgb(h):
    h = h.lstrip("#")
    return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))


PALETTE_RGB = [hex_rgb(c) for c in PALETTE]


class Screen(pyte.Screen):
    """pyte turns 38;5;N with N < 16 into fixed RGB values: keep those on our palette."""

    def select_graphic_rendition(self, *attrs, **kwargs):
        out = []
        a = list(attrs)
        i = 0
        while i < len(a):
            if a[i] in (38, 48) and i + 2 < len(a) and a[i + 1] == 5 and a[i + 2] < 16:
                n = a[i + 2]
                base = 30 if a[i] == 38 else 40
                out.append(base + n if n < 8 else base + 60 + n - 8)
                i += 3
                continue
            if a[i] in (38, 48) and i + 1 < len(a):
                # copy the whole extended sequence untouched
                step = 3 if a[i + 1] == 5 else 5 if a[i + 1] == 2 else 1
                out.extend(a[i : i + step])
                i += step
                continue
            out.append(a[i])
            i += 1
        super().select_graphic_rendition(*out)


def colour(value, default):
    if value in (None, "", "default"):
        return hex_rgb(default)
    if value in NAMED:
        return PALETTE_RGB[NAMED[value]]
    try:
        return hex_rgb(value)
    except ValueError:
        return hex_rgb(default)


# Box drawing: char -> (up, right, down, left), each 0 none, 1 light, 2 heavy, 3 double.
BOX = {}


def _box(chars, spec):
    for ch in chars:
        BOX[ch] = spec


_box("─", (0, 1, 0, 1)); _box("━", (0, 2, 0, 2)); _box("═", (0, 3, 0, 3))
_box("│", (1, 0, 1, 0)); _box("┃", (2, 0, 2, 0)); _box("║", (3, 0, 3, 0))
_box("┌╭", (0, 1, 1, 0)); _box("┐╮", (0, 0, 1, 1)); _box("└╰", (1, 1, 0, 0)); _box("┘╯", (1, 0, 0, 1))
_box("┏", (0, 2, 2, 0)); _box("┓", (0, 0, 2, 2)); _box("┗", (2, 2, 0, 0)); _box("┛", (2, 0, 0, 2))
_box("╔", (0, 3, 3, 0)); _box("╗", (0, 0, 3, 3)); _box("╚", (3, 3, 0, 0)); _box("╝", (3, 0, 0, 3))
_box("├", (1, 1, 1, 0)); _box("┤", (1, 0, 1, 1)); _box("┬", (0, 1, 1, 1)); _box("┴", (1, 1, 0, 1))
_box("┼", (1, 1, 1, 1))
_box("┣", (2, 2, 2, 0)); _box("┫", (2, 0, 2, 2)); _box("┳", (0, 2, 2, 2)); _box("┻", (2, 2, 0, 2))
_box("╋", (2, 2, 2, 2))
_box("╠", (3, 3, 3, 0)); _box("╣", (3, 0, 3, 3)); _box("╦", (0, 3, 3, 3)); _box("╩", (3, 3, 0, 3))
_box("╬", (3, 3, 3, 3))
_box("╴", (0, 0, 0, 1)); _box("╵", (1, 0, 0, 0)); _box("╶", (0, 1, 0, 0)); _box("╷", (0, 0, 1, 0))
_box("╸", (0, 0, 0, 2)); _box("╹", (2, 0, 0, 0)); _box("╺", (0, 2, 0, 0)); _box("╻", (0, 0, 2, 0))


class Renderer:
    def __init__(self, size):
        # The obliques are in fonts-dejavu-extra: without them italics are drawn upright.
        self.fonts = {}
        for (bold, italic), name in sorted(FONTS.items(), key=lambda kv: kv[0][1]):
            path = os.path.join(FONT_DIR, name)
            if os.path.exists(path) or not italic:
                self.fonts[(bold, italic)] = ImageFont.truetype(path, size)
            else:
                self.fonts[(bold, italic)] = self.fonts[(bold, False)]
        self.fallback = ImageFont.truetype(os.path.join(FONT_DIR, FALLBACK_FONT), size)
        regular = self.fonts[(False, False)]
        self.cw = round(regular.getlength("M"))
        ascent, descent = regular.getmetrics()
        self.ascent = ascent
        self.ch = ascent + descent  # the font's own line height: rows touch, like a terminal
        self.light = max(1, round(self.cw / 9))
        self.heavy = self.light * 2 + 1
        self._missing = {}
        self._notdef = {}

    def _shape(self, font, ch):
        img = Image.new("L", (self.cw * 3, self.ch * 2), 0)
        ImageDraw.Draw(img).text((0, 0), ch, font=font, fill=255)
        return img.tobytes()

    def has_glyph(self, font, ch):
        """False when the font would draw its 'missing glyph' box for ch."""
        key = (id(font), ch)
        if key not in self._missing:
            if id(font) not in self._notdef:
                self._notdef[id(font)] = self._shape(font, "\U0010fffd")
            self._missing[key] = self._shape(font, ch) == self._notdef[id(font)]
        return not self._missing[key]

    def span(self, w):
        """(low, high) pixel offsets, from the centre line, that a line of weight w covers."""
        if w == 3:
            gap = self.light + 1
            return -gap, gap + self.light - 1
        if w == 2:
            lo = -((self.heavy - self.light) // 2)
            return lo, lo + self.heavy - 1
        return 0, self.light - 1

    def draw_box(self, d, x, y, spec, fg):
        cw, ch = self.cw, self.ch
        cx = x + (cw - self.light) // 2
        cy = y + (ch - self.light) // 2
        up, right, down, left = spec

        def lines(w):
            if w == 3:
                gap = self.light + 1
                return [(-gap, -gap + self.light - 1), (gap, gap + self.light - 1)]
            return [self.span(w)]

        def cover(ws):
            ws = [w for w in ws if w]
            if not ws:
                return 0, self.light - 1
            spans = [self.span(w) for w in ws]
            return min(s[0] for s in spans), max(s[1] for s in spans)

        if sorted(spec) == [0, 0, 3, 3] and (up or down) and (left or right):
            # Double-line corner: an outer and an inner L.
            gap = self.light + 1
            sh = 1 if right else -1
            sv = 1 if down else -1
            for k in (-1, 1):  # -1 outer, +1 inner
                hy = cy + k * sv * gap
                vx = cx + k * sh * gap
                hx_end = x + cw - 1 if right else x
                vy_end = y + ch - 1 if down else y
                d.rectangle([min(vx, hx_end), hy, max(vx, hx_end) + (self.light - 1 if not right else 0),
                             hy + self.light - 1], fill=fg)
                d.rectangle([vx, min(hy, vy_end), vx + self.light - 1,
                             max(hy, vy_end) + (self.light - 1 if not down else 0)], fill=fg)
            return

        # Horizontal arms reach across the vertical ones (and vice versa) so joints close.
        vlo, vhi = cover([up, down])
        hlo, hhi = cover([left, right])
        for w, x0, x1 in ((left, x, cx + vhi), (right, cx + vlo, x + cw - 1)):
            for lo, hi in lines(w) if w else []:
                d.rectangle([x0, cy + lo, x1, cy + hi], fill=fg)
        for w, y0, y1 in ((up, y, cy + hhi), (down, cy + hlo, y + ch - 1)):
            for lo, hi in lines(w) if w else []:
                d.rectangle([cx + lo, y0, cx + hi, y1], fill=fg)

    def draw_block(self, d, x, y, c, fg, bg):
        """Block elements, shades and braille. Returns False for other characters."""
        cw, ch = self.cw, self.ch
        o = ord(c)
        if c == "█":
            d.rectangle([x, y, x + cw - 1, y + ch - 1], fill=fg)
        elif 0x2581 <= o <= 0x2587:  # ▁..▇ lower eighths
            h = round(ch * (o - 0x2580) / 8)
            d.rectangle([x, y + ch - h, x + cw - 1, y + ch - 1], fill=fg)
        elif c == "▀":
            d.rectangle([x, y, x + cw - 1, y + ch // 2 - 1], fill=fg)
        elif c == "▔":
            d.rectangle([x, y, x + cw - 1, y + max(1, round(ch / 8)) - 1], fill=fg)
        elif 0x2589 <= o <= 0x258F:  # ▉..▏ left eighths
            w = round(cw * (0x2590 - o) / 8)
            d.rectangle([x, y, x + max(1, w) - 1, y + ch - 1], fill=fg)
        elif c == "▐":
            d.rectangle([x + cw // 2, y, x + cw - 1, y + ch - 1], fill=fg)
        elif c == "▕":
            d.rectangle([x + cw - max(1, round(cw / 8)), y, x + cw - 1, y + ch - 1], fill=fg)
        elif c in "░▒▓":
            a = {"░": 0.25, "▒": 0.5, "▓": 0.75}[c]
            mix = tuple(round(b + (f - b) * a) for f, b in zip(fg, bg))
            d.rectangle([x, y, x + cw - 1, y + ch - 1], fill=mix)
        elif c in "▖▗▘▝▙▚▛▜▝▞▟":
            quads = {  # top-left, top-right, bottom-left, bottom-right
                "▖": (0, 0, 1, 0), "▗": (0, 0, 0, 1), "▘": (1, 0, 0, 0), "▝": (0, 1, 0, 0),
                "▙": (1, 0, 1, 1), "▚": (1, 0, 0, 1), "▛": (1, 1, 1, 0), "▜": (1, 1, 0, 1),
                "▞": (0, 1, 1, 0), "▟": (0, 1, 1, 1),
            }[c]
            hw, hh = cw // 2, ch // 2
            boxes = [(x, y, x + hw - 1, y + hh - 1), (x + hw, y, x + cw - 1, y + hh - 1),
                     (x, y + hh, x + hw - 1, y + ch - 1), (x + hw, y + hh, x + cw - 1, y + ch - 1)]
            for on, b in zip(quads, boxes):
                if on:
                    d.rectangle(b, fill=fg)
        elif 0x2800 <= o <= 0x28FF:  # braille
            bits = o - 0x2800
            dots = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10),
                    (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80)]
            r = max(1, cw // 6)
            for col, row, bit in dots:
                if bits & bit:
                    px = x + round(cw * (col * 2 + 1) / 4)
                    py = y + round(ch * (row * 2 + 1) / 8)
                    d.ellipse([px - r, py - r, px + r, py + r], fill=fg)
        else:
            return False
        return True

    def render(self, text, cols, rows, title, out):
        screen = Screen(cols, rows)
        stream = pyte.Stream(screen)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        stream.feed("\r\n".join(lines[:rows]))

        pad = 12
        bar = 30 if title is not None else 0
        width = cols * self.cw + 2 * pad
        height = rows * self.ch + 2 * pad + bar
        img = Image.new("RGB", (width, height), hex_rgb(DEFAULT_BG))
        d = ImageDraw.Draw(img)
        if title is not None:
            d.rectangle([0, 0, width - 1, bar - 1], fill=hex_rgb(CHROME_BG))
            for i, c in enumerate(("#ff5f57", "#febc2e", "#28c840")):
                cx, cy = 18 + i * 20, bar // 2
                d.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=hex_rgb(c))
            f = self.fonts[(False, False)]
            tw = f.getlength(title)
            d.text(((width - tw) / 2, (bar - self.ch) / 2), title, font=f, fill=hex_rgb(CHROME_FG))

        ox, oy = pad, pad + bar
        for r in range(rows):
            line = screen.buffer[r]
            for c in range(cols):
                cell = line[c]
                fg = colour(cell.fg, DEFAULT_FG)
                bg = colour(cell.bg, DEFAULT_BG)
                if cell.reverse:
                    fg, bg = bg, fg
                x, y = ox + c * self.cw, oy + r * self.ch
                if bg != hex_rgb(DEFAULT_BG):
                    d.rectangle([x, y, x + self.cw - 1, y + self.ch - 1], fill=bg)
                ch = cell.data
                if not ch or ch == " ":
                    continue
                if ch in BOX:
                    self.draw_box(d, x, y, BOX[ch], fg)
                    continue
                if self.draw_block(d, x, y, ch, fg, bg):
                    continue
                font = self.fonts[(bool(cell.bold), bool(cell.italics))]
                if not self.has_glyph(font, ch):
                    font = self.fallback
                d.text((x, y), ch, font=font, fill=fg)
                if cell.underscore:
                    d.line([x, y + self.ascent + 1, x + self.cw - 1, y + self.ascent + 1], fill=fg)
                if cell.strikethrough:
                    d.line([x, y + self.ch // 2, x + self.cw - 1, y + self.ch // 2], fill=fg)
        img.save(out, optimize=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cols", type=int, default=120)
    p.add_argument("--rows", type=int, default=36)
    p.add_argument("--font-size", type=int, default=15)
    p.add_argument("--title", default=None, help="window title bar text (none: no title bar)")
    p.add_argument("pairs", nargs="+", metavar="CAPTURE OUT.png")
    a = p.parse_args()
    if len(a.pairs) % 2:
        p.error("give pairs: CAPTURE OUT.png")
    r = Renderer(a.font_size)
    for i in range(0, len(a.pairs), 2):
        src, out = a.pairs[i], a.pairs[i + 1]
        with open(src, encoding="utf-8", errors="replace") as f:
            text = f.read()
        r.render(text, a.cols, a.rows, a.title, out)
        print(f"  {out}: {os.path.getsize(out) // 1024} KB", file=sys.stderr)


if __name__ == "__main__":
    main()
