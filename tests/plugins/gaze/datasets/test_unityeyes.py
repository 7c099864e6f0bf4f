"""UnityEyes loader on fabricated frames: parsing, crop geometry at any resolution, labels, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from simgan_gaze.datasets.unityeyes import UnityEyesLoader, parse_unityeyes_json
from simgan_toolkit.errors import DataError

#: Frame background intensity of the fabricated scene (conftest.BACKGROUND).
BACKGROUND = 50
# Hand-computed from section 1.5: box width 1.5 * (60 + 68) k = 192 k, s = 55 / (192 k); the
# pupil sits (15 k, 5 k) right of / above the margin's bbox centre, which lands on (27, 17).
EXPECTED_PUPIL = (27 + 55 * 15 / 192, 17 - 55 * 5 / 192)


def bright_centroid(image: torch.Tensor) -> tuple[float, float]:
    """(x, y) centroid of pixels brighter than the background, weighted by the excess."""
    weight = (image - image.median()).clamp_min(0)
    ys, xs = torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]), indexing="ij")
    return float((weight * xs).sum() / weight.sum()), float((weight * ys).sum() / weight.sum())


def test_parses_every_field(tmp_path, write_unityeyes):
    path = write_unityeyes(tmp_path / "imgs", 1)
    r = parse_unityeyes_json(path)
    assert r.interior_margin.shape == (16, 3) and r.caruncle.shape == (7, 3) and r.iris.shape == (32, 3)
    assert r.look_vec.tolist() == pytest.approx([0.3404, 0.3879, -0.8566])
    assert (r.pupil_size, r.iris_size, r.iris_texture) == (pytest.approx(0.1020631), pytest.approx(0.9349335), "eyeball_brown")
    assert (r.skybox_texture, r.skybox_rotation, r.light_rotation) == ("bergen_2k", 231.0, (30.0, 248.5, 0.0))
    assert r.skybox_exposure == pytest.approx(1.191213) and r.ambient_intensity == pytest.approx(1.15163)
    assert r.light_intensity == pytest.approx(0.8451564)
    assert r.pca_shape_coeffs.shape == (20,) and r.pca_shape_coeffs[-1] == pytest.approx(1.924006e-17)
    assert r.primary_skin_texture == "f02_color"
    assert r.head_pose.tolist() == pytest.approx([355.077, 203.8451, 0.0])


@pytest.mark.parametrize("size", [(640, 480), (800, 600)])
def test_crop_geometry_and_labels_at_any_resolution(tmp_path, write_unityeyes, size):
    write_unityeyes(tmp_path / "imgs", 1, *size)
    loader = UnityEyesLoader()
    out = loader.read_unit(loader.units(tmp_path)[0])
    assert out.images.shape == (1, 1, 35, 55) and out.images.dtype == torch.float32
    assert set(out.labels) == set(loader.label_shapes)
    for name, shape in loader.label_shapes.items():
        assert out.labels[name].shape == (1, *shape)
    # The bright disc drawn at the pupil appears where the label says, and where it should.
    assert out.labels["pupil_centre"][0].tolist() == pytest.approx(EXPECTED_PUPIL, abs=1e-4)
    assert bright_centroid(out.images[0, 0]) == pytest.approx(EXPECTED_PUPIL, abs=0.15)
    # Pixel values: background and disc centre keep their intensities (x / 127.5 - 1).
    assert float(out.images[0, 0, 0, 0]) == pytest.approx(BACKGROUND / 127.5 - 1, abs=0.03)
    x, y = (round(v) for v in EXPECTED_PUPIL)
    assert float(out.images[0, 0, y, x]) > 0.7
    # Landmarks: margin index 8 (outer corner) and the caruncle mean, in crop pixels.
    lm = out.labels["landmarks"][0]
    assert lm[8].tolist() == pytest.approx([27 + 60 * 55 / 192, 17], abs=1e-3)
    assert lm[16:23].mean(0).tolist() == pytest.approx([27 - 68 * 55 / 192, 17], abs=1e-3)
    assert lm[23:].mean(0).tolist() == pytest.approx(EXPECTED_PUPIL, abs=1e-4)
    pitch, yaw = torch.rad2deg(out.labels["pitch_yaw"][0]).tolist()
    assert (pitch, yaw) == (pytest.approx(22.8, abs=0.05), pytest.approx(-21.7, abs=0.05))


def test_scaled_scene_gives_the_same_crop(tmp_path, write_unityeyes):
    write_unityeyes(tmp_path / "a" / "imgs", 1, 640, 480)
    write_unityeyes(tmp_path / "b" / "imgs", 1, 800, 600)
    loader = UnityEyesLoader()
    a = loader.read_unit(loader.units(tmp_path / "a")[0])
    b = loader.read_unit(loader.units(tmp_path / "b")[0])
    assert (a.images - b.images).abs().mean() < 0.005
    assert torch.allclose(a.labels["landmarks"], b.labels["landmarks"], atol=1e-3)


def test_rgb_keeps_colour(tmp_path, write_unityeyes, unityeyes_image):
    write_unityeyes(tmp_path / "imgs", 1, image=unityeyes_image(640, 480, colour=(250, 30, 30)))
    loader = UnityEyesLoader(rgb=True)
    assert loader.image_shape == (3, 35, 55)
    out = loader.read_unit(loader.units(tmp_path)[0])
    x, y = (round(v) for v in EXPECTED_PUPIL)
    r, g, b = out.images[0, :, y, x].tolist()
    assert r > 0.7 and g < -0.5 and b < -0.5
    gray = UnityEyesLoader().read_unit(loader.units(tmp_path)[0]).images
    assert gray.shape == (1, 1, 35, 55)
    # kornia's luma: 0.299 R + 0.587 G + 0.114 B.
    assert float(gray[0, 0, y, x]) == pytest.approx((0.299 * 250 + 0.701 * 30) / 127.5 - 1, abs=0.08)


def test_units_numeric_order_root_or_imgs_and_extra_keys(tmp_path, write_unityeyes, unityeyes_json):
    for n in (10, 2, 1):
        doc = unityeyes_json(640, 480)
        doc["ground_truth"] = {"anything": "(1, 2)"}  # added by forks: ignored
        doc["cameras"] = ["x"]
        write_unityeyes(tmp_path / "imgs", n, doc=doc)
    (tmp_path / "imgs" / "notes.json").write_text("{}")  # not a frame
    loader = UnityEyesLoader()
    assert [u.key for u in loader.units(tmp_path)] == ["1", "2", "10"]
    assert [u.key for u in loader.units(tmp_path / "imgs")] == ["1", "2", "10"]
    assert len(loader.read_unit(loader.units(tmp_path)[2])) == 1
    assert UnityEyesLoader.detect(tmp_path) and UnityEyesLoader.detect(tmp_path / "imgs")
    assert not UnityEyesLoader.detect(tmp_path / "nothing")
    with pytest.raises(DataError, match="no UnityEyes frames"):
        loader.units(tmp_path / "nothing")


@pytest.fixture
def broken(tmp_path, write_unityeyes, unityeyes_json):
    """``broken(edit)``: write frame 1 with ``edit(doc)`` applied; return the DataError reading it."""

    def check(edit) -> DataError:
        return _broken(tmp_path, write_unityeyes, unityeyes_json(640, 480), edit)

    return check


def _broken(tmp_path, write_unityeyes, doc, edit) -> DataError:
    edit(doc)
    path = write_unityeyes(tmp_path / "imgs", 1, doc=doc)
    loader = UnityEyesLoader()
    with pytest.raises(DataError) as info:
        loader.read_unit(loader.units(tmp_path)[0])
    assert str(path) in str(info.value)
    return info.value


def test_missing_field_names_file_and_field(broken):
    err = broken(lambda d: d["eye_details"].pop("look_vec"))
    assert "eye_details.look_vec" in str(err)


def test_wrong_landmark_count(broken):
    err = broken(lambda d: d["iris_2d"].pop())
    assert "iris_2d" in str(err) and "32" in str(err)


def test_unparsable_tuple(broken):
    err = broken(lambda d: d["caruncle_2d"].__setitem__(3, "(1.0, oops, 2.0)"))
    assert "caruncle_2d[3]" in str(err)


def test_comma_decimal_locale_is_explained(broken):
    err = broken(lambda d: d.__setitem__("head_pose", "(355,0770, 203,8451, 0,0000)"))
    assert "head_pose" in str(err) and "comma-decimal" in str(err)


def test_bad_number(broken):
    err = broken(lambda d: d["eye_region_details"]["pca_shape_coeffs"].__setitem__(0, "x"))
    assert "pca_shape_coeffs[0]" in str(err)


def test_invalid_json(tmp_path, write_unityeyes):
    path = write_unityeyes(tmp_path / "imgs", 1)
    path.write_text('{"interior_margin_2d": [')
    with pytest.raises(DataError, match="1.json"):
        parse_unityeyes_json(path)


def test_truncated_jpeg(tmp_path, write_unityeyes):
    write_unityeyes(tmp_path / "imgs", 1)
    jpg = tmp_path / "imgs" / "1.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    loader = UnityEyesLoader()
    with pytest.raises(DataError, match=r"1\.jpg.*truncated"):
        loader.read_unit(loader.units(tmp_path)[0])


def test_missing_jpeg_partner(tmp_path, write_unityeyes):
    write_unityeyes(tmp_path / "imgs", 1)
    write_unityeyes(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "2.jpg").unlink()
    loader = UnityEyesLoader()
    unit = loader.units(tmp_path)[1]
    with pytest.raises(DataError, match=r"2\.json.*2\.jpg"):
        loader.read_unit(unit)


def test_degenerate_corners(broken):
    def same_x(doc):
        x = float(doc["interior_margin_2d"][8].strip("()").split(",")[0])
        doc["caruncle_2d"] = [f"({x:.4f}, 240.0000, 9.0000)"] * 7

    err = broken(same_x)
    assert "cannot crop" in str(err)


def test_non_string_values_from_forks_are_accepted(tmp_path, write_unityeyes, unityeyes_json):
    doc = unityeyes_json(640, 480)
    doc["head_pose"] = [355.077, 203.8451, 0.0]
    doc["eye_details"]["pupil_size"] = 0.1
    path = write_unityeyes(tmp_path / "imgs", 1, doc=doc)
    r = parse_unityeyes_json(path)
    assert r.head_pose.tolist() == pytest.approx([355.077, 203.8451, 0.0]) and r.pupil_size == 0.1
    assert not math.isnan(r.iris_size)
    json.loads(path.read_text())  # the fabricated file stays valid JSON


def test_json_of_another_render_size_is_refused(tmp_path, write_unityeyes, unityeyes_json, unityeyes_image):
    """JSON of a 1280x960 render beside a 640x480 JPEG: the crop would be black with plausible
    labels; refuse it, naming the file, the image size and where the landmarks are."""
    path = write_unityeyes(tmp_path / "imgs", 1, doc=unityeyes_json(1280, 960), image=unityeyes_image(640, 480))
    loader = UnityEyesLoader()
    with pytest.raises(DataError) as err:
        loader.read_unit(loader.units(tmp_path)[0])
    message = str(err.value)
    assert str(path) in message and "1.jpg of 640 x 480" in message
    assert "landmarks span x 498.6..760.0, y 430.0..530.0" in message


def test_crop_box_mostly_outside_the_frame_is_refused(tmp_path, write_unityeyes, unityeyes_image):
    from simgan_gaze.datasets.crop import eye_crop_matrix
    from simgan_gaze.datasets.unityeyes import _fraction_inside, crop_record

    record = parse_unityeyes_json(write_unityeyes(tmp_path / "imgs", 1))
    frame = torch.from_numpy(unityeyes_image(640, 480)).permute(2, 0, 1)
    with pytest.raises(ValueError, match=r"only \d+% of the crop box lies inside the 330 x 250 frame"):
        crop_record(record, frame[:, :250, :330].contiguous(), rgb=False)  # the eye sits at the corner
    # Box 1.5 * 110 = 165 wide, 105 high, centred on (100, 100): x 17.5..182.5, y 47.5..152.5.
    m = eye_crop_matrix(torch.tensor([0.0, 0.0]), torch.tensor([110.0, 0.0]), torch.tensor([100.0, 100.0]), (35, 55))
    assert _fraction_inside(m, 640, 480) == pytest.approx(1.0)
    assert _fraction_inside(m, 100, 480) == pytest.approx((99.5 - 17.5) / 165)


def test_rgb_option_must_be_a_bool():
    from simgan_toolkit.errors import ConfigError

    with pytest.raises(ConfigError, match="rgb must be true or false, got 'false'"):
        UnityEyesLoader(rgb="false")


def test_unit_files_are_the_json_and_its_jpeg(tmp_path, write_unityeyes):
    """``simgan convert`` watches both: a re-rendered JPEG under the same name changes the crop."""
    path = write_unityeyes(tmp_path / "imgs", 1)
    loader = UnityEyesLoader()
    assert loader.unit_files(loader.units(tmp_path)[0]) == [path, path.with_suffix(".jpg")]
