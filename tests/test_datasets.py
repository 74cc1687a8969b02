"""Benchmark loaders (300-W, WFLW, COFW-29, AFLW-19) on small fixtures written here in each real
format from synthetic faces; malformed files and missing images; flip permutations; missing
landmarks through crops, training loss and metrics; epoch cycling; train/eval CLI end to end."""
import os

import cv2
import numpy as np
import pytest
import torch

from shr_fan import cli, metrics, synthetic
from shr_fan.data import Augment, EpochCycle, apply_affine
from shr_fan.datasets import SPECS, FormatError, MissingImagesError, aflw, cofw, get_dataset, w300, wflw

SIZE = 96  # fixture images are SIZE x SIZE


def _face(seed: int, size: int = SIZE):
    return synthetic.render_face(seed, synthetic.SynthConfig(size=size))


# ---- other landmark schemes from the 68 iBUG points (any plausible continuous points will do) ----

def _mid(p, a, b):
    return (p[a] + p[b]) / 2


def to98(p):
    """WFLW's 98 points from 68: contour 0..32 (odd ones interpolated), brows with a lower edge,
    nose 51..59, eyes of 8 points, mouth 76..95, pupils 96, 97."""
    out = np.empty((98, 2))
    out[0:33:2] = p[0:17]
    out[1:33:2] = (p[0:16] + p[1:17]) / 2
    out[33:38], out[42:47] = p[17:22], p[22:27]
    left_eye, right_eye = p[36:42].mean(0), p[42:48].mean(0)
    out[38:42] = p[[20, 19, 18, 17]] + 0.3 * (left_eye - p[[20, 19, 18, 17]])
    out[47:51] = p[[26, 25, 24, 23]] + 0.3 * (right_eye - p[[26, 25, 24, 23]])
    out[51:60] = p[27:36]
    out[60:68] = [p[36], p[37], _mid(p, 37, 38), p[38], p[39], p[40], _mid(p, 40, 41), p[41]]
    out[68:76] = [p[42], p[43], _mid(p, 43, 44), p[44], p[45], p[46], _mid(p, 46, 47), p[47]]
    out[76:96] = p[48:68]
    out[96], out[97] = left_eye, right_eye
    return out


def to29(p):
    """COFW's 29 points from 68."""
    le, re = p[36:42].mean(0), p[42:48].mean(0)
    return np.array([p[17], p[26], p[21], p[22], p[19], p[19] + 0.3 * (le - p[19]), p[24], p[24] + 0.3 * (re - p[24]),
                     p[36], p[45], p[39], p[42], _mid(p, 37, 38), _mid(p, 40, 41), _mid(p, 43, 44), _mid(p, 46, 47),
                     le, re, p[31], p[35], p[30], p[33], p[48], p[54], p[51], p[62], p[66], p[57], p[8]])


def to19(p):
    """AFLW's 19 points from 68."""
    return np.array([p[17], p[19], p[21], p[22], p[24], p[26], p[36], p[36:42].mean(0), p[39], p[42],
                     p[42:48].mean(0), p[45], p[31], p[30], p[35], p[48], _mid(p, 51, 57), p[54], p[8]])


# ---- fixture writers, each in the benchmark's distributed format ----

def write_pts(path, points_1based, n_points=None):
    with open(path, "w") as f:
        f.write(f"version: 1\nn_points: {n_points or len(points_1based)}\n{{\n")
        for x, y in points_1based:
            f.write(f"{float(x)!r} {float(y)!r}\n")
        f.write("}\n")


def make_300w(root):
    """One face in each of the six folders; {folder: 0-based points}."""
    truth = {}
    for i, sub in enumerate(["afw", "helen/trainset", "lfpw/trainset", "helen/testset", "lfpw/testset", "ibug"]):
        os.makedirs(root / sub, exist_ok=True)
        image, pts = _face(100 + i)
        suffix = ".png" if sub.startswith("lfpw") else ".jpg"
        cv2.imwrite(str(root / sub / f"face_{i}{suffix}"), image)
        write_pts(root / sub / f"face_{i}.pts", pts + 1.0)  # 1-based on disk
        truth[sub] = pts
    return truth


WFLW_FLAGS = {"train": [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0]],
              "test": [[1, 0, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0]]}


def wflw_line(points, rect, flags, name):
    return " ".join([*(f"{float(v)!r}" for v in points.reshape(-1)), *(f"{v:g}" for v in rect), *map(str, flags), name])


def make_wflw(root):
    truth = {}
    lists = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    os.makedirs(lists, exist_ok=True)
    for s, split in enumerate(["train", "test"]):
        lines = []
        for j, flags in enumerate(WFLW_FLAGS[split]):
            image, pts = _face(200 + 10 * s + j)
            name = f"{s}--Event/{split}_{j}.jpg"
            os.makedirs(root / "WFLW_images" / os.path.dirname(name), exist_ok=True)
            cv2.imwrite(str(root / "WFLW_images" / name), image)
            p98 = to98(pts)
            lines.append(wflw_line(p98, [3, 4, SIZE - 5, SIZE - 6], flags, name))
            truth.setdefault(split, []).append(p98)
        (lists / wflw.LIST_FILES[split]).write_text("\n".join(lines) + "\n")
    return truth


def cofw_faces(n, seed, grey_every=2):
    """(images RGB/grey as Matlab holds them, phis [n, 87] 1-based, bboxes [n, 4] x y w h 1-based, 0-based points)"""
    images, phis, boxes, truth = [], [], [], []
    for j in range(n):
        image, pts = _face(seed + j)
        p29 = to29(pts)
        occluded = (np.arange(29) + j) % 5 == 0
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if j % grey_every == 1 else image[..., ::-1].copy())
        phis.append(np.concatenate([p29[:, 0] + 1, p29[:, 1] + 1, occluded.astype(float)]))
        boxes.append([6.0, 7.0, 80.0, 82.0])
        truth.append(p29)
    return images, np.array(phis), np.array(boxes), np.array(truth)


def write_cofw_v5(path, split, images, phis, boxes):
    import scipy.io

    cells = np.empty((len(images), 1), dtype=object)
    for j, im in enumerate(images):
        cells[j, 0] = im
    keys = cofw.KEYS[split]
    scipy.io.savemat(str(path), {keys[0]: cells, keys[1]: phis, keys[2]: boxes})


def write_cofw_hdf5(path, split, images, phis, boxes):
    """Matlab v7.3 layout: arrays with reversed axes, the cell array as object references."""
    import h5py

    keys = cofw.KEYS[split]
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        ds = f.create_dataset(keys[0], (1, len(images)), dtype=h5py.ref_dtype)
        for j, im in enumerate(images):
            ds[0, j] = refs.create_dataset(f"im{j}", data=np.ascontiguousarray(im.T)).ref
        f.create_dataset(keys[1], data=phis.T)
        f.create_dataset(keys[2], data=boxes.T)


def make_aflw(root, n=6):
    import scipy.io

    os.makedirs(root / "data" / "flickr" / "0", exist_ok=True)
    data, bbox, mask, names = [], [], [], []
    for j in range(n):
        image, pts = _face(300 + j)
        name = f"0/image{j:05d}.jpg"
        cv2.imwrite(str(root / "data" / "flickr" / name), image)
        p19 = to19(pts)
        data.append(np.concatenate([p19[:, 0], p19[:, 1]]))
        x0, y0 = pts.min(0) - 2
        x1, y1 = pts.max(0) + 2
        bbox.append([x0, x1, y0, y1])  # left right top bottom
        mask.append((np.arange(19) != j) if j % 2 else np.ones(19, bool))  # odd faces have a hidden point
        names.append(name)
    name_cells = np.empty((n, 1), dtype=object)
    for j, nm in enumerate(names):
        name_cells[j, 0] = np.array([nm])
    ra = np.array([[3, 1, 6, 2, 5, 4]])[:, :n]  # Matlab 1-based permutation
    scipy.io.savemat(str(root / "AFLWinfo_release.mat"), dict(bbox=np.array(bbox), data=np.array(data),
                                                               mask_new=np.array(mask, dtype=float),
                                                               nameList=name_cells, ra=ra.astype(float)))
    return np.array(data), np.array(bbox), np.array(mask), ra[0] - 1


# ---- 300-W ----

def test_300w_splits_coordinates_and_crops(tmp_path):
    truth = make_300w(tmp_path)
    sizes = {"train": 3, "common": 2, "challenge": 1, "full": 3}
    for split, n in sizes.items():
        ds = get_dataset("300w", str(tmp_path), split, crop=64)
        assert len(ds) == n and ds.num_landmarks == 68
    full = get_dataset("300w", str(tmp_path), "full", crop=64)
    # 1-based on disk -> 0-based here (repr keeps every digit; x + 1 - 1 may differ in the last bit)
    for got, sub in zip(full.points, ["helen/testset", "lfpw/testset", "ibug"]):
        np.testing.assert_allclose(got, truth[sub], rtol=0, atol=1e-12)
    np.testing.assert_allclose(full.boxes[0], np.concatenate([truth["helen/testset"].min(0),
                                                              truth["helen/testset"].max(0)]), rtol=0, atol=1e-12)
    assert full.image_paths[1].endswith(".png") and full.image(1).shape == (SIZE, SIZE, 3)
    item = full[2]
    assert item["image"].shape == (3, 64, 64) and bool(item["visible"].all())
    np.testing.assert_allclose(item["landmarks"].numpy(), apply_affine(truth["ibug"], item["matrix"].numpy()),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(item["original"].numpy(), truth["ibug"], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown split 'test'.*challenge"):
        get_dataset("300w", str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match="ibug"):
        get_dataset("300w", str(tmp_path / "nowhere"), "challenge")


GOOD = ["version: 1", "n_points: 68", "{"] + ["1.5 2.5"] * 68 + ["}"]


@pytest.mark.parametrize("lines, line, expected", [
    ([], 1, "empty file"),
    (["version: 2"] + GOOD[1:], 1, "expected 'version: 1'"),
    (GOOD[:1] + ["n_points: many"] + GOOD[2:], 2, "expected 'n_points: K'"),
    (GOOD[:1] + ["n_points: 5"] + GOOD[2:], 2, "expected n_points: 68, got 5"),
    (GOOD[:2] + ["["] + GOOD[3:], 3, "expected '{'"),
    (GOOD[:10] + ["1.5 abc"] + GOOD[11:], 11, "expected a number for point 8, got 'abc'"),
    (GOOD[:10] + ["1.5 2.5 3.5"] + GOOD[11:], 11, "expected point 8 of 68 as 'x y'"),
    (GOOD[:50] + ["}"], 51, "'}' after only 47 points"),
    (GOOD[:-1], 72, "expected '}' after 68 points, got end of file"),
    (GOOD + ["1 2"], 73, "expected nothing after '}'"),
    (GOOD[:5] + ["nan 2"] + GOOD[6:], None, "expected finite coordinates"),
])
def test_read_pts_malformed(tmp_path, lines, line, expected):
    path = tmp_path / "bad.pts"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(FormatError, match=expected.replace("(", r"\(").replace("[", r"\[")) as err:
        w300.read_pts(str(path), 68)
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert str(err.value).startswith(where) and err.value.line == line


def test_read_pts_tolerates_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "ok.pts"
    path.write_bytes(("\r\n".join(GOOD) + "\r\n\r\n").encode())
    np.testing.assert_array_equal(w300.read_pts(str(path), 68), np.full((68, 2), [1.5, 2.5]))


def test_300w_missing_images_are_listed(tmp_path):
    make_300w(tmp_path)
    os.remove(tmp_path / "ibug" / "face_5.jpg")
    os.remove(tmp_path / "lfpw" / "testset" / "face_4.png")
    train = get_dataset("300w", str(tmp_path), "train")  # unaffected
    (tmp_path / "afw" / "face_0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FormatError, match="face_0.jpg: not a readable image"):
        train.image(0)
    with pytest.raises(MissingImagesError, match="2 annotated image") as err:
        get_dataset("300w", str(tmp_path), "full")
    assert len(err.value.missing) == 2 and str(tmp_path / "ibug" / "face_5.jpg") in str(err.value)
    assert str(tmp_path / "lfpw" / "testset" / "face_4") in str(err.value)


# ---- WFLW ----

def test_wflw_splits_subsets_and_coordinates(tmp_path):
    truth = make_wflw(tmp_path)
    train = get_dataset("wflw", str(tmp_path), "train", crop=64)
    test = get_dataset("wflw", str(tmp_path), "test", crop=64)
    assert len(train) == 3 and len(test) == 3 and test.num_landmarks == 98
    np.testing.assert_array_equal(test.points, np.stack(truth["test"]))  # 0-based, unchanged
    np.testing.assert_array_equal(test.rects[0], [3, 4, SIZE - 5, SIZE - 6])
    np.testing.assert_array_equal(test.boxes[1], np.concatenate([truth["test"][1].min(0), truth["test"][1].max(0)]))
    flags = np.array(WFLW_FLAGS["test"], dtype=bool)
    for a, name in enumerate(wflw.ATTRIBUTES):
        sub = get_dataset("wflw", str(tmp_path), name)
        assert len(sub) == flags[:, a].sum()
        np.testing.assert_array_equal(sub.points, np.stack(truth["test"])[flags[:, a]])
    assert test[0]["image"].shape == (3, 64, 64)


def test_wflw_malformed_lines_and_missing_images(tmp_path):
    make_wflw(tmp_path)
    path = tmp_path / wflw.LIST_DIR / wflw.LIST_FILES["test"]
    good = path.read_text().splitlines()
    fields = good[1].split()
    cases = [
        (good[1].rsplit(" ", 1)[0], "expected 207 fields .*got 206"),
        (" ".join(fields[:7] + ["x1.0"] + fields[8:]), "expected a number for field 8, got 'x1.0'"),
        (" ".join(good[1].split()[:200] + ["0", "2", "0", "0", "0", "0"] + good[1].split()[206:]),
         "attribute flags .* 0 or 1, got 0 2 0 0 0 0"),
    ]
    for bad, expected in cases:
        path.write_text("\n".join([good[0], bad, good[2]]) + "\n")
        with pytest.raises(FormatError, match=expected) as err:
            get_dataset("wflw", str(tmp_path), "test")
        assert str(err.value).startswith(f"{path}:2:")
    path.write_text("\n\n")
    with pytest.raises(FormatError, match="found no faces"):
        get_dataset("wflw", str(tmp_path), "test")
    path.write_text("\n".join(good) + "\n")
    os.remove(tmp_path / "WFLW_images" / "1--Event" / "test_2.jpg")
    with pytest.raises(MissingImagesError, match="test_2.jpg"):
        get_dataset("wflw", str(tmp_path), "test")
    assert len(get_dataset("wflw", str(tmp_path), "makeup")) == 1  # a subset without that face still loads


# ---- COFW ----

@pytest.mark.parametrize("layout", ["v5", "hdf5"])
def test_cofw_mat_files(tmp_path, layout):
    write = write_cofw_v5 if layout == "v5" else write_cofw_hdf5
    images, phis, boxes, truth = cofw_faces(3, 400)
    write(tmp_path / "COFW_test_color.mat", "test", images, phis, boxes)
    ds = get_dataset("cofw", str(tmp_path), "test", crop=64)
    assert len(ds) == 3 and ds.num_landmarks == 29
    np.testing.assert_allclose(ds.points, truth, atol=1e-12)  # 1-based Matlab -> 0-based
    np.testing.assert_array_equal(ds.visible, phis[:, 58:] == 0)
    np.testing.assert_allclose(ds.rects[0], [5.0, 6.0, 85.0, 88.0])
    colour = ds.image(0)
    expected, _ = _face(400)
    np.testing.assert_array_equal(colour, expected)  # RGB in Matlab -> BGR here
    grey = ds.image(1)
    assert grey.shape == (SIZE, SIZE, 3) and (grey[..., 0] == grey[..., 2]).all()
    item = ds[0]
    np.testing.assert_array_equal(item["visible"].numpy(), phis[0, 58:] == 0)


def test_cofw_flip_permutes_occlusion_flags_and_grey_fallback(tmp_path):
    images, phis, boxes, truth = cofw_faces(2, 410)
    write_cofw_v5(tmp_path / "COFW_train.mat", "train", images, phis, boxes)  # the grey original's name
    ds = cofw.COFW(str(tmp_path), "train", crop=64, augment=Augment(flip_prob=1.0, colour=0.0))
    item = ds[0]
    perm = cofw.FLIP_PERMUTATION
    np.testing.assert_array_equal(item["visible"].numpy(), (phis[0, 58:] == 0)[perm])
    np.testing.assert_allclose(item["landmarks"].numpy(), apply_affine(truth[0], item["matrix"].numpy())[perm],
                               atol=1e-9)


@pytest.mark.parametrize("layout", ["v5", "hdf5"])
def test_cofw_malformed(tmp_path, layout):
    write = write_cofw_v5 if layout == "v5" else write_cofw_hdf5
    images, phis, boxes, _ = cofw_faces(2, 420)
    path = tmp_path / "COFW_test_color.mat"
    write(path, "train", images, phis, boxes)  # train variable names in the test file
    with pytest.raises(FormatError, match="expected a variable 'IsT'") as err:
        get_dataset("cofw", str(tmp_path), "test")
    assert str(err.value).startswith(str(path))
    write(path, "test", images, phis[:, :80], boxes)
    with pytest.raises(FormatError, match=r"phisT of shape \[2, 87\].*got \[2, 80\]"):
        get_dataset("cofw", str(tmp_path), "test")
    bad = phis.copy()
    bad[0, 60] = 2
    write(path, "test", images, bad, boxes)
    with pytest.raises(FormatError, match="occlusion flags"):
        get_dataset("cofw", str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match="COFW_train_color.mat"):
        get_dataset("cofw", str(tmp_path), "train")
    path.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(FormatError, match="not a readable Matlab file") as err:
        get_dataset("cofw", str(tmp_path), "test")
    assert str(err.value).startswith(str(path))


# ---- AFLW-19 ----

def test_aflw_splits_boxes_and_visibility(tmp_path):
    data, bbox, mask, ra = make_aflw(tmp_path)
    train = aflw.AFLW19(str(tmp_path), "train", crop=64, train_size=4)
    full = aflw.AFLW19(str(tmp_path), "full", crop=64, train_size=4)
    frontal = aflw.AFLW19(str(tmp_path), "frontal", crop=64, train_size=4)
    np.testing.assert_array_equal(train.indices, ra[:4])
    np.testing.assert_array_equal(full.indices, ra[4:])  # rows 4, 3 (0-based)
    np.testing.assert_array_equal(frontal.indices, [i for i in ra[4:] if mask[i].all()])
    assert len(frontal) == 1 and frontal.visible.all() and not full.visible.all()
    row = ra[4]
    np.testing.assert_array_equal(full.points[0], np.stack([data[row, :19], data[row, 19:]], 1))
    left, right, top, bottom = bbox[row]
    np.testing.assert_array_equal(full.boxes[0], [left, top, right, bottom])
    np.testing.assert_array_equal(full.annotation_box(0), full.boxes[0])
    np.testing.assert_array_equal(full[0]["visible"].numpy(), mask[row])
    # the registry's split boundary is the release's 20000: all six fixture faces are training faces
    assert len(get_dataset("aflw", str(tmp_path), "train")) == 6 and len(get_dataset("aflw", str(tmp_path))) == 0


def test_aflw_malformed_and_missing(tmp_path):
    import scipy.io

    make_aflw(tmp_path)
    path = tmp_path / "AFLWinfo_release.mat"
    mat = scipy.io.loadmat(str(path))
    good = {k: v for k, v in mat.items() if not k.startswith("__")}
    scipy.io.savemat(str(path), {**good, "ra": np.array([[1, 1, 2, 3, 4, 5]])})
    with pytest.raises(FormatError, match=r"ra to be a permutation of 1..6") as err:
        aflw.AFLW19(str(tmp_path), "full")
    assert str(err.value).startswith(str(path))
    scipy.io.savemat(str(path), {**good, "data": good["data"][:, :30]})
    with pytest.raises(FormatError, match=r"data of shape \[N, 38\]"):
        aflw.AFLW19(str(tmp_path), "full")
    scipy.io.savemat(str(path), {k: v for k, v in good.items() if k != "mask_new"})
    with pytest.raises(FormatError, match="expected a variable 'mask_new'"):
        aflw.AFLW19(str(tmp_path), "full")
    scipy.io.savemat(str(path), good)
    os.remove(tmp_path / "data" / "flickr" / "0" / "image00003.jpg")  # row 3: in full (ra[5] = 4 -> row 3)
    with pytest.raises(MissingImagesError, match="image00003.jpg"):
        aflw.AFLW19(str(tmp_path), "full", train_size=4)


# ---- flip permutations ----

def _mirror(points, width=SIZE):
    out = points.copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


@pytest.mark.parametrize("name, convert, eyes", [
    ("300w", lambda p: p, [(36, 45), (39, 42)]),
    ("wflw", to98, [(60, 72), (64, 68), (96, 97)]),
    ("cofw", to29, [(8, 9), (10, 11), (16, 17)]),
    ("aflw", to19, [(6, 11), (7, 10), (8, 9)]),
])
def test_flip_permutations(name, convert, eyes):
    perm = SPECS[name].flip_permutation
    assert sorted(perm) == list(range(SPECS[name].num_landmarks))
    np.testing.assert_array_equal(perm[perm], np.arange(len(perm)))  # an involution
    for a, b in eyes:
        assert perm[a] == b and perm[b] == a
    # Mirroring a face and relabelling its 68 points must give the same points as converting the
    # face to the scheme, mirroring and relabelling with the scheme's permutation.
    _, p68 = _face(7)
    mirrored68 = _mirror(p68)[synthetic.FLIP_PERMUTATION]
    np.testing.assert_allclose(convert(mirrored68), _mirror(convert(p68))[perm], atol=1e-9)


# ---- missing landmarks, epochs, metrics on datasets ----

def test_missing_landmarks_flow_as_nan_and_are_left_out(tmp_path):
    from shr_fan.train import TrainConfig, build_model, supervised_loss
    from shr_ops import codecs

    images, phis, boxes, truth = cofw_faces(2, 430)
    phis[0, 3] = np.nan  # x of point 3 missing: the point counts as missing
    write_cofw_v5(tmp_path / "COFW_test_color.mat", "test", images, phis, boxes)
    ds = get_dataset("cofw", str(tmp_path), "test", crop=64)
    assert np.isnan(ds.points[0, 3, 0]) and np.isfinite(ds.points[0, 4]).all()
    batch = [ds[0], ds[1]]
    lm = torch.stack([b["landmarks"] for b in batch])
    assert torch.isnan(lm[0, 3]).any() and not bool(batch[0]["visible"][3]) and bool(batch[0]["visible"][4])
    cfg = TrainConfig(crop=64, device="cpu")
    torch.manual_seed(0)
    model = build_model(cfg, 29)
    outputs = model(torch.stack([b["image"] for b in batch]))
    loss = supervised_loss(codecs.get_codec("shr"), outputs, lm, cfg)
    assert torch.isfinite(loss)
    # the missing point's map does not count: changing that output changes nothing
    bumped = [o.clone() for o in outputs]
    bumped[-1][0, 3] += 5.0
    assert supervised_loss(codecs.get_codec("shr"), bumped, lm, cfg).item() == pytest.approx(loss.item(), rel=1e-6)
    bumped[-1][0, 4] += 5.0
    assert supervised_loss(codecs.get_codec("shr"), bumped, lm, cfg).item() > loss.item() * 1.01
    loss.backward()
    # NME leaves the NaN point out of the image's mean
    gt = ds.points.copy()
    pred = np.where(np.isnan(gt), 0.0, gt) + np.array([3.0, 4.0])
    np.testing.assert_allclose(metrics.nme(pred, gt, np.array([10.0, 10.0])), [0.5, 0.5])


def test_epoch_cycle_orders_and_augmentations(tmp_path):
    make_300w(tmp_path)
    faces = get_dataset("300w", str(tmp_path), "train", crop=32, augment=Augment())
    cycle = EpochCycle(faces, 9, seed=3)
    order = [cycle.source_index(i) for i in range(9)]
    for e in range(3):
        assert sorted(order[3 * e:3 * e + 3]) == [0, 1, 2]  # every face once an epoch
    again = EpochCycle(faces, 9, seed=3)
    assert [again.source_index(i) for i in (7, 2, 5)] == [order[7], order[2], order[5]]  # any access order
    assert torch.equal(cycle[4]["image"], again[4]["image"])
    assert order != [EpochCycle(faces, 9, seed=4).source_index(i) for i in range(9)]
    # the same face in two epochs gets different augmentations
    i, j = order.index(0), 3 + order[3:6].index(0)
    assert not np.allclose(cycle[i]["matrix"].numpy(), cycle[j]["matrix"].numpy())
    assert cycle.num_landmarks == 68 and cycle.crop == 32


def test_cli_train_and_eval_on_300w_fixture(tmp_path, capsys):
    make_300w(tmp_path / "300w")
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "300w", "--data-root", str(tmp_path / "300w"), "--preset", "tiny",
                     "--crop", "64", "--steps", "2", "--batch-size", "2", "--workers", "0", "--out", str(out),
                     "--device", "cpu"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["config"]["dataset"] == "300w" and state["config"]["data_root"] == str(tmp_path / "300w")
    assert state["model"]["heads.0.weight"].shape[0] == 68
    assert cli.main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--dataset", "300w", "--data-root",
                     str(tmp_path / "300w"), "--split", "common", "--device", "cpu", "--ced",
                     str(tmp_path / "ced.png")]) == 0
    text = capsys.readouterr().out
    assert "300w common (2 faces), NME normalised by inter-ocular" in text and "inter-pupil" in text
    assert "| shr |" in text and "| hrnet |" in text and "| mean shape |" in text and "FR@0.08 %" in text
    assert (tmp_path / "ced.png").stat().st_size > 5000
    make_wflw(tmp_path / "wflw")
    assert cli.main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--dataset", "wflw", "--data-root",
                     str(tmp_path / "wflw"), "--device", "cpu"]) == 2
    assert "shr-fan eval: error: the model predicts 68 landmarks, wflw has 98" in capsys.readouterr().err


def test_evaluate_dataset_scores_in_image_pixels(tmp_path):
    """A perfect predictor scores 0 and a known image-pixel displacement gives its NME for each
    normaliser (AFLW: box and diagonal), through the crop and back; either moves with the image,
    so its transform consistency is 0 (two views of each face, AFLW's flip permutation)."""
    from shr_fan.consistency_metric import ViewPairs
    from shr_fan.evaluate import evaluate_dataset
    from shr_fan.train import TrainConfig

    data, bbox, mask, ra = make_aflw(tmp_path)
    ds = aflw.AFLW19(str(tmp_path), "full", crop=128, train_size=4)  # 32 px maps: points clear of the edges
    cfg = TrainConfig(crop=128, device="cpu")
    pairs = ViewPairs(ds)
    # the crops in the order evaluate_dataset shows them: the faces, then both views of each face
    crops = [(ds[i]["original"].numpy(), ds[i]["matrix"].numpy(), False) for i in range(len(ds))]
    crops += [(p["original"][v].numpy(), p["matrix"][v].numpy(), bool(p["flip"][v]))
              for p in (pairs[i] for i in range(len(pairs))) for v in range(2)]

    class Oracle(torch.nn.Module):
        """Heatmaps of the ground truth (shifted by `shift` image px), as the model would output."""

        def __init__(self, shift):
            super().__init__()
            self.config = type("C", (), {"num_landmarks": 19})()
            self.shift, self.calls = shift, 0

        def forward(self, images):
            from shr_fan.train import targets
            from shr_ops import codecs

            shown = crops[self.calls:self.calls + len(images)]
            self.calls += len(images)
            lm = torch.stack([torch.from_numpy(apply_affine(o + self.shift, m)[ds.flip_permutation if f else
                                                                               slice(None)]) for o, m, f in shown])
            return [targets(codecs.get_codec("shr"), lm, cfg)]

    assert any(f for _, _, f in crops) and not all(f for _, _, f in crops[len(ds):])
    for shift, factor in [((0.0, 0.0), 0.0), ((3.0, 4.0), 5.0)]:
        oracle = Oracle(np.array(shift))
        res = evaluate_dataset(oracle, cfg, ds, decoders=("shr",))
        assert oracle.calls == len(crops)
        w, h = ds.boxes[:, 2] - ds.boxes[:, 0], ds.boxes[:, 3] - ds.boxes[:, 1]
        np.testing.assert_allclose(res["box"]["shr"]["per_image"], factor / np.sqrt(w * h), atol=1e-3)
        np.testing.assert_allclose(res["diagonal"]["shr"]["per_image"], factor / np.hypot(w, h), atol=1e-3)
        assert set(res["box"]["shr"]) >= {"fr@0.07", "auc@0.07"}
        assert res["box"]["shr"]["consistency"] < 1e-3 and res["diagonal"]["shr"]["consistency"] < 1e-3


def test_resume_on_a_benchmark_continues_identically(tmp_path):
    from shr_fan.train import TrainConfig, load_model, train

    make_300w(tmp_path / "300w")

    def cfg(out, **kw):
        return TrainConfig(**{**dict(preset="tiny", crop=64, steps=3, batch_size=2, workers=0, out=str(tmp_path / out),
                                     log_every=1, checkpoint_every=1, device="cpu", seed=2, dataset="300w",
                                     data_root=str(tmp_path / "300w")), **kw})

    straight = train(cfg("a"), progress=False)  # 6 items from 3 faces: two epochs
    first = train(cfg("b", time_budget=0.0), progress=False)
    assert first["stopped_early"] and first["step"] == 1
    resumed = train(cfg("b"), resume=True, progress=False)
    a, acfg = load_model(straight["checkpoint"])
    b, _ = load_model(resumed["checkpoint"])
    assert acfg.dataset == "300w" and a.config.num_landmarks == 68
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na


def test_mean_crop_shape_baseline(tmp_path):
    from shr_fan.evaluate import mean_crop_shape

    truth = make_300w(tmp_path)
    ds = get_dataset("300w", str(tmp_path), "train", crop=64)
    expected = np.mean([apply_affine(truth[s], ds[i]["matrix"].numpy())
                        for i, s in enumerate(["afw", "helen/trainset", "lfpw/trainset"])], axis=0)
    np.testing.assert_allclose(mean_crop_shape(ds), expected, atol=1e-9)
