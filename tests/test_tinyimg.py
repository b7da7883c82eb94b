"""Tests of datasets/seq_tinyimg.py on a tiny Tiny-ImageNet written in the official layout: 200
wnids (listed out of sorted order), 2 training JPEGs per class, 1 validation JPEG per class."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main
from datasets import get_all_datasets
from tests.reference_helpers import make_dataset
from tests.test_augmentation_pinned import check_crops, coordinate_images
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.4802, 0.4480, 0.3975), (0.2770, 0.2691, 0.2821)
MEAN_T, STD_T = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
N_TRAIN = 2  # per class
GREY_TRAIN = {(3, 1), (150, 0)}  # (label, index) of the greyscale training images
GREY_VAL = {7}  # index of a greyscale validation image


def _wnids() -> list[str]:
    """200 distinct wnids, deliberately not sorted: the labels must follow the file's order."""
    rng = np.random.default_rng(0)
    ids = rng.choice(np.arange(1_000_000, 9_999_999), size=200, replace=False)
    return [f"n{int(i):08d}" for i in ids]


def _jpeg(path: Path, rng: np.random.Generator, grey: bool = False) -> None:
    pixels = rng.integers(0, 256, size=(64, 64) if grey else (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def write_tiny_imagenet(data_path: Path) -> dict:
    """The official layout under ``data_path/TINYIMG/tiny-imagenet-200``; returns what was written."""
    rng = np.random.default_rng(1)
    folder = data_path / "TINYIMG" / "tiny-imagenet-200"
    wnids = _wnids()
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for label, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
        for k in reversed(range(N_TRAIN)):
            _jpeg(images / f"{wnid}_{k}.JPEG", rng, grey=(label, k) in GREY_TRAIN)
    (folder / "val" / "images").mkdir(parents=True)
    val_labels = rng.permutation(200)  # val_i shows class val_labels[i]
    lines = []
    for i in rng.permutation(200):  # annotation lines in no particular order
        _jpeg(folder / "val" / "images" / f"val_{i}.JPEG", rng, grey=i in GREY_VAL)
        lines.append(f"val_{i}.JPEG\t{wnids[val_labels[i]]}\t0\t1\t62\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return {"folder": folder, "wnids": wnids, "val_labels": val_labels}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Module-wide: tests must not modify it (copy it first)."""
    data_path = tmp_path_factory.mktemp("tinyimg_data")
    return {"data_path": data_path, **write_tiny_imagenet(data_path)}




def _decoded(path: Path) -> torch.Tensor:
    """3 x 64 x 64 uint8 of a JPEG as PIL decodes it, converted to RGB."""
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


@pytest.fixture(scope="module")
def loaded(tiny) -> tuple[torch.Tensor, ...]:
    return make_dataset("seq-tinyimg", tiny["data_path"]).load()


# --- the protocol and the backbone ------------------------------------------------------------


def test_protocol_and_backbone(tmp_path):
    cls = get_all_datasets()["seq-tinyimg"]
    assert (cls.NAME, cls.SETTING, cls.N_TASKS, cls.N_CLASSES_PER_TASK) == ("seq-tinyimg", "class-il", 10, 20)
    net = make_dataset("seq-tinyimg", tmp_path).get_backbone().eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 64, 64)).shape == (2, 200)


# --- reading the official layout -------------------------------------------------------------


def test_train_split_follows_wnids_txt(tiny, loaded):
    train_x, train_y, _, _ = loaded
    assert train_x.shape == (200 * N_TRAIN, 3, 64, 64) and train_x.dtype == torch.uint8
    assert train_y.dtype == torch.int64
    assert train_y.tolist() == [c for c in range(200) for _ in range(N_TRAIN)]  # wnids.txt order, not sorted
    for label in (0, 3, 150, 199):
        wnid = tiny["wnids"][label]
        for k in range(N_TRAIN):  # file names sorted within a class
            expected = _decoded(tiny["folder"] / "train" / wnid / "images" / f"{wnid}_{k}.JPEG")
            assert torch.equal(train_x[label * N_TRAIN + k], expected), (label, k)


def test_val_split_is_the_test_split(tiny, loaded):
    _, _, test_x, test_y = loaded
    assert test_x.shape == (200, 3, 64, 64) and test_x.dtype == torch.uint8 and test_y.dtype == torch.int64
    names = sorted(f"val_{i}.JPEG" for i in range(200))
    assert test_y.tolist() == [int(tiny["val_labels"][int(n[4:-5])]) for n in names]
    for k in (0, 1, 57, 199):
        assert torch.equal(test_x[k], _decoded(tiny["folder"] / "val" / "images" / names[k])), names[k]


def test_greyscale_images_become_rgb(tiny, loaded):
    train_x, _, test_x, _ = loaded
    names = sorted(f"val_{i}.JPEG" for i in range(200))
    greys = [train_x[label * N_TRAIN + k] for label, k in GREY_TRAIN]
    greys += [test_x[names.index(f"val_{i}.JPEG")] for i in GREY_VAL]
    for image in greys:
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        assert image.float().std() > 10  # the noise survived: not a blank image
    colour = train_x[0]
    assert not torch.equal(colour[0], colour[1])
    wnid = tiny["wnids"][3]
    with Image.open(tiny["folder"] / "train" / wnid / "images" / f"{wnid}_1.JPEG") as image:
        assert image.mode == "L"
        assert torch.equal(greys[0][0], torch.from_numpy(np.asarray(image).copy()))


# --- tasks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", range(10))
def test_tasks_hold_exactly_their_classes(tiny, loaded, task):
    dataset = make_dataset("seq-tinyimg", tiny["data_path"])
    dataset.prepare(loaded)
    classes = list(range(20 * task, 20 * task + 20))
    assert list(dataset.task_classes(task)) == classes
    train = list(dataset.train_loader([task]))
    assert len(train) == 20 * N_TRAIN // 8
    labels = torch.cat([y for _, y, _ in train])
    assert sorted(labels.tolist()) == [c for c in classes for _ in range(N_TRAIN)]
    raws = torch.cat([raw for _, _, raw in train])
    expected = loaded[0][20 * N_TRAIN * task:20 * N_TRAIN * (task + 1)].float() / 255
    assert sorted(map(bytes, (raws * 255).round().to(torch.uint8).reshape(len(raws), -1).numpy())) == \
        sorted(map(bytes, (expected * 255).round().to(torch.uint8).reshape(len(expected), -1).numpy()))
    (x, y, raw), = list(dataset.test_loader(task))
    keep = [i for i, v in enumerate(loaded[3].tolist()) if v in classes]
    assert len(keep) == 20 and y.tolist() == [loaded[3][i].item() for i in keep]
    assert torch.equal(raw, loaded[2][keep].float() / 255)


# --- transforms ----------------------------------------------------------------------------


def test_test_transform_normalises_with_tiny_imagenet_statistics(tiny):
    images = torch.rand(4, 3, 64, 64)
    out = make_dataset("seq-tinyimg", tiny["data_path"]).test_transform(images)
    torch.testing.assert_close(out, (images - MEAN_T) / STD_T)


@pytest.mark.slow
def test_tensor_train_transform_crops_flips_and_normalises(tiny):
    torch.manual_seed(0)
    images = coordinate_images(1500, 64, 3) / 255
    out = make_dataset("seq-tinyimg", tiny["data_path"]).train_transform(images)
    check_crops(images * 255, (out * STD_T + MEAN_T) * 255, atol=1e-3)


@pytest.mark.slow
def test_pil_train_transform_crops_flips_and_normalises(tiny):
    torch.manual_seed(1)
    image = coordinate_images(1, 64, 3)[0]
    pil = Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8))
    transform = make_dataset("seq-tinyimg", tiny["data_path"], loader="pil").pil_train_transform()
    out = torch.stack([transform(pil) for _ in range(1500)])
    check_crops(image.expand(1500, -1, -1, -1), (out * STD_T + MEAN_T) * 255, atol=1e-3)


def test_pil_loader_matches_tensor_loader_on_test_data(tiny, loaded):
    tensor_data = make_dataset("seq-tinyimg", tiny["data_path"])
    pil_data = make_dataset("seq-tinyimg", tiny["data_path"], loader="pil")
    tensor_data.prepare(loaded)
    pil_data.prepare(loaded)
    (a,) = list(tensor_data.test_loader(4))
    (b,) = list(pil_data.test_loader(4))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-6)


# --- missing or damaged data ------------------------------------------------------------------


@pytest.mark.parametrize("offline", [True, False])
def test_missing_folder_exits_2_saying_where_and_the_url(tmp_path, capsys, offline):
    argv = ["--model", "sgd", "--dataset", "seq-tinyimg", "--lr", "0.1", "--batch_size", "4", "--n_epochs", "1",
            "--data_path", str(tmp_path / "data"), "--results_path", str(tmp_path / "results"), "--device", "cpu",
            "--debug_mode", *(["--offline"] if offline else [])]
    assert main.main(argv) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("main.py: error: Tiny-ImageNet not found")
    assert f"{tmp_path / 'data' / 'TINYIMG' / 'tiny-imagenet-200'}/" in line and URL in line
    assert captured.out == ""
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def _damage(folder: Path, wnids: list[str], how: str) -> Path:
    if how == "no_wnids":
        path = folder / "wnids.txt"
        path.unlink()
    elif how == "short_wnids":
        path = folder / "wnids.txt"
        path.write_text("\n".join(wnids[:199]) + "\n")
    elif how == "duplicate_wnid":
        path = folder / "wnids.txt"
        path.write_text("\n".join([*wnids[:199], wnids[0]]) + "\n")
    elif how == "no_wnid_folder":
        path = folder / "train" / wnids[42] / "images"
        shutil.rmtree(folder / "train" / wnids[42])
    elif how == "unknown_wnid":
        path = folder / "val" / "val_annotations.txt"
        lines = path.read_text().splitlines()
        lines[5] = lines[5].replace(lines[5].split("\t")[1], "n99999999")
        path.write_text("\n".join(lines) + "\n")
    elif how == "no_annotations":
        path = folder / "val" / "val_annotations.txt"
        path.unlink()
    elif how == "missing_val_image":
        path = folder / "val" / "images" / "val_13.JPEG"
        path.unlink()
    elif how == "wrong_size":
        path = folder / "train" / wnids[7] / "images" / f"{wnids[7]}_1.JPEG"
        Image.new("RGB", (64, 32)).save(path)
    elif how == "not_an_image":
        path = folder / "val" / "images" / "val_3.JPEG"
        path.write_bytes(b"this is not a JPEG" * 20)
    else:  # truncated JPEG
        path = folder / "train" / wnids[0] / "images" / f"{wnids[0]}_0.JPEG"
        path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.mark.parametrize("how", ["no_wnids", "short_wnids", "duplicate_wnid", "no_wnid_folder", "unknown_wnid",
                                 "no_annotations", "missing_val_image", "wrong_size", "not_an_image", "truncated"])
def test_damaged_input_is_one_line_naming_the_file(tiny, tmp_path, how):
    shutil.copytree(tiny["data_path"] / "TINYIMG", tmp_path / "TINYIMG")
    path = _damage(tmp_path / "TINYIMG" / "tiny-imagenet-200", tiny["wnids"], how)
    with pytest.raises(UserError) as error:
        make_dataset("seq-tinyimg", tmp_path).load()
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    if how == "unknown_wnid":
        assert "n99999999" in message
    if how == "wrong_size":
        assert "64x32" in message


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_main_runs_on_the_fixture(tiny, tmp_path, capsys):
    """sgd through every task. ResNet-18 at 64x64 is slow on one CPU thread (about 0.1 s per step
    and 0.04 s per test image): batch 2 and a test split cut to one image per task (the others
    are not annotated, so not read) keep it near 10 s."""
    folder = tmp_path / "data" / "TINYIMG" / "tiny-imagenet-200"
    (folder / "val").mkdir(parents=True)
    for name in ("wnids.txt", "train", "val/images"):
        (folder / name).symlink_to(tiny["folder"] / name)
    lines = (tiny["folder"] / "val" / "val_annotations.txt").read_text().splitlines()
    first_classes = {wnid for label, wnid in enumerate(tiny["wnids"]) if label % 20 == 0}
    (folder / "val" / "val_annotations.txt").write_text(
        "\n".join(line for line in lines if line.split("\t")[1] in first_classes) + "\n")
    argv = ["--model", "sgd", "--dataset", "seq-tinyimg", "--lr", "0.1", "--batch_size", "2", "--n_epochs", "1",
            "--offline", "--data_path", str(tmp_path / "data"), "--results_path", str(tmp_path / "results"),
            "--device", "cpu", "--debug_mode", "--seed", "0", "--num_filters", "8"]
    assert main.main(argv) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "Accuracy for 10 task(s)" in captured.out
    assert "task 10/10" in captured.err + captured.out
