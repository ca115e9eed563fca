"""``ffe cost --stage S [--assets N] [--cadence 15m|1h|1d] [--llm on|off] [--json]``: a stage's monthly estimate.

Prints one line per component (quantity, unit, unit price, monthly USD), the total and the notes that say what was
assumed (ffe/cost/model.py, docs/cost.md). Bad input is one line naming the problem, exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ffe.cost.template_facts import STAGES, TIMEFRAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # validated in command(), not by argparse, so that bad input is one line (argparse prints its usage too)
    parser.add_argument("--stage", default=None, help=f"the stage to price: {', '.join(STAGES)}")
    parser.add_argument("--assets", default=None, metavar="N", help="assets per cycle (default: AssetUniverseJson's)")
    parser.add_argument(
        "--cadence",
        default=None,
        metavar="TF",
        help=f"one decision-cycle rule to price: {', '.join(TIMEFRAMES)} (default: the rules the stage enables)",
    )
    parser.add_argument("--llm", default=None, metavar="on|off", help="the LLM voter (default: InferenceLlmVote's)")
    parser.add_argument("--json", action="store_true", help="one JSON document: lines, total, notes")


def estimate_for(args: argparse.Namespace, root: Path | None = None) -> object:
    """The ``Estimate`` the arguments ask for; ``LocalError`` naming the bad one."""
    import json

    from ffe.cost.model import estimate
    from ffe.cost.template_facts import read
    from ffe.local.errors import LocalError

    if args.stage not in STAGES:
        raise LocalError(f"--stage {args.stage or '(missing)'}: one of {', '.join(STAGES)}")
    if args.cadence is not None and args.cadence not in TIMEFRAMES:
        raise LocalError(f"--cadence {args.cadence}: one of {', '.join(TIMEFRAMES)}")
    if args.llm not in (None, "on", "off"):
        raise LocalError(f"--llm {args.llm}: on or off")
    root = root or _root()
    facts = read(root, args.stage)
    if args.assets is None:
        assets = len(json.loads(facts.parameters["AssetUniverseJson"]))
    elif not str(args.assets).isdigit() or int(args.assets) < 1:
        raise LocalError(f"--assets {args.assets}: a whole number, 1 or more")
    else:
        assets = int(args.assets)
    cadence = (args.cadence,) if args.cadence else None
    return estimate(facts, assets, cadence, None if args.llm is None else args.llm == "on")


def command(args: argparse.Namespace, root: Path | None = None) -> int:
    from ffe.cost.model import Estimate
    from ffe.terminal import print_json, show

    result = estimate_for(args, root)
    assert isinstance(result, Estimate)
    if args.json:
        print_json(result.document())
    else:
        show(render_estimate(result))
    return 0


def render_estimate(result: object) -> str:
    """The estimate as the plain-text table ``ffe cost`` prints (docs/cost.md holds these, tests keep them equal)."""
    from ffe.cost.model import Estimate
    from ffe.cost.prices import READ, REGION
    from ffe.terminal import Column, render, table

    assert isinstance(result, Estimate)
    cadence = "+".join(result.cadence) or "no schedule"
    title = (
        f"ffe-{result.stage}: {result.assets:,} assets, {cadence} ({result.cycles:,.0f} cycles/month), "
        f"LLM {'on' if result.llm else 'off'}; USD per month, {REGION} list prices read {READ} (not fetched live)"
    )
    columns = [
        Column("component"),
        Column("quantity", "right"),
        Column("unit"),
        Column("unit price", "right"),
        Column("monthly", "right"),
        Column("note", free_text=True),
    ]
    rows = [
        [line.component, _quantity(line.quantity), line.unit, _usd(line.price.usd), f"{line.monthly:,.2f}", line.note]
        for line in sorted(result.lines, key=lambda line: -line.monthly)
    ]
    rows.append(["total", "", "", "", f"{result.total:,.2f}", ""])
    return render(title, table(columns, rows, wide=True), *(f"- {note}" for note in result.notes))


def _quantity(value: float) -> str:
    """Whole counts and large figures without decimals; small fractional ones (GB, GB-months) to two places."""
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def _usd(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".")


def _root() -> Path:
    from ffe.local.errors import LocalError

    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "template.yaml").exists() and (folder / "samconfig.toml").exists():
            return folder
    raise LocalError("template.yaml not found in the working directory or its parents: run ffe cost in the project")
