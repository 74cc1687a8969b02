"""Bad input to the shr-fan command line: each case ends with one line on stderr naming the option
or file and what was expected, exit status 2, no traceback (--debug shows it); truncated and
corrupt images are refused by name in prediction, evaluation and training."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from shr_fan import cli, images, synthetic
from shr_fan.errors import UserError

from test_datasets import make_300w

CPU = ["--device", "cpu"]
TINY = ["--preset", "tiny", "--crop", "64", "--batch-size", "2", "--workers", "0", *CPU]


def fails(capsys, argv, *phrases):
    """cli.main(argv) exits with 2 and prints one line on stderr, `shr-fan CMD: error: ...`,
    holding every phrase; returns that line."""
    assert cli.main(argv) == 2, argv
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"shr-fan {argv[0]}: error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    return err.strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-step run of the tiny FAN (crop 64)."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--steps", "2", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def face_jpg(tmp_path_factory):
    """A synthetic face written as a JPEG, its landmark box, and truncated copies."""
    folder = tmp_path_factory.mktemp("images")
    image, pts = synthetic.render_face(11)
    path = folder / "face.jpg"
    cv2.imwrite(str(path), image)
    data = path.read_bytes()
    (folder / "stub300.jpg").write_bytes(data[:300])
    (folder / "half.jpg").write_bytes(data[: len(data) // 2])
    box = [float(v) for v in np.concatenate([pts.min(0), pts.max(0)])]
    return folder, box


# ---------------------------------------------------------------------------------------- train


@pytest.mark.parametrize("args, phrases", [
    (["--steps", "0"], ["--steps 0: expected an integer > 0"]),
    (["--batch-size", "-4"], ["--batch-size -4: expected an integer > 0"]),
    (["--steps", "ten"], ["argument --steps: invalid int value: 'ten'"]),
    (["--crop", "100"], ["--crop 100: expected a multiple of 32", "e.g. 96 or 128"]),
    (["--crop", "130"], ["--crop 130: expected a multiple of 32"]),
    (["--preset", "full", "--crop", "96"], ["--crop 96: expected a multiple of 64", "the full preset"]),
    (["--codec", "gauss"], ["argument --codec: invalid choice: 'gauss'"]),
    (["--lr", "nan"], ["--lr nan: expected a finite number > 0"]),
    (["--consistency-warmup", "2"], ["--consistency-warmup 2.0: expected a fraction of the steps in [0, 1]"]),
    (["--dataset", "300w"], ["--dataset 300w needs --data-root"]),
    (["--data-root", "data/300w"], ["--data-root is for a benchmark --dataset"]),
    (["--codec", "hrnet", "--fused-loss"], ["--fused-loss renders SHR targets", "--codec hrnet"]),
    (["--device", "tpu"], ["--device tpu: not a torch device"]),
])
def test_train_refuses_bad_options_before_anything_is_written(tmp_path, capsys, args, phrases):
    out = tmp_path / "run"
    fails(capsys, ["train", *TINY, "--out", str(out), *args], *phrases)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_device_cuda_without_a_gpu(tmp_path, capsys):
    fails(capsys, ["train", *TINY, "--device", "cuda", "--out", str(tmp_path)], "--device cuda: no CUDA GPU")
    fails(capsys, ["eval", "--checkpoint", "x.pt", "--device", "cuda"], "--device cuda: no CUDA GPU")


def test_unwritable_out(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    fails(capsys, ["train", *TINY, "--out", str(tmp_path / "file" / "run")], "--out", "cannot create the folder")
    fails(capsys, ["samples", "--out", str(tmp_path / "file" / "s.png")], "--out", "file is a file, not a folder")


def test_resume_errors(run, tmp_path, capsys):
    fails(capsys, ["train", *TINY, "--resume", "--out", str(tmp_path / "none")], "--resume: no checkpoint at")
    fails(capsys, ["train", *TINY, "--out", str(run)], "already holds a run", "--resume", "--overwrite")
    fails(capsys, ["train", "--resume", "--out", str(run), "--codec", "hrnet", "--lr", "0.01", *CPU],
          "--codec (checkpoint shr, now hrnet)", "--lr (checkpoint 0.002, now 0.01)")
    fails(capsys, ["train", "--resume", "--out", str(run), "--steps", "4", *CPU],
          "--steps 4 differs from the checkpoint's 2", "cannot be extended")
    fails(capsys, ["train", "--resume", "--overwrite", "--out", str(run), *CPU], "contradict")


def test_truncated_image_in_a_training_set_names_the_file(tmp_path, capsys):
    make_300w(tmp_path / "300w")
    bad = tmp_path / "300w" / "helen" / "trainset" / "face_1.jpg"
    bad.write_bytes(bad.read_bytes()[:400])
    # workers 1: the error comes back from a DataLoader worker process, still as one line
    fails(capsys, ["train", "--dataset", "300w", "--data-root", str(tmp_path / "300w"), "--steps", "2", *TINY,
                   "--workers", "1", "--out", str(tmp_path / "run")],
          f"{bad}: not a readable image: truncated JPEG")


# ---------------------------------------------------------------------------------------- eval


def test_eval_errors(run, tmp_path, capsys):
    ckpt = str(run / "checkpoint.pt")
    fails(capsys, ["eval", "--checkpoint", str(tmp_path / "nope.pt"), *CPU], "--checkpoint", "nope.pt: no such file")
    fails(capsys, ["eval", "--checkpoint", str(run), *CPU], "is a folder; expected a checkpoint file")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    fails(capsys, ["eval", "--checkpoint", str(tmp_path / "notes.txt"), *CPU], "not a shr-fan checkpoint")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((run / "checkpoint.pt").read_bytes()[:5000])
    fails(capsys, ["eval", "--checkpoint", str(cut), *CPU], "cut.pt: not a shr-fan checkpoint")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    fails(capsys, ["eval", "--checkpoint", str(tmp_path / "tensor.pt"), *CPU], "expected a dict with model, config")
    fails(capsys, ["eval", "--checkpoint", ckpt, "--n", "0", *CPU], "argument --n: expected an integer > 0")
    fails(capsys, ["eval", "--checkpoint", ckpt, "--decoders", "best", *CPU], "invalid choice: 'best'")
    fails(capsys, ["eval", "--checkpoint", ckpt, "--dataset", "wflw", *CPU], "--dataset wflw needs --data-root")


def test_eval_refuses_a_truncated_test_image(run, tmp_path, capsys):
    make_300w(tmp_path / "300w")
    bad = tmp_path / "300w" / "ibug" / "face_5.jpg"
    bad.write_bytes(bad.read_bytes()[:1000])
    # the checkpoint is a synthetic one (68 points, as 300-W): the image is read before anything is scored
    fails(capsys, ["eval", "--checkpoint", str(run / "checkpoint.pt"), "--dataset", "300w", "--data-root",
                   str(tmp_path / "300w"), "--split", "challenge", *CPU], f"{bad}: not a readable image: truncated")


# ---------------------------------------------------------------------------------------- predict


def test_predict_errors(run, face_jpg, tmp_path, capsys):
    folder, box = face_jpg
    ckpt = ["--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "pred"), *CPU]
    face = str(folder / "face.jpg")
    fails(capsys, ["predict", face, *ckpt], "no face box given", "--box X0 Y0 X1 Y1", "--whole-image",
          "no face detector")
    x0, y0, x1, y1 = box
    fails(capsys, ["predict", face, *ckpt, "--box", str(x1), str(y0), str(x0), str(y1)], "--box", "X1 > X0")
    fails(capsys, ["predict", face, *ckpt, "--box", "10", "10", "10", "40"], "X1 > X0 and Y1 > Y0")
    fails(capsys, ["predict", face, *ckpt, "--box", "300", "300", "400", "400"],
          "its centre (350, 350) lies outside the 256x256 image")
    fails(capsys, ["predict", str(folder / "stub300.jpg"), *ckpt, "--box", *map(str, box)],
          "stub300.jpg: not a readable image: truncated JPEG")
    fails(capsys, ["predict", str(folder / "half.jpg"), *ckpt, "--whole-image"], "half.jpg: not a readable image")
    fails(capsys, ["predict", str(tmp_path / "missing.jpg"), *ckpt, "--whole-image"], "no such image file or folder")
    fails(capsys, ["predict", str(folder), *ckpt, "--box", *map(str, box)], "--box applies to a single image")
    boxes = tmp_path / "boxes.txt"
    boxes.write_text(f"face.jpg {x0} {y0} {x1} {y1}\n")
    fails(capsys, ["predict", str(folder), *ckpt, "--boxes", str(boxes)], "no box for half.jpg, stub300.jpg")
    boxes.write_text("face.jpg 1 2 three 4\n")
    fails(capsys, ["predict", face, *ckpt, "--boxes", str(boxes)], "boxes.txt:1: expected NAME X0 Y0 X1 Y1")
    boxes.write_text(f"other.jpg {x0} {y0} {x1} {y1}\n")
    fails(capsys, ["predict", face, *ckpt, "--boxes", str(boxes)], "no image 'other.jpg'")
    fails(capsys, ["predict", face, "--checkpoint", str(folder / "face.jpg"), "--whole-image", *CPU],
          "not a shr-fan checkpoint")
    assert not (tmp_path / "pred").exists()  # every case was refused before any output


def test_debug_shows_the_traceback(tmp_path):
    cmd = [sys.executable, "-m", "shr_fan.cli", "eval", "--checkpoint", str(tmp_path / "none.pt"), "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr == f"shr-fan eval: error: --checkpoint {tmp_path / 'none.pt'}: no such file\n"
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserError" in debug.stderr


# ---------------------------------------------------------------------------------------- images


def real_jpeg() -> bytes:
    """A real photograph that ships with matplotlib (a pinned requirement): Grace Hopper."""
    import matplotlib

    return open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), "rb").read()


@pytest.mark.parametrize("params", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]],
                         ids=["baseline", "progressive", "restart-markers"])
def test_every_truncation_of_a_jpeg_is_refused(tmp_path, params):
    ok, encoded = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(real_jpeg(), np.uint8), cv2.IMREAD_COLOR), params)
    data = encoded.tobytes()
    assert images.structure_problem(data) is None
    assert images.decode_image(data + b"trailing bytes", "x.jpg").shape[:2] == (600, 512)  # data after EOI is fine
    for n in sorted({300, 1000, *range(2, len(data) - 1, max(1, len(data) // 97)), len(data) - 2, len(data) - 1}):
        cut = data[:n]
        with pytest.raises(images.ImageError, match="truncated JPEG"):
            images.decode_image(cut, "x.jpg")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    # what images.read_image guards against: OpenCV itself returns a partly grey picture
    assert cv2.imread(str(path)) is not None
    with pytest.raises(UserError, match=f"{path}: not a readable image: truncated JPEG"):
        images.read_image(path)


def test_corrupt_jpeg_and_png_are_refused(tmp_path):
    data = real_jpeg()
    assert images.structure_problem(data) is None
    k, scan = data.index(b"\xff\xc4"), data.index(b"\xff\xda")
    # bytes between two segments, an invalid marker inside the entropy-coded data: libjpeg warns
    # and OpenCV returns a picture anyway; both are refused
    for broken in (data[:k] + b"\x00\x00\x00" + data[k:], data[:scan + 5000] + b"\xff\x12" + data[scan + 5000:]):
        assert cv2.imdecode(np.frombuffer(broken, np.uint8), cv2.IMREAD_COLOR) is not None
        with pytest.raises(images.ImageError, match="corrupt JPEG"):
            images.decode_image(broken, "x.jpg")
    ok, png = cv2.imencode(".png", synthetic.render_face(3)[0])
    png = bytearray(png.tobytes())
    assert images.structure_problem(bytes(png)) is None
    png[len(png) // 2] ^= 0xFF  # one flipped byte inside the image data
    with pytest.raises(images.ImageError, match="corrupt PNG .*fails its CRC"):
        images.decode_image(bytes(png), "x.png")
    with pytest.raises(images.ImageError, match="truncated PNG"):
        images.decode_image(bytes(png[:200]), "x.png")
    with pytest.raises(images.ImageError, match="OpenCV cannot decode it"):
        images.decode_image(b"this is text, not an image", "notes.png")


@pytest.mark.parametrize("ext", [".png", ".bmp", ".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".tif", ".webp", ".jp2",
                                 ".ras", ".hdr", ".avif"])
def test_every_format_opencv_writes_is_read_and_its_truncation_refused(tmp_path, ext):
    image = synthetic.render_face(5)[0]
    if ext in (".pgm", ".pbm"):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    path = tmp_path / f"face{ext}"
    assert cv2.imwrite(str(path), image)
    assert images.is_image_file(str(path))
    read = images.read_image(path)
    assert read.shape == (256, 256, 3) and read.dtype == np.uint8
    data = path.read_bytes()
    for n in (len(data) // 2, 300):
        cut = tmp_path / f"cut{n}{ext}"
        cut.write_bytes(data[:n])
        with pytest.raises(images.ImageError, match=f"cut{n}{ext}: not a readable image"):
            images.read_image(cut)
