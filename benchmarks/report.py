"""Print the benchmark groups as one table of ratios, from a pytest-benchmark JSON file.

    pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json

Columns: median time, and the ratio to the group's fill (write limit), alloc+fill (write limit
for a freshly allocated output), read (for backward passes), eager reference and
torch.compile'd reference, all measured in the same run. Absolute times are meaningful only
from the GPU machine; on shared CPUs read the ratios.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def rows(path: str):
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        groups[b["group"]][b["extra_info"]["impl"]] = b["stats"]["median"]
    machine = data.get("machine_info", {})
    yield f"# {machine.get('cpu', {}).get('brand_raw', '?')}, {data.get('datetime', '')}"
    yield "| group | op | median | / fill | / alloc+fill | / read | / reference | / compiled reference |"
    yield "|---|---|---|---|---|---|---|---|"
    for group, t in groups.items():
        for op in ("encode", "decode", "decode_default", "encode_backward", "decode_backward"):
            if op not in t:
                continue
            ref = t.get(f"ref_{op}")
            comp = t.get(f"compiled_ref_{op}")

            def ratio(base):
                return f"{t[op] / base:.2f}" if base else "-"

            yield (f"| {group} | {op} | {t[op] * 1e6:.1f} us | {ratio(t.get('fill'))} | {ratio(t.get('alloc_fill'))} "
                   f"| {ratio(t.get('read'))} "
                   f"| {ratio(ref)} | {ratio(comp)} |")


if __name__ == "__main__":
    for line in rows(sys.argv[1]):
        print(line)
