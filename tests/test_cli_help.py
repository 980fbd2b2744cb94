"""Every command's --help shows its help texts verbatim: nothing in them is read as markup (Rich ate
"[serve]" from `pip install "handrecon[serve]"` and the box list from --boxes' JSON example)."""
import re

from typer.main import get_command
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.version import __version__


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_help_text_is_printed_as_written():
    commands = get_command(app).commands
    assert {"reconstruct", "detect", "serve", "train", "evaluate"} <= set(commands)
    for name, command in commands.items():
        shown = _flat(CliRunner().invoke(app, [name, "--help"], terminal_width=400).output)
        for text in [command.help or ""] + [p.help for p in command.params if getattr(p, "help", None)]:
            assert _flat(text) in shown, f"`handrecon {name} --help` does not show: {text}"


def test_bracketed_examples_survive():
    serve = _flat(CliRunner().invoke(app, ["serve", "--help"]).output)
    assert 'pip install "handrecon[serve]"' in serve
    boxes = _flat(CliRunner().invoke(app, ["reconstruct", "--help"], terminal_width=400).output)
    assert '{"a.jpg": [[x1, y1, x2, y2], {"box": [...], "side": "left"}]}' in boxes


def test_short_help_version_and_usage_lines():
    runner = CliRunner()
    for name in get_command(app).commands:  # -h as well as --help, on every command
        assert runner.invoke(app, [name, "-h"]).exit_code == 0, name
    for args in (["--version"], ["version"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and r.output.strip() == __version__
    assert "Usage: handrecon reconstruct [OPTIONS] {PATH}..." in runner.invoke(app, ["reconstruct", "-h"]).output
    assert "{CONFIG.yaml} [KEY=VALUE]..." in runner.invoke(app, ["train", "-h"]).output
