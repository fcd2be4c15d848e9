"""A report folder: tables, figures, report.md and results.json."""
