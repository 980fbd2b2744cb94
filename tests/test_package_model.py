"""tools/package_model.py: a checkpoint packaged as a shipped model loads through handrecon.load."""

from __future__ import annotations

import json

import numpy as np
from helpers import load_script


def _tool():
    return load_script("tools/package_model.py")


def test_packaged_checkpoint_loads_with_its_inference_settings(tmp_path):
    from helpers import random_checkpoint

    import handrecon

    # width 16: 9.8 MB in float32, 4.9 MB in float16, so a 6 MB limit takes the float16 path
    ckpt = random_checkpoint(tmp_path / "ckpt", {"backbone_kwargs": {"width": 16}}, input_size=64)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"pa_mpjpe_mm": 12.5}))
    assert _tool().main([str(ckpt), "--name", "tiny", "--out-root", str(tmp_path / "assets"),
                         "--metrics", f"pipeline={metrics}", "--max-mb", "6"]) == 0
    card = json.loads((tmp_path / "assets" / "tiny" / "card.json").read_text())
    source = json.loads((ckpt / "card.json").read_text())
    assert card["inference"] == source["inference"]  # copied from the trainer's card, never patched
    assert card["inference"]["input_size"] == 64 and card["inference"]["crop"]["scale"] == 1.325
    assert card["weights_dtype"] == "float16" and card["heldout_metrics"] == {"pipeline": {"pa_mpjpe_mm": 12.5}}
    rec = handrecon.load(tmp_path / "assets" / "tiny")
    result = rec.predict(np.zeros((64, 64, 3), np.uint8))
    assert rec.spec["input_size"] == 64 and result.hands[0].vertices.shape == (778, 3)


def test_the_wheel_carries_every_shipped_file(tmp_path):
    """A wheel built from the source tree holds every file of the shipped models and the hand model,
    the heads in a detector's subfolders included (pyproject's package-data once stopped one level
    short of them: an installed, non-editable handrecon had no side head)."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "src" / "handrecon", tmp_path / "src" / "handrecon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path / "dist"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    package = root / "src" / "handrecon"
    shipped = [p for folder in (package / "assets", package / "hand" / "assets") for p in folder.rglob("*")
               if p.is_file() and p.suffix in (".json", ".safetensors", ".npz", ".txt", ".png", ".jpg")]
    assert any(p.parent.name == "box_verifier" for p in shipped) and any(p.parent.name == "side_head" for p in shipped)
    missing = [str(p.relative_to(package.parent)) for p in shipped if str(p.relative_to(package.parent)) not in packed]
    assert not missing, f"not in the wheel: {missing}"
