"""A checkpoint card is data: loading one never imports or runs what it names, and an edited,
incomplete or path-escaping card is refused with a one-line reason (issue 11, item 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from test_predictor import tiny_checkpoint
from typer.testing import CliRunner

import handrecon
from handrecon.cli import app
from handrecon.infer.registry import SHIPPED_MODELS
from handrecon.checkpoint import CheckpointError, card_digest, load_model, seal_card


@pytest.fixture
def ckpt(tmp_path):
    return tiny_checkpoint(tmp_path / "ck")


def edit_card(ckpt, reseal: bool, **changes):
    path = ckpt / "card.json"
    card = {**json.loads(path.read_text()), **changes}
    card = {k: v for k, v in card.items() if v is not None}
    path.write_text(json.dumps(seal_card(card) if reseal else card))


@pytest.mark.parametrize("reseal", [False, True], ids=["edited", "edited-and-resealed"])
def test_card_imports_are_never_imported(ckpt, tmp_path, reseal):
    """A planted module named in the card's `imports` must not run, even when the attacker also
    recomputes the card digest: loading builds only families handrecon registers itself."""
    marker = tmp_path / "pwned"
    (tmp_path / "planted_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    edit_card(ckpt, reseal, imports=["planted_module"])
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import handrecon\n"
            f"try:\n    handrecon.load({str(ckpt)!r})\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    if not reseal:
        assert "does not match its own digest" in out.stdout
    r = CliRunner().invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(tmp_path / "m.onnx")])
    assert not marker.exists() and (r.exit_code == 0) == reseal


def test_edited_card_is_refused(ckpt):
    edit_card(ckpt, reseal=False, kwargs={"num_kernels": 4})
    with pytest.raises(CheckpointError, match="does not match its own digest"):
        load_model(ckpt)
    edit_card(ckpt, reseal=False, card_sha256=None)  # digest removed: not written by handrecon
    with pytest.raises(CheckpointError, match="own digest"):
        handrecon.load(ckpt)


@pytest.mark.parametrize("files, message", [
    (None, "no 'files' table"),
    ({}, "no 'files' table"),
    ("model.safetensors", "no 'files' table"),
    ({"model.safetensors": "0" * 64, "/etc/passwd": "0" * 64}, "not a plain file name"),
    ({"model.safetensors": "0" * 64, "../../card.json": "0" * 64}, "not a plain file name"),
    ({"model.safetensors": "0" * 64, "..": "0" * 64}, "not a plain file name"),
])
def test_card_files_must_be_plain_names_inside_the_checkpoint(ckpt, files, message):
    card = json.loads((ckpt / "card.json").read_text())
    if isinstance(files, dict) and "model.safetensors" in files:  # the real hash: only the bad entry is wrong
        files = {**files, "model.safetensors": card["files"]["model.safetensors"]}
    edit_card(ckpt, reseal=True, files=files)
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt)


def test_corrupt_weights_are_refused_even_with_a_resealed_card(ckpt):
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-100:] = b"\x00" * 100
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        load_model(ckpt)


def test_unknown_architecture_names_the_registered_families(ckpt):
    edit_card(ckpt, reseal=True, architecture="evil_family")
    with pytest.raises(CheckpointError, match=r"unknown model 'evil_family' \(registered: .*m3dhmr"):
        load_model(ckpt)
    for arch in ("../x", "os.system", 3):
        edit_card(ckpt, reseal=True, architecture=arch)
        with pytest.raises(CheckpointError, match="must be a model family name"):
            load_model(ckpt)


def test_saved_and_shipped_cards_carry_a_valid_digest(ckpt):
    for d in (ckpt, SHIPPED_MODELS["m3dhmr-openhand"].directory):
        card = json.loads((d / "card.json").read_text())
        assert card["card_sha256"] == card_digest(card)
    shutil.copytree(SHIPPED_MODELS["m3dhmr-openhand"].directory, ckpt.parent / "shipped")
    assert load_model(ckpt.parent / "shipped")[1]["name"] == "m3dhmr-openhand"


def test_a_card_naming_a_refused_pickle_as_hand_model_is_a_one_line_error(ckpt, tmp_path):
    """kwargs / inference spec pointing hand_model at a pickle that runs code: refused, nothing runs,
    and the CLI says so in one line (it used to end in an UnpicklingError traceback)."""
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    evil = tmp_path / "MANO_RIGHT.pkl"
    evil.write_bytes(pickle.dumps({"f": Evil()}, protocol=2))
    card = json.loads((ckpt / "card.json").read_text())
    edit_card(ckpt, reseal=True, kwargs={**card["kwargs"], "hand_model": str(evil)},
              inference={**card["inference"], "hand_model": str(evil)})
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_model(ckpt)
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(ckpt)])
    assert r.exit_code == 2 and "refusing to load" in r.output and "Traceback" not in r.output
    assert not marker.exists()
