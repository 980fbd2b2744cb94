"""The training recipes (tools/*.sh) as shell scripts: a dry run with a fake Python that records every
call, so that a recipe whose commands no longer fit together fails here and not after hours of training."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """An executable that appends its arguments to a log (one line per call), reads a heredoc given on
    stdin ("-"), and fails `-c` probes (an optional extra such as pyrender is then "not installed")."""
    log = tmp_path / "calls.log"
    exe = tmp_path / "python"
    exe.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n[ "$1" = "-" ] && cat > /dev/null\n'
                   '[ "$1" = "-c" ] && exit 1\nexit 0\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe, log


def test_train_shipped_dry_run_trains_every_stage_and_packages_the_shipped_average(tmp_path):
    exe, log = fake_python(tmp_path)
    photos = {}
    for name in ("PHOTOS", "OPENCV", "LOMIRI", "TEXTURES", "CUTOUTS", "TUXPAINT", "GCOMPRIS"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        (folder / "SOURCES.md").write_text("|")
        photos[name] = str(folder)
    env = {**os.environ, **photos, "PY": str(exe), "DATA": str(tmp_path / "data"), "RUN": str(tmp_path / "run")}
    subprocess.run(["bash", "tools/train_shipped.sh"], cwd=REPO, env=env, check=True, capture_output=True, timeout=60)
    calls = log.read_text().splitlines()
    trained = [re.search(r"train (\S+)", c).group(1) for c in calls if c.startswith("-m handrecon.cli train ")]
    for config in trained:
        assert (REPO / config).is_file(), f"the recipe trains {config}, which does not exist"
    assert all(trained.count(c) <= 2 for c in trained)  # once, or twice for a soup's two runs
    package = calls[-1].split()
    assert package[0] == "tools/package_model.py" and "--average" in package
    checkpoints = package[1:package.index("--average")]
    assert len(checkpoints) == 6, f"the final packaging averages {checkpoints}, not the shipped stages 29-31's six runs"
    for a, b in zip(checkpoints[::2], checkpoints[1::2]):  # each stage's two runs: RUN and RUNb
        assert b == a.replace("/checkpoints/", "b/checkpoints/")
    last_trains = [c for c in calls if c.startswith("-m handrecon.cli train ")][-6:]
    for run, train in zip(checkpoints, last_trains):
        assert re.search(r"--out (\S+)", train).group(1) == run.split("/checkpoints/")[0]
    # the record's heredoc call: "- RUN/training.json RENDER_S TRAIN_S EVAL_S CONFIG..." (every config trained, in order)
    record = [c.split() for c in calls if c.startswith("- ") and c.split()[1].endswith("/training.json")]
    assert len(record) == 1, "the recipe writes its training record once"
    assert record[0][5:] == trained, "the training record's recipe must list the configs the recipe trained"


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "tools").glob("*.sh")))
def test_every_config_a_recipe_names_exists(script):
    text = (REPO / "tools" / script).read_text()
    for config in re.findall(r"configs/[\w./-]+\.yaml", text):
        assert (REPO / config).is_file(), f"tools/{script} names {config}, which does not exist"
