"""The `handrecon` command. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="handrecon",
    help="3D hand reconstruction from single RGB images (HandOS, M3DHMR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """3D hand reconstruction from single RGB images (HandOS, M3DHMR)."""


@app.command()
def version() -> None:
    """Print the handrecon version."""
    from handrecon import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
