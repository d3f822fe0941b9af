"""AffineTransform.apply_image resizes through media.resize (one resampling code path)."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import ConfigError
from viewfinder.media import resize_array
from viewfinder.media.transforms import letterbox, resize_to


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "area"])
def test_apply_image_uses_the_media_resize(make_image, mode):
    img = make_image(120, 80)
    assert np.array_equal(resize_to(120, 80, 60, 50, mode).apply_image(img),
                          resize_array(img, 60, 50, mode))
    t = letterbox(120, 80, 64, 64, center=True, pad_value=114, interpolation=mode)
    out = t.apply_image(img)
    inner = resize_array(img, 64, 43, mode)
    y0 = int(t.ty)
    assert np.array_equal(out[y0:y0 + 43], inner)
    assert np.all(out[:y0] == 114) and np.all(out[y0 + 43:] == 114)


def test_identity_is_a_copy(make_image):
    img = make_image(32, 16)
    out = resize_to(32, 16, 32, 16).apply_image(img)
    assert np.array_equal(out, img) and out is not img


def test_unknown_interpolation_is_a_clear_error(make_image):
    with pytest.raises(ConfigError, match="resize mode 'lanczos'"):
        resize_to(32, 16, 8, 8, "lanczos").apply_image(make_image(32, 16))
