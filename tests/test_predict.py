"""The predictor API and `shr-fan predict`: several faces per image, a boxes file for a folder,
every OpenCV format, scores saved."""
import json

import cv2
import numpy as np
import pytest

from shr_fan import cli, synthetic
from shr_fan.predict import Predictor, read_boxes_file


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--preset", "tiny", "--crop", "64", "--steps", "2", "--batch-size", "2", "--workers", "0",
                     "--device", "cpu", "--out", str(out)]) == 0
    return str(out / "checkpoint.pt")


def two_faces():
    """A 256 x 512 image with two synthetic faces side by side, and their landmark boxes."""
    (a, pa), (b, pb) = synthetic.render_face(21), synthetic.render_face(22)
    image = np.concatenate([a, b], axis=1)
    pb = pb + np.array([256.0, 0.0])
    boxes = np.array([np.concatenate([p.min(0), p.max(0)]) for p in (pa, pb)])
    return image, boxes


def test_landmarks_of_several_faces(checkpoint, tmp_path):
    predictor = Predictor(checkpoint)
    image, boxes = two_faces()
    points, scores = predictor.landmarks(image, boxes)
    assert points.shape == (2, 68, 2) and scores.shape == (2, 68)
    assert points.dtype == np.float64 and np.isfinite(points).all() and np.isfinite(scores).all()
    # each face alone gives the same as in the batch (to 1e-4 image px: a batch of one convolves with
    # other rounding, and the decoder's Gaussian fit of a noisy peak passes that on, ~1e-5 heatmap
    # px); a path, an RGB array and a single box too
    for i in range(2):
        alone, alone_scores = predictor.landmarks(image, boxes[i])
        np.testing.assert_allclose(alone[0], points[i], atol=1e-4)
        np.testing.assert_allclose(alone_scores[0], scores[i], atol=1e-6)
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), image)
    np.testing.assert_allclose(predictor.landmarks(str(path), boxes)[0], points, atol=1e-6)
    np.testing.assert_allclose(predictor.landmarks(image[..., ::-1].copy(), boxes, rgb=True)[0], points, atol=1e-6)
    # the crop of face 1 sits 256 px to the right: its points are mapped back to the full image
    assert (points[1, :, 0] > 200).all() and (points[0, :, 0] < 300).all()
    # the reference ops give the same landmarks within float tolerance
    reference = Predictor(checkpoint, ops="reference").landmarks(image, boxes)
    np.testing.assert_allclose(reference[0], points, atol=1e-3)
    np.testing.assert_allclose(reference[1], scores, atol=1e-4)


def test_predict_a_folder_with_a_boxes_file(checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    image, boxes = two_faces()
    cv2.imwrite(str(folder / "pair.ppm"), image)  # .ppm and friends are images too
    single, pts = synthetic.render_face(23)
    cv2.imwrite(str(folder / "single.webp"), single, [cv2.IMWRITE_WEBP_QUALITY, 101])
    cv2.imwrite(str(folder / "single.png"), single)  # a second image with the stem "single"
    (folder / "notes.txt").write_text("not an image, left out")
    box = np.concatenate([pts.min(0), pts.max(0)])
    lines = ["# name x0 y0 x1 y1", *(f"pair.ppm {' '.join(map(repr, b.tolist()))}" for b in boxes),
             f"single.webp,{','.join(map(repr, box.tolist()))}", f"single.png {' '.join(map(repr, box.tolist()))}"]
    (tmp_path / "boxes.txt").write_text("\n".join(lines) + "\n")
    assert sorted(read_boxes_file(str(tmp_path / "boxes.txt"))) == ["pair.ppm", "single.png", "single.webp"]
    out = tmp_path / "pred"
    assert cli.main(["predict", str(folder), "--checkpoint", checkpoint, "--boxes", str(tmp_path / "boxes.txt"),
                     "--out", str(out), "--device", "cpu"]) == 0
    assert "pair.ppm: 2 face(s), 68 landmarks each" in capsys.readouterr().out
    pair = json.loads((out / "pair.json").read_text())
    assert len(pair["faces"]) == 2 and pair["convention"].startswith("0-based")
    points, scores = Predictor(checkpoint).landmarks(str(folder / "pair.ppm"), boxes)
    for face, p, s, b in zip(pair["faces"], points, scores, boxes):
        np.testing.assert_allclose(face["landmarks"], p, atol=1e-6)
        np.testing.assert_allclose(face["scores"], s, atol=1e-6)
        assert face["box"] == b.tolist()
    assert (out / "pair_face0.pts").exists() and (out / "pair_face1.pts").exists()
    # two images with the stem "single": their outputs keep the extension apart
    for name in ("single.webp", "single.png"):
        record = json.loads((out / f"{name}.json").read_text())
        assert len(record["faces"]) == 1 and (out / f"{name}.pts").exists()
    assert not (out / "notes.json").exists()


def test_whole_image_is_used_only_when_asked(checkpoint, tmp_path):
    crop, _ = synthetic.render_face(24)
    cv2.imwrite(str(tmp_path / "crop.bmp"), crop)
    assert cli.main(["predict", str(tmp_path / "crop.bmp"), "--checkpoint", checkpoint, "--out", str(tmp_path / "p"),
                     "--device", "cpu"]) == 2
    assert cli.main(["predict", str(tmp_path / "crop.bmp"), "--checkpoint", checkpoint, "--out", str(tmp_path / "p"),
                     "--device", "cpu", "--whole-image"]) == 0
    record = json.loads((tmp_path / "p" / "crop.json").read_text())
    assert record["faces"][0]["box"] == [0.0, 0.0, 255.0, 255.0]


def test_the_readme_predictor_example_runs(checkpoint, tmp_path, monkeypatch):
    import pathlib
    import re
    import shutil

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```py\n(.*?)```", readme, flags=re.S) if "Predictor" in b]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "train").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "runs" / "train" / "checkpoint.pt")
    image, _ = two_faces()  # 256 x 512: the example's two boxes are its two faces
    cv2.imwrite(str(tmp_path / "photo.jpg"), image)
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["points"].shape == (2, 68, 2) and scope["scores"].shape == (2, 68)
