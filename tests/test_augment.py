"""babyface.data.augment: shapes, ranges, determinism, per-sample randomness and each transform's effect."""

from __future__ import annotations

import pytest
import torch

from babyface.config import AugmentConfig
from babyface.data.augment import affine_matrices, augment_batch
from babyface.data.decoded import luminance
from babyface.data.images import LUMA

# every transform off; tests switch on the one they check
OFF = AugmentConfig(hflip=0.0, rotation=0.0, shear=0.0, scale_min=1.0, scale_max=1.0,
                    brightness=0.0, contrast=0.0, saturation=0.0, grayscale=0.0)


def images(batch: int = 4, size: int = 16, seed: int = 0, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return x * (high - low) + low


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def only(**changes) -> AugmentConfig:
    return OFF.replace(**changes)


@pytest.mark.parametrize("config", [AugmentConfig(), only(rotation=45.0, shear=30.0, scale_min=0.5, scale_max=1.5, hflip=0.5,
                                                       brightness=0.9, contrast=0.9, saturation=0.9, grayscale=0.5)])
@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (1, 3, 32, 32), (3, 3, 12, 20)])
def test_shape_dtype_range(config: AugmentConfig, shape) -> None:
    x = torch.rand(*shape, generator=gen(1))
    y = augment_batch(x, config, gen(2))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)


def test_float64_input_keeps_dtype() -> None:
    x = images().double()
    y = augment_batch(x, AugmentConfig(), gen())
    assert y.dtype == torch.float64 and y.min() >= 0 and y.max() <= 1


def test_deterministic_given_generator_seed() -> None:
    x = images()
    first = augment_batch(x, AugmentConfig(), gen(5))
    second = augment_batch(x.clone(), AugmentConfig(), gen(5))
    assert torch.equal(first, second)
    assert not torch.allclose(first, augment_batch(x, AugmentConfig(), gen(6)))


def test_does_not_use_global_rng() -> None:
    x = images()
    torch.manual_seed(0)
    first = augment_batch(x, AugmentConfig(), gen(3))
    torch.manual_seed(123)
    assert torch.equal(first, augment_batch(x, AugmentConfig(), gen(3)))


def test_input_not_modified_in_place() -> None:
    x = images()
    before = x.clone()
    augment_batch(x, AugmentConfig(), gen())
    assert torch.equal(x, before)


def test_disabled_returns_batch_unchanged() -> None:
    x = images()
    config = AugmentConfig(enabled=False)
    assert torch.equal(augment_batch(x, config, gen()), x)


def test_all_transforms_zero_is_identity() -> None:
    x = images()
    assert torch.equal(augment_batch(x, OFF, gen()), x)


@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (2, 3, 7, 9), (1, 3, 8, 8)])
def test_hflip_only_equals_torch_flip(shape) -> None:
    x = torch.rand(*shape, generator=gen(4))
    y = augment_batch(x, only(hflip=1.0), gen())
    assert (y - torch.flip(x, dims=[3])).abs().max() < 1e-4


def test_hflip_probability_is_per_sample() -> None:
    x = images(batch=64, size=8)
    y = augment_batch(x, only(hflip=0.5), gen(0))
    flipped = [(y[i] - torch.flip(x[i], dims=[2])).abs().max() < 1e-4 for i in range(len(x))]
    unchanged = [(y[i] - x[i]).abs().max() < 1e-4 for i in range(len(x))]
    assert all(f != u for f, u in zip(flipped, unchanged))  # each sample is either flipped or not
    assert 10 < sum(flipped) < 54


def test_scale_below_one_shrinks_the_image() -> None:
    x = torch.ones(2, 3, 16, 16)
    y = augment_batch(x, only(scale_min=0.5, scale_max=0.5), gen())
    assert torch.all(y[:, :, 0, 0] == 0) and torch.all(y[:, :, -1, -1] == 0)  # corners are now padding
    assert torch.allclose(y[:, :, 6:10, 6:10], torch.ones(2, 3, 4, 4), atol=1e-5)  # the centre is still the image


def test_rotation_moves_pixels_but_keeps_the_centre() -> None:
    x = torch.zeros(1, 3, 17, 17)
    x[:, :, 8, :] = 1.0  # a horizontal bar through the centre
    y = augment_batch(x, only(rotation=40.0), gen(0))
    assert not torch.allclose(y, x, atol=1e-3)
    assert y[0, 0, 8, 8] > 0.9  # the centre is on the rotation axis


def test_affine_matrices_identity_and_flip() -> None:
    identity = affine_matrices(3, OFF, gen())
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64).expand(3, 2, 3)
    assert torch.allclose(identity, expected)
    flip = affine_matrices(2, only(hflip=1.0), gen())
    assert torch.allclose(flip[:, 0, 0], torch.tensor([-1.0, -1.0], dtype=torch.float64))
    scaled = affine_matrices(2, only(scale_min=2.0, scale_max=2.0), gen())
    assert torch.allclose(scaled[:, 0, 0], torch.full((2,), 0.5, dtype=torch.float64))  # output→input map: inverse scale


def test_grayscale_p1_gives_equal_channels() -> None:
    x = images()
    y = augment_batch(x, only(grayscale=1.0), gen())
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    assert torch.allclose(y[:, :1], (x * weights).sum(dim=1, keepdim=True), atol=1e-6)
    assert y.min() >= 0 and y.max() <= 1


def test_grayscale_p0_leaves_colour() -> None:
    x = images()
    assert torch.equal(augment_batch(x, only(grayscale=0.0), gen()), x)


def test_to_gray_of_white_is_white() -> None:
    assert torch.allclose(luminance(torch.ones(1, 3, 2, 2)), torch.ones(1, 1, 2, 2))


def test_brightness_only_scales_each_sample() -> None:
    x = images(batch=6, low=0.2, high=0.6)  # no clamping for factors in [0.5, 1.5]
    y = augment_batch(x, only(brightness=0.5), gen(1))
    ratios = y / x
    factors = ratios.flatten(1).mean(dim=1)
    assert torch.allclose(ratios, factors.view(-1, 1, 1, 1).expand_as(x), atol=1e-5)  # one factor per sample
    assert torch.all((factors >= 0.5 - 1e-6) & (factors <= 1.5 + 1e-6))
    assert not torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-3)  # the mean changes
    assert len(set(factors.tolist())) == 6  # and by a different amount per sample


def test_contrast_only_keeps_gray_mean() -> None:
    x = images(batch=3, low=0.3, high=0.7)
    y = augment_batch(x, only(contrast=0.3), gen(2))  # factors in [0.7, 1.3]: stays inside [0, 1]
    assert torch.allclose(luminance(y).mean(dim=(1, 2, 3)), luminance(x).mean(dim=(1, 2, 3)), atol=1e-5)
    assert not torch.allclose(y.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), atol=1e-4)


def test_saturation_only_keeps_gray() -> None:
    x = images(batch=3, low=0.3, high=0.7)
    y = augment_batch(x, only(saturation=0.3), gen(3))
    assert torch.allclose(luminance(y), luminance(x), atol=1e-5)
    assert not torch.allclose(y, x, atol=1e-4)


def test_samples_get_different_parameters() -> None:
    one = images(batch=1)
    x = one.repeat(4, 1, 1, 1)
    y = augment_batch(x, AugmentConfig(), gen(0))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(y[i], y[j], atol=1e-4), (i, j)


def test_batch_of_one() -> None:
    x = images(batch=1, size=32)
    y = augment_batch(x, AugmentConfig(), gen(0))
    assert y.shape == (1, 3, 32, 32) and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, augment_batch(x, AugmentConfig(), gen(0)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_batch_matches_cpu() -> None:
    x = images(batch=8, size=32)
    cpu = augment_batch(x, AugmentConfig(), gen(9))
    gpu = augment_batch(x.cuda(), AugmentConfig(), gen(9))
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
