"""Records of per-row arrays (a training batch, the per-image outcomes of a chunk): `len()` of one
is its row count, the first dimension of the array its `rows_of` names (numpy or torch)."""

from __future__ import annotations

from typing import Any, ClassVar


class RowRecord:
    """Mixin: `len(record)` is `record.<rows_of>.shape[0]` (every per-row array has that length)."""

    rows_of: ClassVar[str]

    def __len__(self) -> int:
        rows: Any = getattr(self, self.rows_of)
        return int(rows.shape[0])
