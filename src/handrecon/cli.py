"""The `handrecon` command. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

from pathlib import Path

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


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output directory."),
) -> None:
    """Run the demo: pose the bundled hand model and write meshes (OBJ, GLB) and a JSON summary."""
    from rich.console import Console
    from rich.table import Table

    from handrecon.demo import run_demo

    summary = run_demo(out)
    table = Table(title=f"handrecon demo -> {out}/")
    for col in ("side", "pose", "vertices", "faces", "extent (m)", "files"):
        table.add_column(col)
    for e in summary["meshes"]:
        table.add_row(
            e["side"], e["pose"], str(e["num_vertices"]), str(e["num_faces"]),
            " x ".join(f"{x:.3f}" for x in e["extent_m"]), ", ".join(e["files"].values()),
        )
    Console().print(table)
    typer.echo(f"summary: {out / 'summary.json'}")


if __name__ == "__main__":
    app()
