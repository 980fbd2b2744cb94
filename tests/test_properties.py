"""Property-based tests (hypothesis) over the input boundary (issue 11).

Whatever arrives — images of any dtype, shape or file format, boxes, K, sides, focal lengths, file
names and bytes, card JSON, ONNX metadata — the outcome is a valid result or one clear error
(ValueError and its subclasses: DatasetError, CheckpointError is a RuntimeError), never another
exception, never a partial file, and a batch always goes on past a bad item.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from test_predictor import tiny_checkpoint

import handrecon
from handrecon.checkpoint import CheckpointError, seal_card
from handrecon.data.schema import DatasetError, read_image
from handrecon.infer.batch import reconstruct_paths

# Examples per test come from the hypothesis profile (tests/conftest.py): "ci" by default,
# HYPOTHESIS_PROFILE=hunt for a long search.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
reasonable = st.floats(-500, 500)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return handrecon.load(tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck"))


def _valid(result) -> None:
    for hand in result.hands:
        for name in ("box", "keypoints_2d", "keypoints_3d", "vertices", "cam_t"):
            assert np.isfinite(np.asarray(getattr(hand, name), np.float64)).all(), name
        assert 0.05 - 1e-6 <= hand.cam_t[2] <= 2.0 + 1e-6  # the documented depth range
    json.dumps(result.to_json(), allow_nan=False)  # strict JSON


images = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.int64, np.bool_]),
               hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=40)),
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 80), st.integers(1, 80), st.just(3))),
    st.just([[1, 2, 3]]), st.none(), st.text(max_size=5),
)
boxes = st.one_of(st.none(), st.just([]), st.lists(st.lists(st.one_of(floats, reasonable), min_size=0, max_size=5),
                                                     min_size=0, max_size=3))
sides = st.one_of(st.none(), st.lists(st.one_of(st.sampled_from(["left", "right"]), st.none(), st.text(max_size=4)),
                                      max_size=3))
Ks = st.one_of(st.none(), hnp.arrays(np.float64, st.sampled_from([(3, 3), (2, 2), (3,)]), elements=floats),
               st.builds(lambda f, cx, cy: [[f, 0, cx], [0, f, cy], [0, 0, 1]], floats, reasonable, reasonable))


@SETTINGS
@given(image=images, K=Ks, boxes=boxes, sides=sides)
def test_predict_gives_a_valid_result_or_a_value_error(model, image, K, boxes, sides):
    try:
        result = model.predict(image, K=K, boxes=boxes, sides=sides)
    except ValueError:
        return
    _valid(result)


@SETTINGS
@given(data=st.binary(max_size=2000), cut=st.integers(0, 4000), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF"]))
def test_reading_random_or_truncated_files_gives_an_image_or_a_dataset_error(tmp_path_factory, data, cut, fmt):
    d = tmp_path_factory.mktemp("f")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(len(data)).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(buf, format=fmt)
    for name, payload in (("random.png", data), ("truncated." + fmt.lower(), buf.getvalue()[:cut])):
        (d / name).write_bytes(payload)
        try:
            loaded = read_image(d / name, reduce=True)
        except DatasetError:
            continue
        assert loaded.image.dtype == np.uint8 and loaded.image.ndim == 3 and loaded.image.shape[2] == 3


json_values = st.recursive(st.none() | st.booleans() | st.integers() | floats | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=20)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["architecture", "kwargs", "inference", "files", "imports", "format"]),
                               json_values, max_size=3),
       spec_changes=st.dictionaries(st.sampled_from(["input_size", "normalization", "crop", "hand_model",
                                                     "topology_sha256"]), json_values, max_size=2),
       seal=st.booleans())
def test_random_cards_load_or_give_one_clear_error(model, tmp_path_factory, changes, spec_changes, seal):
    """A card is data: random field values, resealed or not, load or fail with a one-line error."""
    ck = tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck")
    card = json.loads((ck / "card.json").read_text())
    card = {**card, **changes}
    if isinstance(card.get("inference"), dict):
        card["inference"] = {**card["inference"], **spec_changes}
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    text = json.dumps(seal_card(body) if seal else {**body, "card_sha256": card.get("card_sha256")})
    (ck / "card.json").write_text(text)
    try:
        predictor = handrecon.load(ck)
    except (ValueError, CheckpointError, FileNotFoundError):
        return
    _valid(predictor.predict(np.zeros((40, 40, 3), np.uint8)))


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from handrecon.infer.torch_backend import export_onnx

    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")


@SETTINGS
@given(meta=json_values, keep_card=st.booleans(), spec_changes=st.dictionaries(
    st.sampled_from(["input_size", "normalization", "crop", "hand_model"]), json_values, max_size=2))
def test_random_onnx_metadata_loads_or_gives_one_clear_error(model, onnx_file, tmp_path_factory, meta, keep_card,
                                                              spec_changes):
    import onnx

    from handrecon.infer.load import load_onnx
    from handrecon.infer.onnx import METADATA_KEY, metadata

    if keep_card:
        meta = json.loads(metadata({**model.card, "inference": {**model.card["inference"], **spec_changes}}, True))
    proto = onnx.load(str(onnx_file))
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(meta)
    path = tmp_path_factory.mktemp("o") / "m.onnx"
    onnx.save(proto, str(path))
    try:
        predictor = load_onnx(path)
    except ValueError:
        return
    _valid(predictor.predict(np.zeros((40, 40, 3), np.uint8)))


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"), min_size=1, max_size=12)


@SETTINGS
@given(files=st.lists(st.tuples(names, st.sampled_from([".png", ".jpg", ".gif", ".txt", ".PNG"]),
                                st.sampled_from(["good", "random", "empty", "truncated"]), st.binary(max_size=64)),
                      min_size=1, max_size=5, unique_by=lambda f: (f[0] + f[1]).lower()),
       focal=st.one_of(st.none(), st.floats(1e-3, 1e6)))
def test_a_batch_goes_on_past_bad_files_and_leaves_no_partial_outputs(model, tmp_path_factory, files, focal):
    d = tmp_path_factory.mktemp("b")
    src = d / "in"
    src.mkdir()
    good = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(good, format="PNG")
    for name, suffix, kind, noise in files:
        assume(name not in (".", "..") and not name.startswith("."))
        payload = {"good": good.getvalue(), "random": noise, "empty": b"", "truncated": good.getvalue()[:40]}[kind]
        try:
            (src / (name + suffix)).write_bytes(payload)
        except OSError:  # a name the file system refuses
            assume(False)
    try:
        report = reconstruct_paths(model, [src], d / "out", focal=focal, mesh_formats=("obj",), overlay=False)
    except ValueError as e:  # only a name clash is refused before the run
        assert "would both write outputs" in str(e)
        return
    images = [p for p in src.iterdir() if p.suffix.lower() in (".png", ".jpg", ".gif")]
    assert len(report.written) + len([f for f, _ in report.failed if f != str(src)]) == len(images)
    outputs = list((d / "out").iterdir()) if (d / "out").exists() else []
    assert len(outputs) == 2 * sum(len(v) > 0 for v in report.written.values())  # json + obj per success, nothing else
    for f in outputs:
        assert not f.name.endswith(".tmp")
        if f.suffix == ".json":
            json.loads(f.read_text())  # complete, strict JSON
