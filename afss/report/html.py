"""HTML building blocks of the report: one page, inline CSS, images as data: URLs, no script.

Every piece of text that reaches the page goes through `esc` (file names, config values and error
messages come from the user's files). Nothing here names a URL: the page must open offline and make
no request (``tests/test_report.py`` checks it in Chromium).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence

from afss.report.gallery import Card

__all__ = ["Cell", "card_grid", "esc", "img", "page", "section", "table"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d2330; background: #f6f7f9; line-height: 1.4; }
header { background: #1d2330; color: #fff; padding: 16px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; color: #c8cede; font-size: 13px; }
nav { padding: 8px 28px; background: #e8ebf0; font-size: 13px; }
nav a { margin-right: 14px; color: #1d4f91; text-decoration: none; }
main { padding: 4px 28px 40px 28px; max-width: 1400px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 2px solid #d5d9e0; padding-bottom: 4px; }
h3 { font-size: 15px; margin-bottom: 6px; }
p.lead { margin-top: 0; color: #3d4556; }
.notice { background: #fff4d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 14px 0; }
.notice ul { margin: 4px 0 0 0; padding-left: 20px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 6px 0 10px 0; }
th, td { border: 1px solid #d5d9e0; padding: 3px 8px; text-align: right; }
th { background: #eef1f5; }
td.text, th.text { text-align: left; }
#models-table td.text { max-width: 1000px; overflow-wrap: anywhere; font-family: "DejaVu Sans Mono", Menlo, monospace;
                        font-size: 12px; }
tr.upper td { color: #555; background: #f3f3f3; font-style: italic; }
td.best { font-weight: bold; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #fff; border: 1px solid #d5d9e0; padding: 8px 10px; overflow-x: auto; max-height: 420px; }
img.figure { max-width: 100%; background: #fff; border: 1px solid #d5d9e0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #d5d9e0; border-radius: 4px; padding: 8px; width: min-content; }
.card .title { font-size: 12px; font-weight: 600; word-break: break-all; margin-bottom: 4px; }
.card .panels { display: flex; gap: 4px; }
.card figure { margin: 0; }
.card figcaption { font-size: 11px; color: #3d4556; text-align: center; }
.card dl { display: grid; grid-template-columns: auto auto; gap: 0 8px; font-size: 12px; margin: 6px 0 0 0; }
.card dt { color: #5a6275; }
.card dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.card .reason { grid-column: 1 / 3; text-align: left; color: #8a1c1c; }
.card .note { font-size: 11px; color: #8a1c1c; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px -2px 10px; border-radius: 2px; }
"""


def esc(value: object) -> str:
    """``value`` as HTML text, quotes escaped too (safe in attributes)."""
    return html.escape(str(value), quote=True)


def img(data: bytes, mime: str, alt: str, *, cls: str = "", width: int | None = None,
        height: int | None = None) -> str:
    """An ``<img>`` holding ``data`` as a base64 ``data:`` URL."""
    size = (f' width="{int(width)}"' if width else "") + (f' height="{int(height)}"' if height else "")
    klass = f' class="{esc(cls)}"' if cls else ""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img{klass} src="data:{esc(mime)};base64,{encoded}" alt="{esc(alt)}"{size}>'


class Cell:
    """A table cell: ``text`` (escaped), HTML ``attrs`` (``data-*`` for tests), CSS ``cls``."""

    __slots__ = ("attrs", "cls", "text")

    def __init__(self, text: object, *, cls: str = "", attrs: Mapping[str, object] | None = None) -> None:
        self.text, self.cls, self.attrs = text, cls, dict(attrs or {})

    def html(self, tag: str = "td") -> str:
        attrs = "".join(f' {esc(k)}="{esc(v)}"' for k, v in self.attrs.items())
        klass = f' class="{esc(self.cls)}"' if self.cls else ""
        return f"<{tag}{klass}{attrs}>{esc(self.text)}</{tag}>"


def table(head: Sequence[object], rows: Iterable[Sequence[object]], *, table_id: str = "",
          row_classes: Sequence[str] | None = None, head_rows: Sequence[str] = ()) -> str:
    """A ``<table>``: ``head`` labels, ``rows`` of plain values or `Cell`; the first column left-aligned.
    ``head_rows`` are extra header rows given as ready HTML (``<tr>...</tr>``), placed above ``head``."""
    def cell(value: object, k: int, tag: str) -> str:
        c = value if isinstance(value, Cell) else Cell(value)
        if k == 0 and not c.cls:
            c = Cell(c.text, cls="text", attrs=c.attrs)
        return c.html(tag)

    out = [f'<table id="{esc(table_id)}">' if table_id else "<table>", "<thead>", *head_rows,
           "<tr>" + "".join(cell(h, k, "th") for k, h in enumerate(head)) + "</tr>", "</thead>", "<tbody>"]
    for n, row in enumerate(rows):
        klass = row_classes[n] if row_classes is not None and row_classes[n] else ""
        out.append((f'<tr class="{esc(klass)}">' if klass else "<tr>")
                   + "".join(cell(v, k, "td") for k, v in enumerate(row)) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def card_grid(cards: Sequence[Card], *, grid_id: str) -> str:
    """The cards of a gallery as a flex grid of ``<div class="card">``."""
    out = [f'<div class="cards" id="{esc(grid_id)}">']
    for card in cards:
        out.append('<div class="card">')
        out.append(f'<div class="title">{esc(card.title)}</div>')
        if card.panels:
            out.append('<div class="panels">')
            for panel in card.panels:
                picture = img(panel.jpeg, "image/jpeg", f"{card.title}: {panel.caption}", width=panel.width,
                              height=panel.height)
                out.append(f"<figure>{picture}<figcaption>{esc(panel.caption)}</figcaption></figure>")
            out.append("</div>")
        if card.note:
            out.append(f'<div class="note">{esc(card.note)}</div>')
        if card.numbers:
            out.append("<dl>")
            for name, value in card.numbers:
                if name == "reason":
                    out.append(f'<dd class="reason">{esc(value)}</dd>')
                else:
                    out.append(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>")
            out.append("</dl>")
        out.append("</div>")
    out.append("</div>")
    return "\n".join(out)


def section(section_id: str, title: str, body: str, lead: str = "") -> str:
    """A ``<section>`` with an ``<h2>``; ``body`` is ready HTML, ``lead`` plain text."""
    lead_html = f'<p class="lead">{esc(lead)}</p>' if lead else ""
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{lead_html}\n{body}\n</section>'


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    """The whole document; ``nav`` is ``(section id, label)`` pairs, ``sections`` ready HTML."""
    links = "".join(f'<a href="#{esc(i)}">{esc(label)}</a>' for i, label in nav)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>", f"<nav>{links}</nav>", "<main>",
        *sections, "</main>", "</body>", "</html>", ""])
