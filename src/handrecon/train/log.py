"""Run logging on rank 0: a progress display (rich bar in a terminal, plain lines otherwise),
CSV files of scalars (``train_log.csv``, ``val_log.csv``) and TensorBoard when the optional
``tensorboard`` package is installed."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

from handrecon.utils.io import atomic_open


class CsvLog:
    """Append-only CSV of scalar rows keyed by ``step``. New columns rewrite the file (atomically)
    with the wider header; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if resume_step is not None and int(r["step"]) <= resume_step]
        self.columns: list[str] = list(self.rows[0].keys()) if self.rows else []
        self._rewrite()

    def _rewrite(self) -> None:
        if not self.columns:
            if self.path.exists():
                self.path.unlink()
            return
        with atomic_open(self.path, "w") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, restval="")
            w.writeheader()
            w.writerows(self.rows)

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class RunLogger:
    """Everything rank 0 reports during training. Other ranks get ``RunLogger(None, ...)``, a no-op.

    ``progress``: ``rich`` (a bar), ``plain`` (a line per logged step), ``off`` (neither), ``auto``
    (rich in a terminal, plain otherwise). Messages (start, resume, validation) always print.
    """

    def __init__(self, run_dir: Path | None, total_steps: int, start_step: int = 0, progress: str = "auto"):
        self.active = run_dir is not None
        self.total, self.t0, self.step0 = total_steps, time.perf_counter(), start_step
        self.train_csv = self.val_csv = self.tb = None
        self.bar = None
        if not self.active:
            return
        resume = start_step if start_step > 0 else None
        self.train_csv = CsvLog(run_dir / "train_log.csv", resume)
        self.val_csv = CsvLog(run_dir / "val_log.csv", resume)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step or None)
        except ImportError:
            self.tb = None
        mode = progress
        if mode == "auto":
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode
        if mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=total_steps, completed=start_step, info="")

    def message(self, text: str) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            print(text, flush=True)

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step)

    def log_train(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        rate = (step - self.step0) / max(time.perf_counter() - self.t0, 1e-9)
        row = {"step": step, "epoch": epoch, **scalars, "steps_per_s": rate}
        self.train_csv.write(row)
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"train/{k}", v, step)
        info = " ".join(f"{k} {_fmt(v)}" for k, v in scalars.items())
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=f"ep {epoch} {info}")
        elif self.mode == "plain":
            print(f"step {step}/{self.total} epoch {epoch} {info} ({rate:.2f} steps/s)", flush=True)

    def log_val(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        self.val_csv.write({"step": step, "epoch": epoch, **metrics})
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"val/{k}", v, step)
        self.message(f"val @ step {step} epoch {epoch}: " + " ".join(f"{k} {_fmt(v)}" for k, v in metrics.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.tb is not None:
            self.tb.close()
