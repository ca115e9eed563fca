"""docs/cost.md's tables, as ``ffe cost`` prints them: ``python -m ffe.cost.docs`` rewrites each block that follows
a ``<!-- ffe cost ... -->`` line, and the summary table after ``<!-- ffe cost summary -->`` (each stage's totals at
15 minutes); tests/unit/cost/test_cost_docs.py fails while one differs from the command's output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

from ffe.cost_cli import add_arguments, estimate_for, render_estimate

BLOCK = re.compile(r"<!-- (ffe cost --[^>]*?) -->\n```text\n(.*?)```\n", re.DOTALL)
SUMMARY = re.compile(r"<!-- ffe cost summary -->\n(?:\|.*\n)+")
SIZES = (20, 500, 10_000)


def output(command: str, root: Path) -> str:
    """What ``command`` (``ffe cost ...``) prints on a pipe (120 columns), run against ``root``."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(shlex.split(command)[2:])
    with contextlib.redirect_stdout(io.StringIO()):  # not a terminal: the piped width, whatever runs this
        return render_estimate(estimate_for(args, root)) + "\n"


def summary(root: Path) -> str:
    """Each stage's monthly total at 20, 500 and 10,000 assets on the 15-minute rule, and its largest line."""
    from ffe.cost.model import estimate
    from ffe.cost.template_facts import STAGES, read

    rows = [
        "| stage | " + " | ".join(f"{n:,} assets" for n in SIZES) + f" | largest line at {SIZES[-1]:,} |",
        "|---|" + "---:|" * len(SIZES) + "---|",
    ]
    for stage in STAGES:
        facts = read(root, stage)
        results = [estimate(facts, n, ("15m",)) for n in SIZES]
        largest = max(results[-1].lines, key=lambda line: line.monthly)
        totals = " | ".join(f"{r.total:,.2f}" for r in results)
        rows.append(f"| {stage} | {totals} | {largest.component}: {largest.monthly:,.2f} |")
    return "<!-- ffe cost summary -->\n" + "\n".join(rows) + "\n"


def regenerated(text: str, root: Path) -> str:
    text = BLOCK.sub(lambda m: f"<!-- {m.group(1)} -->\n```text\n{output(m.group(1), root)}```\n", text)
    return SUMMARY.sub(lambda _: summary(root), text)


if __name__ == "__main__":
    root = Path.cwd()
    page = root / "docs/cost.md"
    page.write_text(regenerated(page.read_text(), root))
    print(f"rewrote {page}")
