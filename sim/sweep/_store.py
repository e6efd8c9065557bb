"""Resumable storage: one small Parquet file per finished cell, then one merged table.

A cell's file is named by its content hash (:attr:`Cell.key`) and written atomically (a
temporary file renamed into place), so after an interruption every file present is
complete and a restart runs only the cells without one. Growing a grid (more policies, more
sessions in new blocks) reuses the cells it shares with the old one.
"""

from __future__ import annotations

from pathlib import Path

from abr.errors import InputError
from abr.io import write_atomic
from sim.sweep._grid import Cell

__all__ = ["CellStore", "write_table"]


class CellStore:
    """Finished cells under ``root/cells/<key>.parquet``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.dir = self.root / "cells"

    def path(self, cell: Cell) -> Path:
        return self.dir / f"{cell.key}.parquet"

    def finished(self, cells: list[Cell]) -> set[str]:
        """Keys of the cells that already have a result file."""
        if not self.dir.is_dir():
            return set()
        present = {p.name[: -len(".parquet")] for p in self.dir.iterdir() if p.name.endswith(".parquet")}
        return {c.key for c in cells} & present

    def write(self, cell: Cell, frame) -> Path:
        return write_atomic(self.path(cell), lambda tmp: frame.to_parquet(tmp, index=False))

    def read(self, cell: Cell):
        import pandas as pd

        path = self.path(cell)
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # any reader failure means a damaged file
            msg = f"cannot read cell result ({exc}); delete the file to rerun that cell"
            raise InputError(msg, path=path) from None


def write_table(frame, path: Path) -> Path:
    """Write a table as Parquet or CSV (by suffix), atomically."""
    if path.suffix == ".parquet":
        return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    if path.suffix == ".csv":
        return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    raise InputError("table must end in .parquet or .csv", path=path)
