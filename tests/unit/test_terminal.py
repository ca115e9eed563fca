"""The ffe commands' one table printer: it fits the width, colours only a terminal, and NO_COLOR turns colour off."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import sys
import termios
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO

import pytest
from rich.text import Text

from ffe.terminal import PIPED_WIDTH, Column, console, details, print_json, render, show, styled, table, width

REASON = (
    "RL BUY 0.26 (meta-controller blend +0.26 (entry ±0.15): trend_following 0.29×+0.99, mean_reversion 0.10×-0.28, "
    "breakout 0.23×+0.00, flat 0.38×+0.00); LLM unavailable (Ollama at http://127.0.0.1:11434 is unreachable), "
    "RL alone at ×0.8 [rule rl_only_llm_unavailable; cpu]"
)
COLUMNS = [Column("id", "right"), Column("asset"), Column("action"), Column("reason", free_text=True)]
ROWS: list[list[str | Text]] = [
    ["12", "BTCUSD", styled("BUY"), REASON],
    ["13", "GBPUSD", styled("HOLD"), "stale data: last bar closed"],
]
ESC = "\x1b["


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")


@pytest.fixture
def terminal() -> Iterator[tuple[IO[str], int]]:
    """A pseudo-terminal 100 columns wide: (the stream a program writes to, the fd its screen reads from)."""
    screen, program = pty.openpty()
    fcntl.ioctl(program, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    stream = os.fdopen(program, "w", encoding="utf-8")
    yield stream, screen
    stream.close()
    os.close(screen)


def on_screen(screen: int) -> str:
    return os.read(screen, 1 << 16).decode()


def test_piped_output_is_120_columns_and_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert width() == PIPED_WIDTH  # pytest's captured stdout is no terminal, and COLUMNS is unset
    cut = show(table(COLUMNS, ROWS))
    out = capsys.readouterr().out
    assert cut and ESC not in out
    lines = out.splitlines()
    assert lines[0].split() == ["id", "asset", "action", "reason"] and set(lines[1]) == {"-"}
    assert all(len(line) <= PIPED_WIDTH and line == line.rstrip() for line in lines), out
    btc = lines[2]
    assert btc.split()[:3] == ["12", "BTCUSD", "BUY"] and btc.endswith("…") and btc.count("\n") == 0
    assert lines[3].split()[:3] == ["13", "GBPUSD", "HOLD"] and lines[3].endswith("stale data: last bar closed")


def test_wide_wraps_the_whole_reason_inside_its_column(capsys: pytest.CaptureFixture[str]) -> None:
    assert not show(table(COLUMNS, ROWS, wide=True))
    out = capsys.readouterr().out
    assert all(len(line) <= PIPED_WIDTH for line in out.splitlines()), out
    assert "".join(REASON.split()) in "".join(out.split())  # every word of it, in order
    reason_starts = out.splitlines()[0].index("reason")
    continued = [line for line in out.splitlines()[3:] if line.startswith(" " * reason_starts)]
    assert continued, out  # the reason wraps under its own column, not under the asset


def test_columns_sets_a_terminal_s_width_never_a_pipe_s(
    terminal: tuple[IO[str], int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert width(terminal[0]) == 80
    assert width() == PIPED_WIDTH  # piped output is the same wherever it runs
    show(table(COLUMNS, ROWS))
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) == PIPED_WIDTH


def test_only_free_text_is_cut_when_the_width_is_short(
    terminal: tuple[IO[str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "16")
    monkeypatch.setenv("NO_COLOR", "1")
    stream, screen = terminal
    monkeypatch.setattr(sys, "stdout", stream)
    show(table([Column("id"), Column("asset"), Column("size", "right")], [["12", "BTCUSD", "0.99018949"]]))
    stream.flush()
    assert "12  BTCUSD  0.99018949" in on_screen(screen)  # run over the width rather than cut an id or a number


def test_a_terminal_gets_its_width_and_colour(terminal: tuple[IO[str], int]) -> None:
    stream, screen = terminal
    assert width(stream) == 100
    out = console(stream)
    out.print(table(COLUMNS, ROWS))
    stream.flush()
    text = on_screen(screen)
    assert f"{ESC}32mBUY" in text and f"{ESC}33mHOLD" in text  # BUY green, HOLD yellow


def test_no_color_means_no_escape_codes_even_on_a_terminal(
    terminal: tuple[IO[str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream, screen = terminal
    console(stream).print(table(COLUMNS, ROWS))
    stream.flush()
    text = on_screen(screen)
    assert "BTCUSD" in text and "\x1b" not in text


def test_show_writes_a_terminal_in_colour_and_no_color_wins_over_force_color(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's way to treat any stream as a terminal
    show(table(COLUMNS, ROWS))
    assert ESC in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    show(table(COLUMNS, ROWS))
    assert "\x1b" not in capsys.readouterr().out


def test_text_is_never_read_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    show("[bold]not bold[/bold] :smile: [rule x]", details([("reason", "[red]kept[/red]")]))
    out = capsys.readouterr().out
    assert "[bold]not bold[/bold] :smile: [rule x]" in out and "[red]kept[/red]" in out


def test_render_is_plain_text_at_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    text = render("heading", table(COLUMNS, ROWS), "tail")
    lines = text.splitlines()
    assert lines[0] == "heading" and lines[-1] == "tail" and "\x1b" not in text
    assert all(len(line) <= PIPED_WIDTH for line in lines)


def test_details_wraps_long_values_under_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    show(details([("id", "12"), ("reason", REASON)], indent=2))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "12"] and lines[1].startswith("  reason  RL BUY")
    assert len(lines) > 2 and all(len(line) <= PIPED_WIDTH for line in lines)
    assert lines[2].startswith(" " * len("  reason  ")) and not lines[2][len("  reason  ")].isspace()


def test_print_json_is_one_document_with_exact_decimals(capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
    print_json({"cash": Decimal("100000.10"), "at": when, "reason": "entry ±0.15", "n": 2})
    out = capsys.readouterr().out
    assert json.loads(out) == {"cash": "100000.10", "at": "2019-06-15T12:01:00+00:00", "reason": "entry ±0.15", "n": 2}


def test_a_stream_without_a_descriptor_is_piped() -> None:
    assert width(io.StringIO()) == PIPED_WIDTH
