"""Image encoder and image data: sources (files, npz rows, csv pixel rows, class folders), the template cards,
bad-image policies, a tiny timm model that learns, save/load, zero-shot prediction, and (once) the packaged
EfficientNet-Lite0 ImageNet weights."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emoembed.codec import codec_for
from emoembed.data.images import (
    check_ref,
    clear_array_cache,
    expand_image_inputs,
    list_images,
    open_image,
    parse_ref,
    scan_class_folders,
)
from emoembed.encoders.base import encoder_class
from emoembed.encoders.image import (
    ImageEncoder,
    build_transform,
    create_backbone,
    load_backbone_weights,
    remap_efficientnet_lite0,
)
from emoembed.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "data_registry" / "templates"
FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
TINY = {"backbone": "resnet10t", "weights": None, "dropout": 0.0, "image_size": 32,
        "train_transform": [{"type": "RandomHorizontalFlip"}, {"type": "Resize", "size": [32, 32]}],
        "eval_transform": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}]}


# ---------------------------------------------------------------------------------------------- fixtures
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def png_bytes(value: int, size: int = 20, mode: str = "L", fmt: str = "PNG") -> bytes:
    from PIL import Image

    arr = np.full((size, size) if mode == "L" else (size, size, 3), value, dtype=np.uint8)
    arr[: size // 2, : size // 2] = 255 - value  # a little structure
    buf = io.BytesIO()
    Image.fromarray(arr, mode=None).save(buf, format=fmt)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def image_files(tmp_path: Path) -> dict[str, Path]:
    jpeg = png_bytes(200, 24, "RGB", "JPEG")
    files = {
        "grey": write(tmp_path / "imgs" / "grey.png", png_bytes(30)),
        "rgb": write(tmp_path / "imgs" / "sub" / "rgb.jpg", jpeg),
        "garbage": write(tmp_path / "imgs" / "garbage.jpg", b"this is not an image at all"),
        "truncated": write(tmp_path / "imgs" / "truncated.jpg", jpeg[: len(jpeg) // 2]),
        "empty": write(tmp_path / "imgs" / "empty.png", b""),
    }
    files["missing"] = tmp_path / "imgs" / "missing.png"
    return files


def tiny(dim: int = 8, **kw) -> ImageEncoder:
    torch.manual_seed(0)
    return ImageEncoder.from_config({**TINY, "dim": dim, **kw})


# ---------------------------------------------------------------------------------------------- sources
def test_parse_ref_forms(tmp_path):
    assert parse_ref("a/b.jpg").path == Path("a/b.jpg") and not parse_ref("a/b.jpg").is_array
    r = parse_ref("/d/fer2013.npz#17")
    assert (r.path, r.array, r.row, str(r)) == (Path("/d/fer2013.npz"), "images", 17, "/d/fer2013.npz#17")
    assert parse_ref("/d/x.npz#faces:3").array == "faces" and str(parse_ref("/d/x.npz#faces:3")) == "/d/x.npz#faces:3"
    assert (parse_ref("f.csv#2").array, parse_ref("f.csv#2").row) == ("pixels", 2)
    assert not parse_ref("photo#1.jpg").is_array  # '#' in an image file name is just a character
    with pytest.raises(DataError, match=r"x.npz#abc: the part after '#' must be a row number"):
        parse_ref("x.npz#abc")
    with pytest.raises(DataError, match="empty image reference"):
        parse_ref("  ")


def test_open_files_and_clear_errors(image_files):
    img = open_image(str(image_files["grey"]))
    assert img.mode == "RGB" and img.size == (20, 20)
    assert open_image(image_files["rgb"], mode=None).mode == "RGB"
    cases = {"missing": "image file not found", "garbage": "not an image file PIL can read",
             "truncated": "cannot decode the image", "empty": "not an image file PIL can read"}
    for key, msg in cases.items():
        with pytest.raises(DataError) as exc:
            open_image(str(image_files[key]))
        assert str(exc.value).startswith(str(image_files[key])) and msg in str(exc.value), key
    with pytest.raises(DataError, match="is a folder, not an image file"):
        open_image(str(image_files["grey"].parent))


def test_npz_npy_and_csv_rows(tmp_path):
    clear_array_cache()
    faces = np.arange(3 * 6 * 6, dtype=np.uint8).reshape(3, 6, 6)
    np.savez_compressed(tmp_path / "f.npz", images=faces, other=faces[:, ::-1])
    np.save(tmp_path / "f.npy", faces)
    rows = "\n".join(f"{k},{' '.join(str(v) for v in faces[k].ravel())},Training" for k in range(3))
    (tmp_path / "f.csv").write_text("emotion,pixels,Usage\n" + rows + "\n", encoding="utf-8")
    for ref in (f"{tmp_path}/f.npz#2", f"{tmp_path}/f.npy#2", f"{tmp_path}/f.csv#2"):
        img = open_image(ref, mode=None)
        np.testing.assert_array_equal(np.asarray(img), faces[2])
        assert open_image(ref).mode == "RGB"
    np.testing.assert_array_equal(np.asarray(open_image(f"{tmp_path}/f.npz#other:1", None)), faces[1, ::-1])
    with pytest.raises(DataError, match=r"f.npz#7: row 7 is outside 0..2 of"):
        check_ref(f"{tmp_path}/f.npz#7")
    with pytest.raises(DataError, match=r"f.npz: array 'nope' not found; the file has"):
        check_ref(f"{tmp_path}/f.npz#nope:1")
    with pytest.raises(DataError, match=r"gone.npz: image array file not found"):
        check_ref(f"{tmp_path}/gone.npz#1")
    (tmp_path / "bad.csv").write_text("pixels\n1 2 3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv: row 0, column 'pixels': 3 pixel values do not make a square image"):
        check_ref(f"{tmp_path}/bad.csv#0")


def test_folders_and_input_expansion(tmp_path, image_files):
    found = list_images(image_files["grey"].parent)
    assert [p.name for p in found] == ["empty.png", "garbage.jpg", "grey.png", "rgb.jpg", "truncated.jpg"]
    listing = tmp_path / "list.txt"
    listing.write_text("imgs/grey.png\n# a comment\n\n", encoding="utf-8")
    out = expand_image_inputs([str(image_files["rgb"]), str(image_files["grey"].parent / "sub"), str(listing), "x.npz#3"])
    assert out == [str(image_files["rgb"]), str(image_files["rgb"]), str(tmp_path / "imgs" / "grey.png"), "x.npz#3"]
    with pytest.raises(DataError, match="no such image file or folder"):
        expand_image_inputs([str(tmp_path / "nothing.jpg")])
    (tmp_path / "void").mkdir()
    with pytest.raises(DataError, match="no image files"):
        expand_image_inputs([str(tmp_path / "void")])


def test_scan_class_folders(tmp_path):
    for split, prefix in (("train", "Training"), ("test", "PublicTest")):
        for cls, v in (("happy", 200), ("sad", 40)):
            write(tmp_path / split / cls / f"{prefix}_{v}.png", png_bytes(v))
    df = scan_class_folders(tmp_path, ["happy", "sad"], ["train", "test"])
    assert sorted(df["relpath"]) == ["test/happy/PublicTest_200.png", "test/sad/PublicTest_40.png",
                                     "train/happy/Training_200.png", "train/sad/Training_40.png"]
    assert set(df["prefix"]) == {"Training", "PublicTest"} and set(df["split_folder"]) == {"train", "test"}
    with pytest.raises(DataError, match=r"class folder\(s\) \['angry'\] not found; folders present: \['happy', 'sad'\]"):
        scan_class_folders(tmp_path, ["happy", "angry"], ["train"])


# ---------------------------------------------------------------------------------------------- template cards
def template(name: str, **changes) -> dict:
    card = yaml.safe_load((TEMPLATES / name).read_text(encoding="utf-8"))
    card.update(changes)
    return card


def test_template_image_folder_with_ratings_csv(make_registry, tmp_path):
    files = {f"my_images/images/{n}.png": png_bytes(v) for n, v in (("a", 10), ("b", 120), ("c", 250))}
    files["my_images/ratings.csv"] = "image,valence,arousal\nimages/a.png,1,9\nimages/b.png,5,5\nimages/c.png,9,\n"
    reg = make_registry({"my_images.yaml": template("image_folder.yaml")}, files)
    ds = reg.dataset("my_images")
    assert len(ds) == 2 and ds.report["dropped_missing"] == 1  # c has no arousal (missing: drop)
    np.testing.assert_allclose(ds.labels("va"), [[-1, 1], [0, 0]])
    assert ds.frame["content"].tolist() == [str(tmp_path / "data" / "my_images" / "images" / f"{n}.png") for n in "ab"]
    enc = tiny()
    assert enc.check_items(ds.content, "my_images") == ds.content


def test_template_class_folders(make_registry, tmp_path):
    files = {"fer2013_folders/classes.txt": "happy\nsad\n"}
    for split, prefixes in (("train", ["Training"] * 3), ("test", ["PublicTest", "PrivateTest"])):
        for cls, v in (("happy", 220), ("sad", 30)):
            for i, prefix in enumerate(prefixes):
                files[f"fer2013_folders/{split}/{cls}/{prefix}_{cls}{i}.jpg"] = png_bytes(v, fmt="JPEG")
    files["fer2013_folders/train/angry/Training_x.jpg"] = png_bytes(5, fmt="JPEG")  # not listed in classes.txt: ignored
    reg = make_registry({"f.yaml": template("image_class_folders.yaml")}, files)
    ds = reg.dataset("fer2013_folders")
    assert ds.split_sizes() == {"train": 6, "dev": 2, "test": 2}
    lab = ds.labels("fer7")
    happy = ds.frame["item"].str.contains("/happy/").to_numpy()
    assert (lab[happy].argmax(1) == FER7.index("happy")).all() and (lab[~happy].argmax(1) == FER7.index("sad")).all()
    assert all(Path(c).is_absolute() and Path(c).is_file() for c in ds.content)
    (tmp_path / "data" / "fer2013_folders" / "classes.txt").unlink()
    reg = make_registry({"f.yaml": template("image_class_folders.yaml")})
    assert reg.check("fer2013_folders").status == "missing"  # the class list anchors the folder


def test_template_fer2013_csv(make_registry, tmp_path):
    rng = np.random.default_rng(0)
    pix = rng.integers(0, 256, size=(4, 8, 8))
    usage = ["Training", "Training", "PublicTest", "PrivateTest"]
    rows = [f"{k % 7},{' '.join(map(str, pix[k].ravel()))},{usage[k]}" for k in range(4)]
    reg = make_registry({"f.yaml": template("fer2013_csv.yaml")},
                        {"fer2013/fer2013.csv": "emotion,pixels,Usage\n" + "\n".join(rows) + "\n"})
    ds = reg.dataset("fer2013_csv")
    assert ds.split_sizes() == {"train": 2, "dev": 1, "test": 1}
    assert ds.frame["content"].iloc[3] == f"{tmp_path / 'data' / 'fer2013' / 'fer2013.csv'}#3"
    np.testing.assert_array_equal(np.asarray(open_image(ds.frame["content"].iloc[3], None)), pix[3])


# ---------------------------------------------------------------------------------------------- encoder
def test_registry_config_and_transform_errors():
    assert encoder_class("image") is ImageEncoder
    with pytest.raises(ConfigError, match="unknown timm model 'resnet_nope'"):
        create_backbone("resnet_nope")
    with pytest.raises(ConfigError, match=r"train_transform\[0\]: 'Blurr' is not a torchvision image transform"):
        tiny(train_transform=[{"type": "Blurr"}])
    with pytest.raises(ConfigError, match=r"eval_transform\[0\]: Resize"):
        tiny(eval_transform=[{"type": "Resize", "sise": 3}])
    with pytest.raises(ConfigError, match="on_bad_image must be one of"):
        tiny(on_bad_image="ignore")
    with pytest.raises(ConfigError, match="packaged weights 'packaged:efficientnet-lite0' are for the backbone 'tf_efficientnet_lite0'"):
        tiny(weights="packaged:efficientnet-lite0")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['size'\]"):
        ImageEncoder.from_config({**TINY, "dim": 4, "size": 3})
    tf = build_transform([{"type": "Resize", "size": 10, "interpolation": "bicubic"}], [0.5] * 3, [0.5] * 3, "t")
    from PIL import Image

    x = tf(Image.new("RGB", (30, 20), (255, 0, 0)))
    assert x.shape == (3, 10, 15) and torch.allclose(x[0], torch.ones_like(x[0])) and torch.allclose(x[1], -torch.ones_like(x[1]))


def test_check_items_error_names_the_file(image_files):
    enc = tiny()
    good = [str(image_files["grey"]), str(image_files["rgb"])]
    assert enc.check_items([f"  {good[0]} ", Path(good[1])], "train") == good
    for key in ("missing", "garbage", "truncated"):
        with pytest.raises(DataError) as exc:
            enc.check_items([*good, str(image_files[key])], "oasis (train)")
        assert str(exc.value).startswith(f"oasis (train), row index 2 (0-based): {image_files[key]}"), str(exc.value)
    with pytest.raises(DataError, match=r"row index 1 \(0-based\): missing image reference"):
        enc.check_items([good[0], None])
    with pytest.raises(DataError, match=r"row index 0 \(0-based\): expected an image path, a PIL image or an array, got int"):
        enc.check_items([3])


def test_skip_policy_reports_masks_and_predicts_nan(image_files, capsys):
    enc = tiny(on_bad_image="skip")
    items = [str(image_files[k]) for k in ("grey", "garbage", "rgb", "truncated", "missing")]
    out = enc.check_items(items, "train")
    assert out == items and enc.last_dropped == [1, 3, 4]
    err = capsys.readouterr().err
    assert "train: skipped 3 unreadable image(s) of 5 (on_bad_image: skip)" in err and str(image_files["garbage"]) in err
    np.testing.assert_array_equal(enc.training_mask(out), [True, False, True, False, False])
    assert enc.input_report(out)["skipped_unreadable"] == 3
    batch = enc.collate(out, train=False)
    assert batch["pixels"].shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(enc.output_mask(batch).numpy(), [False, True, False, True, True])
    assert tiny().output_mask(batch) is None  # under on_bad_image: error nothing is undefined


def test_tiny_model_lowers_its_loss(tmp_path):
    """resnet10t, random init, 32 px: a few Adam steps on bright-vs-dark images through a frozen codec head."""
    from PIL import Image

    rng = np.random.default_rng(0)
    items, y = [], []
    for i in range(16):
        bright = i % 2 == 0
        arr = rng.integers(150, 256, (40, 40, 3)) if bright else rng.integers(0, 100, (40, 40, 3))
        items.append(Image.fromarray(arr.astype(np.uint8)))
        y.append(FER7.index("happy") if bright else FER7.index("sad"))
    codec = codec_for(["fer7", "va"], _formats())
    codec.requires_grad_(False)
    enc = tiny(dim=codec.dim)
    opt = torch.optim.Adam([p for p in enc.parameters() if p.requires_grad], lr=3e-3)
    target = torch.tensor(y)
    losses = []
    enc.train()
    for _ in range(8):
        batch = enc.collate(enc.check_items(items), train=True)
        loss = torch.nn.functional.cross_entropy(codec.decode("fer7", enc(batch)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def _formats():
    from emoembed.formats import FormatRegistry

    return FormatRegistry.load(REPO / "mappings" / "formats.yaml", REPO / "mappings" / "equivalences.yaml")


def test_freeze_backbone_trains_only_the_projection():
    enc = tiny(freeze_backbone=True)
    enc.train()
    assert not enc.backbone.training and enc.proj.training
    names = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert names == {"proj.weight", "proj.bias"}


def _tiny_fer_model(tmp_path: Path):
    """A tiny resnet10t fer7 encoder trained one epoch through the shared stage-2 loop on 24 toy faces in class
    folders; returns (model, face paths)."""
    from emoembed import recipes, tasks
    from emoembed.model import EmotionModel
    from emoembed.training import encoder as training

    rng = np.random.default_rng(1)
    paths, labels = [], []
    for i in range(24):
        cls = ["happy", "sad", "angry"][i % 3]
        write(tmp_path / "faces" / cls / f"{i}.png", png_bytes(int(rng.integers(0, 256))))
        paths.append(str(tmp_path / "faces" / cls / f"{i}.png"))
        labels.append(np.eye(7, dtype=np.float32)[FER7.index(cls)])
    y = np.stack(labels)
    task = tasks.Task("toy", _formats()["fer7"], {"train": paths[:16], "dev": paths[16:20], "test": paths[20:]},
                         {"train": y[:16], "dev": y[16:20], "test": y[20:]}, {}, "image")
    recipe = recipes.load_encoder_recipe(REPO / "encoders" / "image-tiny-test.yaml", "image")
    recipe["training"].update({"epochs": 1, "device": "cpu"})
    codec = codec_for(["fer7", "va", "be5"], _formats(), dim=16)
    result = training.fit(recipe, codec, [task], progress=False, log=lambda *_: None)
    return EmotionModel.from_training(result, codec, [task], recipe), paths


def test_fit_save_load_predict_zero_shot(tmp_path, image_files):
    """Through the shared stage-2 loop: train a tiny fer7 encoder, save/load it as an EmotionModel, predict
    fer7 and (zero-shot) va for files and a folder, evaluate with skipped images."""
    from emoembed.model import EmotionModel

    model, paths = _tiny_fer_model(tmp_path)
    model.save_pretrained(tmp_path / "model")
    loaded = EmotionModel.from_pretrained(tmp_path / "model")
    assert loaded.encoder.config() == model.encoder.config() and loaded.encoder.weights is None
    folder = expand_image_inputs([str(tmp_path / "faces" / "happy")])
    a = model.predict(folder, "fer7")
    b = loaded.predict(folder, "fer7")
    np.testing.assert_allclose(a[FER7].to_numpy(), b[FER7].to_numpy(), atol=1e-5)
    va = loaded.predict(paths[:3], "va")  # zero-shot: the encoder never saw va labels
    assert list(va.columns) == ["valence", "arousal"] and va.shape == (3, 2) and va.abs().le(1).all().all()
    loaded.encoder.on_bad_image = "skip"
    pred = loaded.predict([paths[0], str(image_files["garbage"])], "va")
    assert not pred.iloc[0].isna().any() and pred.iloc[1].isna().all()


def test_half_precision_storage_loads_as_float32_and_keeps_the_codec(tmp_path):
    """``store_weights_as(dir, "float16")`` (what ``pretrained build`` does for an entry with ``storage_dtype``):
    the encoder's tensors are stored in half precision, the codec's stay float32 (same fingerprint), the folder
    passes its integrity checks, loads into float32 parameters and predicts within half-precision rounding."""
    from safetensors import safe_open

    from emoembed.errors import CheckpointError
    from emoembed.model import EmotionModel
    from emoembed.pretrained import store_weights_as

    model, paths = _tiny_fer_model(tmp_path)
    model.save_pretrained(tmp_path / "model")
    full = EmotionModel.from_pretrained(tmp_path / "model").predict(paths[:6], "fer7")
    sizes = store_weights_as(tmp_path / "model", "float16")
    assert sizes["after"] < 0.6 * sizes["before"]
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as fh:
        dtypes = {k: fh.get_slice(k).get_dtype() for k in fh.keys()}
    assert {d for k, d in dtypes.items() if k.startswith("codec.")} == {"F32"}
    assert {d for k, d in dtypes.items() if k.startswith("encoder.") and d.startswith("F")} == {"F16"}
    half = EmotionModel.from_pretrained(tmp_path / "model")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert json.loads((tmp_path / "model" / "config.json").read_text())["storage_dtype"] == "float16"
    np.testing.assert_allclose(half.predict(paths[:6], "fer7")[FER7].to_numpy(), full[FER7].to_numpy(), atol=2e-2)
    with pytest.raises(CheckpointError, match="storage dtype 'int3'"):
        store_weights_as(tmp_path / "model", "int3")


# ---------------------------------------------------------------------------------------------- packaged weights
def test_packaged_efficientnet_every_key_matched_and_classifies_china():
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from emoembed.encoders.image import packaged_classifier, packaged_state_dict

    state = packaged_state_dict("efficientnet-lite0")
    model = create_backbone("tf_efficientnet_lite0", num_classes=1000)
    report = load_backbone_weights(model, state, "packaged")
    assert report["ignored"] == [] and len(report["loaded"]) == len(model.state_dict()) == 296
    enc = ImageEncoder.from_recipe({}, 100)  # the default: tf_efficientnet_lite0 + packaged weights, no classifier
    assert enc.weights_report["ignored"] == ["classifier.bias", "classifier.weight"] and len(enc.weights_report["loaded"]) == 294
    clf = packaged_classifier()
    tf = build_transform([{"type": "Resize", "size": 256, "interpolation": "bicubic"}, {"type": "CenterCrop", "size": 224}],
                         [0.5] * 3, [0.5] * 3, "eval")
    with torch.no_grad():
        probs = clf(tf(Image.fromarray(load_sample_image("china.jpg")))[None]).softmax(-1)[0]
    assert int(probs.argmax()) == 698 and float(probs[698]) > 0.2  # ImageNet 698 = palace
    with pytest.raises(ConfigError, match="unexpected key"):
        remap_efficientnet_lite0({"_bogus.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_fer2013_and_oasis_content_open(real_registry, shared_data):
    fer = real_registry.dataset("fer2013_fer7")
    refs = fer.frame["content"].iloc[[0, 35886]].tolist()
    assert refs[0] == f"{shared_data / 'fer2013' / 'fer2013.npz'}#0"
    with np.load(shared_data / "fer2013" / "fer2013.npz") as z:
        last = z["images"][35886]
    np.testing.assert_array_equal(np.asarray(open_image(refs[1], None)), last)
    oasis = real_registry.dataset("oasis")
    enc = tiny()
    some = oasis.content[::90]
    assert enc.check_items(some, "oasis") == some
    assert enc.collate(some)["pixels"].shape == (10, 3, 32, 32)


def test_transforms_must_give_one_size(image_files):
    enc = tiny(eval_transform=[{"type": "Resize", "size": 32}])  # keeps the aspect ratio: 32 × 38 for a 20 × 24 image
    from PIL import Image

    with pytest.raises(ConfigError, match="eval transforms give images of different sizes"):
        enc.collate([Image.new("RGB", (20, 20)), Image.new("RGB", (24, 20))])


def test_file_weights_load_strictly(tmp_path):
    from safetensors.torch import save_file

    src = create_backbone("resnet10t", num_classes=10)  # with a classifier (fc.*), which the encoder ignores
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "r10.safetensors"))
    torch.save(src.state_dict(), tmp_path / "r10.pth")
    for name in ("r10.safetensors", "r10.pth"):
        enc = ImageEncoder.from_recipe({**TINY, "weights": f"file:{tmp_path / name}"}, 8)
        assert enc.weights_report["ignored"] == ["fc.bias", "fc.weight"]
        torch.testing.assert_close(enc.backbone.state_dict()["conv1.0.weight"], src.state_dict()["conv1.0.weight"])
    with pytest.raises(ConfigError, match=r"backbone weights do not match the model: \d+ missing"):
        ImageEncoder.from_recipe({**TINY, "backbone": "mobilenetv3_small_100", "weights": f"file:{tmp_path / 'r10.safetensors'}"}, 8)
    with pytest.raises(ConfigError, match="backbone weights file not found"):
        ImageEncoder.from_recipe({**TINY, "weights": f"file:{tmp_path / 'nope.pt'}"}, 8)
    assert ImageEncoder.from_config({**TINY, "dim": 8, "weights": f"file:{tmp_path / 'nope.pt'}"}).weights.startswith("file:")
