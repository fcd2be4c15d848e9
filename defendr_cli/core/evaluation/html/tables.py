"""Report tables (results.json's `tables` entries and tables made here) as sortable HTML tables.

A table is a dict {'key', 'title', 'columns', 'rows', 'caption', 'percent_columns'} as written by
`Table.to_dict()`: accuracies are fractions in [0, 1] in the `percent_columns` (every float cell
when None) and are shown in % with two decimals, as in report.md. Every numeric cell carries its
exact value in `data-v`, which the sort script reads (and tests compare with results.json).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from defendr_cli.core.evaluation.html.page import esc, number_attr, percent

# a cell renderer: (column index, row, value) -> the <td> element, or None for the default cell
CellHook = Callable[[int, list[Any], Any], str | None]


def is_percent_column(table: dict, column: int) -> bool:
    columns = table.get("percent_columns")
    return columns is None or column in columns


def default_cell(table: dict, column: int, value: Any) -> str:
    """A <td>: accuracy in % (class 'num', data-v the fraction), other numbers as they are, text escaped."""
    if isinstance(value, float) and is_percent_column(table, column):
        return f'<td class="num" data-v="{number_attr(value)}">{percent(value)}</td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num" data-v="{number_attr(value)}">{esc(value)}</td>'
    if value is None:
        return '<td class="num" data-v="">-</td>'
    return f"<td>{esc(value)}</td>"


def table_html(table: dict, *, cell: CellHook | None = None, row_class: Callable[[list[Any]], str] | None = None,
               key: str | None = None) -> str:
    """The table's title, then a sortable <table> (id = its key) with its caption."""
    key = key or str(table.get("key", ""))
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in table.get("columns", []))
    body = []
    for row in table.get("rows", []):
        cells = []
        for i, value in enumerate(row):
            custom = cell(i, row, value) if cell else None
            cells.append(custom if custom is not None else default_cell(table, i, value))
        css = row_class(row) if row_class else ""
        attr = f' class="{esc(css)}"' if css else ""
        body.append(f"<tr{attr}>" + "".join(cells) + "</tr>")
    caption = f"<caption>{esc(table['caption'])}</caption>" if table.get("caption") else ""
    title = f'<p class="table-title">{esc(table.get("title", ""))}</p>' if table.get("title") else ""
    return (f'{title}<div class="scroll"><table class="sortable" id="{esc(key)}">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


def simple_table(key: str, title: str, columns: list[str], rows: list[list[Any]], *, caption: str = "",
                 percent_columns: list[int] | None = ()) -> dict:
    """A table dict in results.json's form (percent_columns () = no column is an accuracy)."""
    return {"key": key, "title": title, "columns": columns, "rows": rows, "caption": caption,
            "percent_columns": None if percent_columns is None else list(percent_columns)}
