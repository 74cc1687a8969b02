"""A run's logs: CSV files (OUT/log.csv, OUT/curves.csv) with a header and one row per step
written, flushed row by row, continued across --resume without repeated steps; and their optional
TensorBoard mirror (OUT/tensorboard)."""
from __future__ import annotations

import csv
import os


class CsvLog:
    """A CSV file with `columns`, whose first column is the step.

    `resume_step`: a resumed run keeps the rows up to the checkpoint's step and drops later ones
    (written after the last checkpoint, they are about to be run again), so no step repeats; a
    file with another header is started afresh."""

    def __init__(self, path: str, columns: list[str], resume_step: int | None = None):
        self.columns = list(columns)
        kept = []
        if resume_step is not None and os.path.exists(path):
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if rows and rows[0] == self.columns:
                kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= resume_step]
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.columns)
        self.writer.writerows(kept)
        self.file.flush()

    def write(self, row: list) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"CsvLog.write: {len(row)} values for {len(self.columns)} columns")
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_csv(path: str) -> dict[str, list[float]]:
    """{column: values} of a CsvLog's file (empty cells: NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {name: [float(r[name]) if r[name] != "" else float("nan") for r in rows] for name in rows[0]}


def tensorboard(folder: str):
    """A TensorBoard SummaryWriter for `folder`/tensorboard, or None without the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(os.path.join(folder, "tensorboard"))
