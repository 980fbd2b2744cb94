"""The `handrecon` command. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML training config (schema: configs/README.md)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides, e.g. optim.lr=1e-4 data.batch_size=8."),
    resume: Optional[str] = typer.Option(None, "--resume", help="'auto' (last complete checkpoint of the run dir) or a checkpoint path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (overrides the config's `output`)."),
) -> None:
    """Train a model from a YAML config; run it under torchrun for DistributedDataParallel."""
    from handrecon.train import CheckpointError, ConfigError, load_config
    from handrecon.train import train as run_training

    try:
        cfg = load_config(config, overrides or [])
        if out is not None:
            cfg.output = str(out)
        result = run_training(cfg, resume=resume)
    except (ConfigError, CheckpointError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    metrics = " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    typer.echo(f"done: step {result.step}, run dir {result.run_dir}, last {result.last_checkpoint} {metrics}".rstrip())


if __name__ == "__main__":
    app()
