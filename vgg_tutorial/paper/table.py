"""How every layer of the package prints a table: HTML in a notebook, aligned text in a terminal.

The paper reports its results as tables (Tables 1-11); the book's reproductions, the benchmark and the studies
print theirs the same way, so a notebook cell that ends with one displays it properly everywhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass
class Table:
    """A small table that renders as HTML in notebooks and as aligned text elsewhere."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] | None = None  #: (row, column) cells to set in bold, as the paper does
    span_rows: set[int] | None = None  #: rows whose first cell spans the whole width (Table 1's "maxpool")

    def __repr__(self) -> str:
        widths = [max(len(str(row[i])) for row in [self.header, *self.rows]) for i in range(len(self.header))]
        lines = [self.caption] if self.caption else []
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(self.header, widths)).rstrip())
        lines.append("  ".join("-" * width for width in widths))
        for index, row in enumerate(self.rows):
            if index in (self.span_rows or ()):
                lines.append(row[0].center(sum(widths) + 2 * (len(widths) - 1)).rstrip())
            else:
                lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        def cell(tag: str, text: str, row: int, column: int, extra: str = "") -> str:
            body = html.escape(text)
            if (row, column) in (self.bold or ()):
                body = f"<strong>{body}</strong>"
            return f"<{tag}{extra}>{body}</{tag}>"

        parts = ['<table class="dataframe">']
        if self.caption:
            parts.append(f"<caption>{html.escape(self.caption)}</caption>")
        parts.append("<thead><tr>" + "".join(cell("th", h, -1, i) for i, h in enumerate(self.header)) + "</tr></thead>")
        parts.append("<tbody>")
        for r, row in enumerate(self.rows):
            if r in (self.span_rows or ()):
                span = f' colspan="{len(self.header)}" style="text-align:center"'
                parts.append("<tr>" + cell("td", row[0], r, 0, span) + "</tr>")
            else:
                parts.append("<tr>" + "".join(cell("td", text, r, c) for c, text in enumerate(row)) + "</tr>")
        parts.append("</tbody></table>")
        return "".join(parts)
