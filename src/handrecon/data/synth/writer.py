"""Sharded, resumable generation of a synthetic dataset (`handrecon synth`).

Sample i goes to shard i // shard_size and is rendered from its own random stream (seed, i), so
the dataset is the same whatever the number of workers and however often the run was resumed:
finished shards are skipped, unfinished ones are rendered again from scratch. Shards are the
unit of work of the worker processes; each worker makes its own EGL context on first render.
Workers start with `forkserver` (preloading this module, so no GL context or torch thread pool
is ever inherited through fork) where available, else `spawn`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from handrecon.data.synth.appearance import list_background_images
from handrecon.data.synth.config import SynthConfig
from handrecon.data.synth.engine import get_engine
from handrecon.data.synthetic_format import ShardWriter, init_output, list_complete_shards, make_meta
from handrecon.hand.load import topology_sha256
from handrecon.hand.openhand import load_openhand

_PROGRESS = None  # per worker process: queue of rendered-sample counts


@dataclass
class GenerateSummary:
    out: Path
    num: int
    shards: int
    shards_skipped: int
    images_written: int
    seconds: float
    cpu_seconds: float  # CPU time spent rendering and writing, summed over the processes that did it

    @property
    def images_per_second(self) -> float:
        return self.images_written / self.seconds if self.seconds > 0 else float("nan")


def write_shard(out: Path, cfg: SynthConfig, seed: int, num: int, shard_size: int, shard: int,
                backgrounds: str | None = None, backend: str | None = None,
                on_sample: Callable[[], None] | None = None) -> int:
    """Render and atomically write shard `shard` (samples shard*shard_size .. min(num, next)); returns its image count."""
    engine = get_engine(cfg, backgrounds, backend)
    indices = range(shard * shard_size, min(num, (shard + 1) * shard_size))
    with ShardWriter(out, shard, image_format=cfg.image_format, jpeg_quality=cfg.jpeg_quality) as w:
        for i in indices:
            s = engine.sample(i, seed)
            w.add(s.image, s.K, s.hands, sample_id=f"{i:08d}", extra=s.meta)
            if on_sample is not None:
                on_sample()
    return len(indices)


def _init_worker(progress_queue, parent_pid: int) -> None:
    import torch  # in the worker process only

    global _PROGRESS
    _PROGRESS = progress_queue
    torch.set_num_threads(1)  # one core per worker; also makes the LBS sums independent of threading
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int, period_s: float = 0.5) -> None:
    """Worker watchdog: end this process once the `handrecon synth` process is gone (killed with
    SIGKILL it cannot tell its pool), so no worker renders on for nobody."""
    while True:
        time.sleep(period_s)
        try:
            os.kill(parent_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (or the pid now belongs to another user)
            os._exit(1)


def _worker_shard(args: tuple) -> float:
    """Write one shard in a worker; returns the CPU seconds it took (all threads of the process)."""
    c0 = time.process_time()
    write_shard(*args, on_sample=lambda: _PROGRESS.put(1))
    return time.process_time() - c0


def _mp_context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["handrecon.data.synth.engine", "trimesh", "scipy.spatial.transform"])
        return ctx
    return mp.get_context("spawn")


def generate(
    out: str | os.PathLike,
    cfg: SynthConfig,
    num: int,
    seed: int = 0,
    shard_size: int = 500,
    workers: int = 1,
    backgrounds: str | os.PathLike | None = None,
    backend: str | None = None,
    progress: bool = True,
) -> GenerateSummary:
    """Write `num` samples of `cfg` into `out` (handrecon-synthetic format), resuming if `out`
    holds an earlier run with the same settings. workers <= 1 renders in this process."""
    import torch

    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    if shard_size <= 0:
        raise ValueError(f"--shard-size must be positive, got {shard_size}")
    if workers < 0:
        raise ValueError(f"--workers must be 0 or more (0 and 1: render in this process), got {workers}")
    out = Path(out)
    backgrounds = os.pathsep.join(str(Path(b).resolve()) for b in str(backgrounds).split(os.pathsep)) \
        if backgrounds else None
    if backgrounds:
        list_background_images(backgrounds)  # fail early with a clear message
    meta = make_meta(cfg.name, seed, num, shard_size, "openhand", topology_sha256(load_openhand()),
                     image_format=cfg.image_format, config=cfg.to_dict(), backgrounds=backgrounds)
    init_output(out, meta)
    num_shards = meta["num_shards"]
    done = set(list_complete_shards(out))
    todo = [s for s in range(num_shards) if s not in done]
    todo_images = sum(min(num, (s + 1) * shard_size) - s * shard_size for s in todo)
    t0 = time.perf_counter()
    cpu = 0.0

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]synth {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(cfg.name, total=todo_images, rate="  -  ")

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            done_n = bar.tasks[0].completed
            bar.update(task, rate=f"{done_n / max(time.perf_counter() - t0, 1e-9):6.1f}")

        if workers <= 1 or len(todo) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            c0 = time.process_time()
            try:
                for s in todo:
                    write_shard(out, cfg, seed, num, shard_size, s, backgrounds, backend, on_sample=advance)
            finally:
                torch.set_num_threads(threads)
                cpu = time.process_time() - c0
        else:
            ctx = _mp_context()
            q = ctx.Queue()
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                     initializer=_init_worker, initargs=(q, os.getpid())) as pool:
                pending = {pool.submit(_worker_shard, (out, cfg, seed, num, shard_size, s, backgrounds, backend)) for s in todo}
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for f in finished:
                        cpu += f.result()  # re-raises a worker's error
                    _drain(q, advance)
                _drain(q, advance)
    return GenerateSummary(out, num, num_shards, len(done), todo_images, time.perf_counter() - t0, cpu)


def _drain(q, advance: Callable[[int], None]) -> None:
    n = 0
    while True:
        try:
            n += q.get_nowait()
        except queue.Empty:
            break
    if n:
        advance(n)
