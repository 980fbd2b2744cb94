import math

import numpy as np
import pytest
import torch

from handrecon.geometry.camera import (
    DEFAULT_FOCAL_FACTOR,
    backproject,
    default_intrinsics,
    intrinsics,
    project,
    scale_intrinsics,
)


def test_project_known_values_and_backproject_roundtrip():
    K = intrinsics(500.0, 520.0, 111.5, 100.0, skew=2.0)
    X = np.array([[0.1, -0.05, 0.5], [0.0, 0.0, 1.0]])
    uv = project(X, K)
    assert isinstance(uv, np.ndarray)
    np.testing.assert_allclose(uv[0], [500 * 0.2 + 2 * -0.1 + 111.5, 520 * -0.1 + 100.0])
    np.testing.assert_allclose(uv[1], [111.5, 100.0])
    np.testing.assert_allclose(backproject(uv, X[:, 2], K), X, atol=1e-12)


def test_torch_batched_differentiable_follows_data_dtype():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(4, 21, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 0.5])
    X.requires_grad_(True)
    K = np.stack([intrinsics(500 + i, 500 + i, 112, 112) for i in range(4)])  # numpy K, torch points
    uv = project(X, K)
    assert uv.shape == (4, 21, 2) and uv.dtype == torch.float32
    uv.sum().backward()
    assert torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0
    back = backproject(uv.detach(), X[..., 2].detach(), torch.as_tensor(K))
    torch.testing.assert_close(back, X.detach(), atol=1e-5, rtol=0)


def test_default_intrinsics():
    K = default_intrinsics((640, 480))
    assert K[0, 0] == K[1, 1] == DEFAULT_FOCAL_FACTOR * 640
    np.testing.assert_array_equal(K[:2, 2], [319.5, 239.5])
    K = default_intrinsics((300, 400), fov_deg=90)
    assert K[0, 0] == pytest.approx(200.0)
    # A point on the edge of the field of view lands on the image border (pixel edge, -0.5).
    edge = np.array([[0.0, -math.tan(math.radians(45)), 1.0]])
    assert project(edge, K)[0, 1] == pytest.approx(199.5 - 200.0)
    assert default_intrinsics((10, 10), focal=7.0)[0, 0] == 7.0
    with pytest.raises(ValueError):
        default_intrinsics((10, 10), fov_deg=40, focal=7.0)
    with pytest.raises(ValueError):
        default_intrinsics((0, 10))


def test_scale_intrinsics_matches_resized_pixel_grid():
    K = intrinsics(500.0, 480.0, 111.5, 90.0)
    X = np.random.default_rng(0).normal(size=(50, 3)) * 0.1 + [0, 0, 0.6]
    uv = project(X, K)
    for sx, sy in ((0.5, 0.5), (2.0, 3.0)):
        # Resizing maps pixel edges to pixel edges: u -> sx * (u + 0.5) - 0.5.
        want = np.stack([sx * (uv[:, 0] + 0.5) - 0.5, sy * (uv[:, 1] + 0.5) - 0.5], 1)
        np.testing.assert_allclose(project(X, scale_intrinsics(K, sx, sy)), want, atol=1e-9)


def test_package_reexports():
    import handrecon.geometry as geometry

    assert geometry.project is project and geometry.intrinsics is intrinsics
    for name in geometry.__all__:
        assert callable(getattr(geometry, name)), name
    with pytest.raises(AttributeError):
        geometry.not_a_function  # noqa: B018


def test_default_intrinsics_field_of_view():
    """fov across the larger side: the image edge lies at half the angle from the optical axis."""
    for fov in (30.0, 90.0, 120.0):
        K = default_intrinsics((640, 480), fov_deg=fov)
        edge = np.degrees(np.arctan(320.0 / K[0, 0]))
        assert edge == pytest.approx(fov / 2)
        np.testing.assert_allclose(K[:2, 2], [319.5, 239.5])
    for bad in (0.0, 180.0, -5.0):
        with pytest.raises(ValueError, match="fov_deg"):
            default_intrinsics((640, 480), fov_deg=bad)
    with pytest.raises(ValueError, match="image_size"):
        default_intrinsics((0, 480))


def test_clip_to_image_keeps_boxes_inside_the_pixel_centre_extent():
    """An image W px wide spans [-0.5, W - 0.5] (pixel centres at integers): a box is clipped to
    that, and one beyond the far edges collapses to zero size instead of turning inside out."""
    from handrecon.geometry.boxes import clip_to_image

    np.testing.assert_array_equal(clip_to_image([-10, 5, 50, 200], 40, 30), [-0.5, 5, 39.5, 29.5])
    np.testing.assert_array_equal(clip_to_image([2, 3, 8, 9], 40, 30), [2, 3, 8, 9])
    outside = clip_to_image([50, 40, 60, 45], 40, 30)
    np.testing.assert_array_equal(outside, [50, 40, 50, 40])
    assert clip_to_image(np.float32([1, 1, 2, 2]), 4, 4).dtype == np.float64


def test_inside_image_follows_the_pixel_centre_extent():
    """u in [-0.5, W - 0.5), v in [-0.5, H - 0.5), over any leading dims."""
    from handrecon.geometry.camera import inside_image

    uv = np.array([[[-0.5, -0.5], [39.49, 29.49], [39.5, 0.0], [0.0, 29.5], [-0.51, 3.0]]])
    np.testing.assert_array_equal(inside_image(uv, 40, 30), [[True, True, False, False, False]])
