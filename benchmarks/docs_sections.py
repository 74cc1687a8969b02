"""Marked sections of a docs page that a script owns: `<!-- NAME:begin -->` ... `<!-- NAME:end -->`
(benchmarks/kernel_resources.py and benchmarks/memory_traffic.py each own one of
docs/performance.md; report.py keeps them when it rewrites the page)."""
from __future__ import annotations


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text: str | None, name: str, section: str) -> str:
    """`text` (a docs page, None if missing) with its section `name` replaced by `section`
    (appended when the markers are absent)."""
    begin, end = markers(name)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    if text is None:
        return f"# Performance\n\n{block}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"
