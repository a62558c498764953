"""The report's HTML shell: style, the table-sorting script and the page with its section index.

No external resource is referenced: plotly.js is inlined by the first figure, the rest is here.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from research.safe_files import write_whole

__all__ = ["CSS", "SORT_SCRIPT", "Section", "info_table", "note", "paragraph", "render_page", "write_page"]

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px auto;
       max-width: 1280px; color: #222; padding: 0 12px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #e4e4e4; padding-bottom: 4px; }
h3 { margin: 16px 0 4px; font-size: 105%; }
table { border-collapse: collapse; margin: 8px 0; font-size: 92%; }
th, td { border: 1px solid #ddd; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
#metrics-table td:nth-child(n+2), #relative-table td:nth-child(n+2), #trade-stats td:nth-child(n+2)
  { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th::after { content: " \\2195"; color: #bbb; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: #333; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: #333; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid #eee; }
.wide { overflow-x: auto; }
#trade-list td, #breaker-events td:nth-child(2), #drawdowns-table td { white-space: nowrap; }
#trade-list { font-size: 85%; }
.scroll thead th { position: sticky; top: 0; }
.grid { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.muted { color: #666; font-size: 90%; }
nav.toc { font-size: 92%; line-height: 1.7; }
nav.toc a { margin-right: 12px; white-space: nowrap; }
code { word-break: break-all; }
"""

SORT_SCRIPT = """
(function () {
  function key(cell, numeric) {
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    if (!numeric) { return raw; }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, column) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.map.call(body.rows, function (row, index) {
          return { row: row, key: key(row.cells[column], numeric), index: index };
        });
        rows.sort(function (a, b) {
          if (a.key === null || b.key === null) {  // missing values last, whatever the direction
            return a.key === b.key ? a.index - b.index : (a.key === null ? 1 : -1);
          }
          var order = numeric ? a.key - b.key : String(a.key).localeCompare(String(b.key));
          return (ascending ? order : -order) || a.index - b.index;
        });
        var fragment = document.createDocumentFragment();
        rows.forEach(function (item) { fragment.appendChild(item.row); });
        body.appendChild(fragment);
      });
    });
  });
})();
"""


@dataclass(frozen=True)
class Section:
    """One report section: anchor id, ``<h2>`` heading and its HTML body (already escaped)."""

    anchor: str
    heading: str
    body: str


def render_page(title: str, subtitle: str, header: str, sections: Sequence[Section]) -> str:
    """Return the full HTML document.

    Parameters
    ----------
    title : str
        Page title and ``<h1>`` (escaped here).
    subtitle : str
        One line under the title (escaped here).
    header : str
        HTML shown between the subtitle and the section index (run info; already escaped).
    sections : Sequence[Section]
        In page order; each becomes ``<section id=anchor><h2>heading</h2>body</section>`` and an
        entry of the index at the top.

    Returns
    -------
    str
        A complete ``<!DOCTYPE html>`` document with the sort script at the end of ``<body>``.
    """
    toc = " ".join(f'<a href="#{html.escape(s.anchor)}">{html.escape(s.heading)}</a>' for s in sections)
    head = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="muted">{html.escape(subtitle)}</p>
{header}
<nav class="toc">{toc}</nav>
"""
    parts = [head]
    for k, s in enumerate(sections):
        parts += ["\n" if k else "", f'<section id="{html.escape(s.anchor)}">\n<h2>{html.escape(s.heading)}</h2>\n',
                  s.body, "\n</section>"]
    parts.append(f"""
<script>{SORT_SCRIPT}</script>
</body>
</html>
""")
    # one join of the parts: the document is the only copy of the sections' text made here (the
    # charts' text is megabytes: plotly.js alone is 4.8 MB)
    return "".join(parts)


def paragraph(text: str, klass: str = "", ident: str = "") -> str:
    """Return ``text`` (escaped here) as a ``<p>``, with ``class`` and ``id`` attributes when given.

    Examples
    --------
    >>> paragraph("a < b", "muted", "why")
    '<p class="muted" id="why">a &lt; b</p>'
    """
    attrs = (f' class="{klass}"' if klass else "") + (f' id="{ident}"' if ident else "")
    return f"<p{attrs}>{html.escape(text)}</p>"


def note(text: str) -> str:
    """Return an explanatory note under a table or chart: a muted :func:`paragraph`."""
    return paragraph(text, "muted")


def info_table(rows: Iterable[tuple[str, str]], sep: str = "\n") -> str:
    """Return the run-information table of a page header (``id="run-info"``): one row per
    (name, value), the value as code, both escaped here; rows joined by ``sep``.

    Examples
    --------
    >>> info_table([("run", "r1")], sep="")
    '<table id="run-info"><tr><th>run</th><td><code>r1</code></td></tr></table>'
    """
    body = sep.join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in rows)
    return f'<table id="run-info">{sep}{body}{sep}</table>'


def write_page(path: str | os.PathLike[str], document: str) -> Path:
    """Write an HTML ``document`` to ``path`` whole (:func:`research.safe_files.write_whole`) and
    return the path written: ``report.html`` inside ``path`` when it is a folder; missing parent
    folders are created.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_whole(target, document)
