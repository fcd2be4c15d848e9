"""Tables as plain data: a title, column names and rows of cells, rendered by the report and the CLI.

A cell is a str, an int, a float accuracy in [0, 1] (shown as a percentage with two decimals) or
None (shown as '-', as in the paper's tables).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

Cell = Any


@dataclass
class Table:
    """One report table. `key` names its CSV file ('table1-fgsm-eps0.12-baseline-test')."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""
    percent_columns: set[int] | None = None  # columns holding accuracies; None = every float cell

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.key}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def format_cell(self, column: int, value: Cell) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float) and (self.percent_columns is None or column in self.percent_columns):
            return f"{100 * value:.2f}"
        return str(value)

    def formatted_rows(self) -> list[list[str]]:
        return [[self.format_cell(i, v) for i, v in enumerate(row)] for row in self.rows]

    def to_csv(self) -> str:
        """CSV with raw values (accuracies as fractions, '' for missing)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in row])
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A GitHub Markdown table under a bold title, caption below (accuracies in %)."""
        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        lines = [f"**{esc(self.title)}**", "", "| " + " | ".join(map(esc, self.columns)) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(map(esc, row)) + " |" for row in self.formatted_rows()]
        if self.caption:
            lines += ["", f"*{esc(self.caption)}*"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "columns": self.columns, "rows": self.rows,
                "caption": self.caption,
                "percent_columns": None if self.percent_columns is None else sorted(self.percent_columns)}

    @classmethod
    def from_dict(cls, data: dict) -> "Table":
        pc = data.get("percent_columns")
        return cls(data["key"], data["title"], list(data["columns"]), [list(r) for r in data["rows"]],
                   data.get("caption", ""), None if pc is None else set(pc))
