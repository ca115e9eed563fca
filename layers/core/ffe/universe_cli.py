"""``ffe universe check|put|show``: a stage's universe file per timeframe (docs/universe.md).

``check FILE`` validates a CSV or JSON file offline and prints its table and counts. ``put --stage S --timeframe T
FILE`` validates it, then writes the canonical JSON to ``s3://ffe-<stage>-cycles-<account>/universe/<T>.json``
(``--bucket`` names another) and prints what changed against the file it replaces; ``--dry-run`` writes nothing.
``show --stage S --timeframe T`` prints the stored file (``--json``: one document). Bad input is one line naming the
file, row and field (or the flag), exit code 2; S3 briefly unavailable is one line, exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ffe.domain.models import Timeframe
from ffe.universe_file import MAX_UNIVERSE_BYTES, UniverseEntry

STAGES = ("dev", "staging", "prod")
TIMEFRAMES = tuple(t.value for t in Timeframe)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules, roughly


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # values are checked in command(), not by argparse, so that a bad one is one line (argparse prints its usage too)
    actions = parser.add_subparsers(dest="universe_action", required=True)
    check = actions.add_parser("check", help="validate a CSV or JSON universe file offline; print its table")
    check.add_argument("file", nargs="?", default=None, metavar="FILE", help="the .csv or .json file")
    put = actions.add_parser("put", help="validate a file and store it as the stage's universe for a timeframe")
    put.add_argument("file", nargs="?", default=None, metavar="FILE", help="the .csv or .json file")
    show = actions.add_parser("show", help="the stage's stored universe for a timeframe")
    for action in (put, show):
        action.add_argument("--stage", default=None, help=f"the stage: {', '.join(STAGES)}")
        action.add_argument("--timeframe", default=None, metavar="TF", help=f"the cycle's: {', '.join(TIMEFRAMES)}")
        action.add_argument(
            "--bucket", default=None, help="the bucket (default: ffe-<stage>-cycles-<account id>, the stage's)"
        )
    put.add_argument("--dry-run", action="store_true", help="validate and compare with the stored file; write nothing")
    show.add_argument("--json", action="store_true", help="one JSON document: uri, assets (null: no file), counts")


def command(args: argparse.Namespace, s3: Any = None, sts: Any = None) -> int:
    """Run ``ffe universe check|put|show``; ``s3`` and ``sts`` clients are made from the AWS config when None."""
    from ffe.domain.errors import PermanentError, TransientError
    from ffe.local.errors import LocalError

    try:
        if args.universe_action == "check":
            return _check(_file(args.file))
        stage, timeframe = _stage(args.stage), _timeframe(args.timeframe)
        entries = _file(args.file) if args.universe_action == "put" else None
        store = _store(args, stage, s3, sts)
        try:
            if entries is not None:
                return _put(store, stage, timeframe, entries, args.dry_run)
            return _show(store, timeframe, args.json)
        except PermanentError as exc:  # S3's answer (or the stored file): which stage it was about
            raise LocalError(f"stage {stage}: {exc}") from None
    except TransientError as exc:  # worth another try: not the user's mistake
        print(f"ffe universe: error: {exc}", file=sys.stderr)
        return 1
    except PermanentError as exc:  # InvalidInputError (a bad file or flag) too; each names what to do
        raise LocalError(str(exc)) from None


def _file(path: str | None) -> list[UniverseEntry]:
    from ffe.domain.errors import InvalidInputError
    from ffe.universe_file import parse_universe

    if path is None:
        raise InvalidInputError("FILE: name the .csv or .json universe file")
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_UNIVERSE_BYTES + 1)  # one byte over is enough to refuse it
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    return parse_universe(content, path)


def _stage(stage: str | None) -> str:
    from ffe.domain.errors import InvalidInputError

    if stage not in STAGES:
        raise InvalidInputError(f"--stage {stage or '(missing)'}: one of {', '.join(STAGES)}")
    return stage


def _timeframe(timeframe: str | None) -> str:
    from ffe.domain.errors import InvalidInputError

    if timeframe not in TIMEFRAMES:
        raise InvalidInputError(f"--timeframe {timeframe or '(missing)'}: one of {', '.join(TIMEFRAMES)}")
    return timeframe


def _store(args: argparse.Namespace, stage: str, s3: Any, sts: Any) -> Any:
    from ffe.adapters.universe import UniverseStore
    from ffe.domain.errors import InvalidInputError

    if args.bucket is not None:
        if not _BUCKET.match(args.bucket):
            raise InvalidInputError(f"--bucket {args.bucket!r}: not an S3 bucket name")
        return UniverseStore(args.bucket, s3)
    return UniverseStore(f"ffe-{stage}-cycles-{_account(stage, sts)}", s3)


def _account(stage: str, sts: Any) -> str:
    """The account id of the caller's credentials: the stage's bucket is ``ffe-<stage>-cycles-<account id>``."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ffe.domain.errors import PermanentError

    try:
        return str((sts or boto3.client("sts")).get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        raise PermanentError(
            f"stage {stage}: cannot find its bucket (ffe-{stage}-cycles-<account id>): {exc}; configure AWS "
            "credentials for the stage's account, or name the bucket with --bucket"
        ) from None


def _check(entries: list[UniverseEntry]) -> int:
    from ffe.terminal import show

    show(_table(entries), _counts(entries))
    return 0


def _put(store: Any, stage: str, timeframe: str, entries: list[UniverseEntry], dry_run: bool) -> int:
    from ffe.domain.errors import InvalidInputError
    from ffe.terminal import show

    uri = store.uri(timeframe)
    try:
        previous, unreadable = store.read(timeframe), None
    except InvalidInputError as exc:  # the file it replaces is broken: put mends it
        previous, unreadable = None, str(exc)
    if not dry_run:
        store.write(timeframe, entries)
    lines = [f"{'would write' if dry_run else 'wrote'} {uri} ({stage}, {timeframe}): {_counts(entries)}"]
    if unreadable:
        lines.append(f"the file it replaces did not validate ({unreadable})")
    elif previous is None:
        lines.append("no previous file: the stage's cycles at this timeframe used the AssetUniverseJson parameter")
    else:
        lines.append(f"against the previous file: {_diff(previous, entries)}")
    if dry_run:
        lines.append("nothing written (--dry-run)")
    show(*lines)
    return 0


def _show(store: Any, timeframe: str, as_json: bool) -> int:
    from ffe.terminal import print_json, show

    uri = store.uri(timeframe)
    entries = store.read(timeframe)
    if as_json:
        print_json(
            {
                "uri": uri,
                "assets": None if entries is None else [entry.document() for entry in entries],
                "counts": None if entries is None else _count_document(entries),
            }
        )
    elif entries is None:
        show(f"no universe file at {uri}: cycles at this timeframe use the AssetUniverseJson parameter")
    else:
        show(f"{uri}", _table(entries), _counts(entries))
    return 0


def _table(entries: Sequence[UniverseEntry]) -> Any:
    from ffe.terminal import Column, table

    columns = [Column("asset"), Column("class"), Column("venue"), Column("enabled")]
    rows = [[e.asset, e.asset_class.value, e.venue, "yes" if e.enabled else "no"] for e in entries]
    return table(columns, rows)


def _count_document(entries: Sequence[UniverseEntry]) -> dict[str, Any]:
    on = sum(entry.enabled for entry in entries)
    classes = Counter(entry.asset_class.value for entry in entries)
    return {
        "assets": len(entries),
        "enabled": on,
        "disabled": len(entries) - on,
        "by_class": dict(sorted(classes.items())),
    }


def _counts(entries: Sequence[UniverseEntry]) -> str:
    counts = _count_document(entries)
    classes = ", ".join(f"{name} {n:,}" for name, n in counts["by_class"].items())
    return f"{counts['assets']:,} assets, {counts['enabled']:,} enabled, {counts['disabled']:,} disabled ({classes})"


def _diff(before: Sequence[UniverseEntry], after: Sequence[UniverseEntry]) -> str:
    """``added``, ``removed``, ``changed`` (class or venue) and ``enabled-changed`` counts, old file to new."""
    old = {entry.asset: entry for entry in before}
    new = {entry.asset: entry for entry in after}
    both = old.keys() & new.keys()
    changed = sum((old[a].asset_class, old[a].venue) != (new[a].asset_class, new[a].venue) for a in both)
    flipped = sum(old[a].enabled != new[a].enabled for a in both)
    return (
        f"{len(new.keys() - old.keys()):,} added, {len(old.keys() - new.keys()):,} removed, {changed:,} changed, "
        f"{flipped:,} enabled-changed"
    )
