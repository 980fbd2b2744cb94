import numpy as np
import pytest
import torch

from handrecon.geometry.camera import intrinsics, project
from handrecon.geometry.crop import crop_transform, invert_affine, transform_points, warp_image


def random_case(rng, skewed: bool):
    f = rng.uniform(400, 1500)
    K = intrinsics(f, f * (rng.uniform(0.9, 1.1) if skewed else 1.0), rng.uniform(200, 400), rng.uniform(150, 300),
                   skew=rng.uniform(-5, 5) if skewed else 0.0)
    X = rng.normal(size=(21, 3)) * [0.05, 0.05, 0.02] + [rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), rng.uniform(0.4, 1.5)]
    uv = project(X, K)
    lo, hi = uv.min(0), uv.max(0)
    box = (*(lo - rng.uniform(0, 30, 2)), *(hi + rng.uniform(0, 30, 2)))
    return K, X, box


@pytest.mark.parametrize("skewed", [False, True])
def test_crop_camera_reproduces_affine_exactly(skewed):
    rng = np.random.default_rng(1 + skewed)
    worst = 0.0
    for _ in range(200):
        K, X, box = random_case(rng, skewed)
        crop = crop_transform(box, 224, K, scale=rng.uniform(0.8, 1.5), shift=rng.uniform(-0.2, 0.2, 2),
                              rotation_deg=rng.uniform(-180, 180))
        want = transform_points(project(X, K), crop.affine)
        got = project(X @ crop.R.T, crop.K)
        worst = max(worst, np.abs(got - want).max())
        np.testing.assert_allclose(crop.R @ crop.R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(crop.R) == pytest.approx(1.0) and crop.R[2, 2] == pytest.approx(1.0)
        assert crop.K[1, 0] == crop.K[2, 0] == crop.K[2, 1] == 0 and crop.K[0, 0] > 0 and crop.K[1, 1] > 0
    assert worst < 1e-3, worst
    if not skewed:  # square pixels: K' keeps square pixels and R is the in-plane rotation
        assert crop.K[0, 1] == pytest.approx(0, abs=1e-9) and crop.K[0, 0] == pytest.approx(crop.K[1, 1])


def test_box_maps_to_crop_and_rotation_direction():
    crop = crop_transform((100, 50, 200, 250), 64)  # 100 x 200 box -> side 200, centre (150, 150)
    np.testing.assert_allclose(transform_points(np.array([[150.0, 150.0]]), crop.affine), [[31.5, 31.5]])
    # The square's edges (pixel edges at +-100 px from the centre) land on the crop's pixel edges.
    np.testing.assert_allclose(transform_points(np.array([[50.0, 50.0], [250.0, 250.0]]), crop.affine),
                               [[-0.5, -0.5], [63.5, 63.5]])
    rot = crop_transform((100, 50, 200, 250), 64, rotation_deg=90)
    # Content turns counter-clockwise on screen: a point right of the centre moves up (smaller v).
    np.testing.assert_allclose(transform_points(np.array([[250.0, 150.0]]), rot.affine), [[31.5, -0.5]], atol=1e-9)
    shifted = crop_transform((100, 50, 200, 250), 64, shift=(0.25, 0.0))
    np.testing.assert_allclose(transform_points(np.array([[200.0, 150.0]]), shifted.affine), [[31.5, 31.5]])
    with pytest.raises(ValueError, match="positive"):
        crop_transform((10, 10, 10, 10), 64)


def test_inverse_affine_numpy_and_torch():
    crop = crop_transform((10, 20, 90, 60), 128, scale=1.3, rotation_deg=33)
    uv = np.random.default_rng(0).uniform(0, 100, size=(7, 2))
    np.testing.assert_allclose(transform_points(transform_points(uv, crop.affine), crop.inverse_affine), uv, atol=1e-9)
    A = torch.as_tensor(np.stack([crop.affine, crop.inverse_affine]))
    back = transform_points(transform_points(torch.as_tensor(uv)[None].repeat(2, 1, 1), A), invert_affine(A))
    torch.testing.assert_close(back, torch.as_tensor(uv)[None].repeat(2, 1, 1))


def test_warp_image_samples_at_the_affine_positions():
    H, W = 120, 160
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    image = np.stack([0.5 * xs + 0.25 * ys + 3, 0.1 * xs - 0.7 * ys + 100], -1)  # linear ramps
    crop = crop_transform((40, 30, 110, 90), 48, scale=1.1, shift=(0.05, -0.03), rotation_deg=27)
    out = warp_image(image, crop.affine, 48)
    assert out.shape == (48, 48, 2) and out.dtype == image.dtype
    q = np.stack(np.meshgrid(np.arange(48.0), np.arange(48.0)), -1).reshape(-1, 2)
    p = transform_points(q, crop.inverse_affine)  # image positions of crop pixel centres
    inside = ((p >= 0) & (p <= [W - 1, H - 1])).all(1)
    want = np.stack([0.5 * p[:, 0] + 0.25 * p[:, 1] + 3, 0.1 * p[:, 0] - 0.7 * p[:, 1] + 100], -1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(out.reshape(-1, 2)[inside], want[inside], atol=1e-3)  # bilinear is exact on ramps

    u8 = warp_image(np.clip(image[..., :1], 0, 255).astype(np.uint8).repeat(3, -1), crop.affine, (40, 30))
    assert u8.shape == (30, 40, 3) and u8.dtype == np.uint8
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    rgb = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(rgb, identity, (W, H)), rgb)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    out_t = warp_image(batch, torch.as_tensor(crop.affine), 48)
    np.testing.assert_allclose(out_t[1].permute(1, 2, 0).numpy(), out, atol=1e-4)


def test_numpy_warp_matches_grid_sample_on_uint8_crops():
    """numpy images are warped in numpy (inference needs no torch): the same bilinear samples as
    torch's grid_sample, within one level of uint8 rounding, for crops inside, across the border of
    and rotated in the image; and a crop of a large photo reads only its taps."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for box, rot in (((20, 10, 80, 70), 0.0), ((-30, -20, 60, 50), 0.0), ((-0.5, -0.5, 129.5, 89.5), 0.0),
                     ((40, 30, 110, 90), 33.0)):
        crop = crop_transform(box, 64, scale=1.3, rotation_deg=rot)
        ours = warp_image(image, crop.affine, 64).astype(int)
        ref = warp_image(batch, torch.as_tensor(crop.affine, dtype=torch.float32), 64)[0].permute(1, 2, 0)
        ref = ref.round().clamp(0, 255).numpy().astype(int)
        assert np.abs(ours - ref).max() <= 1 and (ours != ref).mean() < 0.005
    flip = np.array([[-1.0, 0, 129], [0, 1.0, 0]])  # an axis-aligned map with decreasing columns
    np.testing.assert_array_equal(warp_image(image, flip, (130, 90)), image[:, ::-1])
