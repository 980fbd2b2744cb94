import numpy as np
import pytest

from handrecon.hand import keypoints as kp


def test_mano21_op21_maps_are_inverse_permutations():
    a, b = np.asarray(kp.MANO21_TO_OP21), np.asarray(kp.OP21_TO_MANO21)
    assert sorted(a) == list(range(21)) and sorted(b) == list(range(21))
    np.testing.assert_array_equal(a[b], np.arange(21))
    np.testing.assert_array_equal(b[a], np.arange(21))
    x = np.random.default_rng(0).normal(size=(4, 21, 3))
    np.testing.assert_array_equal(kp.mano21_to_op21(kp.op21_to_mano21(x)), x)
    np.testing.assert_array_equal(kp.op21_to_mano21(kp.mano21_to_op21(x)), x)


def test_mano21_semantics():
    # MANO21: 0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb, 16-20 tips T,I,M,R,L.
    mano_names = ["wrist"] + [f"{f}_{j}" for f in ("index", "middle", "little", "ring") for j in ("mcp", "pip", "dip")]
    mano_names += ["thumb_cmc", "thumb_mcp", "thumb_ip"] + [f"{f}_tip" for f in kp.FINGERS]
    assert [kp.OP21_NAMES[i] for i in kp.OP21_TO_MANO21] == mano_names
    assert [mano_names[i] for i in kp.MANO21_TO_OP21] == list(kp.OP21_NAMES)


def test_names_parents_edges_fingers_consistent():
    assert len(kp.OP21_NAMES) == len(set(kp.OP21_NAMES)) == kp.NUM_KEYPOINTS == 21
    assert kp.OP21_PARENTS[0] == -1 and all(0 <= p < c for c, p in enumerate(kp.OP21_PARENTS) if c)
    assert len(kp.OP21_EDGES) == 20 and set(kp.OP21_EDGES) == {(p, c) for c, p in enumerate(kp.OP21_PARENTS) if c}
    for p, c in kp.OP21_EDGES:  # an edge joins the wrist to a finger base, or two joints of one finger
        assert p == 0 or kp.OP21_NAMES[p].split("_")[0] == kp.OP21_NAMES[c].split("_")[0]
    for i, name in enumerate(kp.OP21_NAMES[1:], 1):
        assert name.startswith(kp.FINGERS[kp.OP21_FINGER[i] - 1])
    assert kp.OP21_FINGER[0] == 0
    assert [kp.OP21_NAMES[t] for t in kp.OP21_TIPS] == [f"{f}_tip" for f in kp.FINGERS]
    assert all(kp.OP21_PARENTS[c] == 0 for c in (1, 5, 9, 13, 17))


def test_coco_wholebody_slicing():
    x = np.arange(133 * 3, dtype=float).reshape(133, 3)[None].repeat(2, 0)
    hands = kp.coco_wholebody_hands(x)
    assert hands["left"].shape == hands["right"].shape == (2, 21, 3)
    np.testing.assert_array_equal(hands["left"][0, :, 0], np.arange(91, 112) * 3)
    np.testing.assert_array_equal(hands["right"][0, :, 0], np.arange(112, 133) * 3)
    with pytest.raises(ValueError, match="133"):
        kp.coco_wholebody_hands(np.zeros((17, 3)))
    with pytest.raises(ValueError, match="21 keypoints"):
        kp.mano21_to_op21(np.zeros((20, 3)))
