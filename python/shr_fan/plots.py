"""The one place that sets matplotlib up (headless) and writes figures."""
from __future__ import annotations

import os


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str, **tight_layout) -> str:
    """Lay the figure out, write it as PNG (creating the folder), close it; returns the path."""
    fig.tight_layout(**tight_layout)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
