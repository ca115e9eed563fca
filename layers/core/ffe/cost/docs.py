"""docs/cost.md's tables, as ``ffe cost`` prints them: ``python -m ffe.cost.docs`` rewrites each block that follows
a ``<!-- ffe cost ... -->`` line; tests/unit/cost/test_cost_docs.py fails while one differs from the command's output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

from ffe.cost_cli import add_arguments, estimate_for, render_estimate

BLOCK = re.compile(r"<!-- (ffe cost [^>]*?) -->\n```text\n(.*?)```\n", re.DOTALL)


def output(command: str, root: Path) -> str:
    """What ``command`` (``ffe cost ...``) prints on a pipe (120 columns), run against ``root``."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(shlex.split(command)[2:])
    with contextlib.redirect_stdout(io.StringIO()):  # not a terminal: the piped width, whatever runs this
        return render_estimate(estimate_for(args, root)) + "\n"


def regenerated(text: str, root: Path) -> str:
    return BLOCK.sub(lambda m: f"<!-- {m.group(1)} -->\n```text\n{output(m.group(1), root)}```\n", text)


if __name__ == "__main__":
    root = Path.cwd()
    page = root / "docs/cost.md"
    page.write_text(regenerated(page.read_text(), root))
    print(f"rewrote {page}")
