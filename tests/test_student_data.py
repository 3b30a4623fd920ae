"""Student data: label sources into arrays, crop geometry, augmentation consistency, the crop cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltool.errors import UserError
from labeltool.images import read_rgb
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import HALPE136, WHOLEBODY133
from labeltool.student.augment import AugmentConfig, augment_batch
from labeltool.student.data import (
    BatchIndices,
    CachedCrops,
    CropGeometry,
    ImageCrops,
    build_crop_cache,
    concat_tables,
    load_json_source,
    load_parquet_source,
)
from labeltool.student.predict import crop_persons
from labeltool.topdown import apply_affine

SIZE = (96, 128)


@pytest.fixture(scope="module")
def wholebody(realdata):
    d = realdata / "coco_wholebody"
    return load_json_source(d / "test_coco_wholebody.json", d, WHOLEBODY133, face_weight=0.5)


def test_json_source_weights_follow_labels(realdata, wholebody):
    ds = load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")
    labelled = (ds.keypoints[..., 2] > 0).any(axis=1) & (ds.iscrowd == 0)
    assert len(wholebody) == int(labelled.sum()) == 12
    rows = np.nonzero(labelled)[0]
    expected = (ds.keypoints[rows, :, 2] > 0).astype(np.float32)
    expected[:, WHOLEBODY133.parts["face"]] *= 0.5  # RTMW's face weight (--face-weight 0.5; RTMPose's: 1)
    assert np.array_equal(wholebody.weights, expected)
    assert np.allclose(wholebody.keypoints, ds.keypoints[rows, :, :2])


def test_wholebody_labels_into_the_halpe_layout(realdata):
    d = realdata / "coco_wholebody"
    t133 = load_json_source(d / "test_coco_wholebody.json", d, WHOLEBODY133)
    t136 = load_json_source(d / "test_coco_wholebody.json", d, HALPE136)
    for name in ("left_small_toe", "right_heel", "face-30", "right_pinky_finger4"):
        a, b = WHOLEBODY133.index(name), HALPE136.index(name)
        assert np.array_equal(t133.keypoints[:, a], t136.keypoints[:, b])
        assert np.array_equal(t133.weights[:, a], t136.weights[:, b])
    # the one 133 -> 136 conversion (labeltool/halpe.py): neck and hip derived, the head top never
    assert (t136.weights[:, HALPE136.index("head")] == 0).all()
    shoulders = (t133.weights[:, [5, 6]] > 0).all(axis=1)
    assert shoulders.sum() == 12 and (t136.weights[:, HALPE136.index("neck")] == shoulders).all()
    np.testing.assert_allclose(t136.keypoints[:, HALPE136.index("neck")], t133.keypoints[:, [5, 6]].mean(axis=1))


def test_part_only_sources(realdata):
    face = load_json_source(realdata / "face300w" / "test_300w.json", realdata / "face300w", WHOLEBODY133, "face",
                            face_weight=0.5)
    hand = load_json_source(realdata / "hand_onehand10k" / "test_onehand10k.json", realdata / "hand_onehand10k",
                            WHOLEBODY133, "hand")
    face_idx, left_idx = WHOLEBODY133.parts["face"], WHOLEBODY133.parts["lefthand"]
    assert len(face) == 2 and len(hand) == 4
    assert (face.weights[:, face_idx] == 0.5).all()
    assert face.weights.sum() == 0.5 * 68 * 2
    assert hand.weights[:, left_idx].sum() > 0 and (np.delete(hand.weights, left_idx, axis=1) == 0).all()
    both = concat_tables([face, hand])
    assert len(both) == 6 and both.source.tolist() == [0, 0, 1, 1, 1, 1]
    assert both.image_paths[both.image_index[2]].endswith(".jpg")


def test_part_source_with_wrong_point_count_is_one_clear_error(realdata):
    with pytest.raises(UserError, match="21 keypoints per annotation; a face source takes 68"):
        load_json_source(realdata / "hand_onehand10k" / "test_onehand10k.json", realdata / "hand_onehand10k",
                         WHOLEBODY133, "face")


def test_parquet_source_equals_json(realdata, wholebody, tmp_path, labels_table_of):
    """A labels.parquet as wbt distill writes it loads to the same arrays as the json; weights = confidence."""
    from labeltool.labels_table import write_labels

    d = realdata / "coco_wholebody"
    ds = load_pose_dataset(d / "test_coco_wholebody.json")
    conf = (ds.keypoints[..., 2] > 0).astype(np.float32) * 0.8
    write_labels(labels_table_of(ds, conf), tmp_path / "labels.parquet")
    t = load_parquet_source(tmp_path / "labels.parquet", d, WHOLEBODY133, face_weight=0.5)
    assert np.array_equal(t.ann_ids, wholebody.ann_ids)
    assert np.allclose(t.keypoints, wholebody.keypoints)
    assert np.allclose(t.weights, wholebody.weights * 0.8)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="bad.parquet: not a readable parquet file"):
        load_parquet_source(tmp_path / "bad.parquet", d, WHOLEBODY133)


def test_unaugmented_training_crop_equals_the_inference_crop(wholebody):
    """Source crop + identity augmentation == the direct crop predict uses (image and keypoints)."""
    batch = ImageCrops(wholebody, CropGeometry(SIZE, 1.25)).read_batch(np.arange(len(wholebody)))
    images, kp, _ = augment_batch(batch, WHOLEBODY133, SIZE, AugmentConfig.none())
    for i in range(len(wholebody)):
        image = read_rgb(str(wholebody.image_paths[wholebody.image_index[i]]))
        crop, m = crop_persons(image, wholebody.bboxes[i:i + 1].astype(np.float64), SIZE)
        diff = np.abs(images[i].permute(1, 2, 0).numpy() - crop[0])
        assert diff.max() <= 2.0 and diff.mean() < 0.1  # cv2's fixed-point rounding, else identical
        assert np.allclose(kp[i].numpy(), apply_affine(m, wholebody.keypoints[i:i + 1].astype(np.float64))[0],
                           atol=1e-3)


def test_augmented_keypoints_follow_the_pixels():
    """A bright dot drawn at the left wrist lands where the augmented left wrist (or, flipped, right wrist) is."""
    torch.manual_seed(0)
    b, ch, cw = 32, 160, 120
    layout = WHOLEBODY133
    lw, rw = layout.index("left_wrist"), layout.index("right_wrist")
    rng = np.random.default_rng(0)
    kp = np.zeros((b, 133, 2), np.float32)
    kp[:] = [60, 80]
    kp[:, lw] = rng.uniform([35, 45], [85, 115], (b, 2))
    crops = np.zeros((b, ch, cw, 3), np.uint8)
    for i in range(b):
        x, y = np.round(kp[i, lw]).astype(int)
        crops[i, y - 1:y + 2, x - 1:x + 2] = 255
        kp[i, lw] = [x, y]
    weights = np.ones((b, 133), np.float32)
    batch = {"crops": torch.from_numpy(crops), "keypoints": torch.from_numpy(kp), "weights": torch.from_numpy(weights),
             "boxes": torch.tensor([[30.0, 40.0, 60.0, 80.0]]).repeat(b, 1)}
    cfg = AugmentConfig(half_body_prob=0, colour_prob=0, dropout_prob=0, flip_prob=0.5, rotate_prob=1.0,
                        box_noise_prob=1.0)
    images, out_kp, _ = augment_batch(batch, layout, SIZE, cfg)
    flipped = 0
    for i in range(b):
        img = images[i, 0].numpy()
        y, x = np.unravel_index(np.argmax(img), img.shape)
        cy, cx = np.average(np.indices(img.shape), axis=(1, 2), weights=img + 1e-9)
        near_left = np.hypot(*(out_kp[i, lw].numpy() - [cx, cy]))
        near_right = np.hypot(*(out_kp[i, rw].numpy() - [cx, cy]))
        assert min(near_left, near_right) < 1.0, (i, near_left, near_right)
        flipped += near_right < near_left
    assert 5 < flipped < 27  # about half were flipped, and flipped ones carry the right-wrist label


def test_half_body_zooms_on_upper_or_lower_body(wholebody):
    torch.manual_seed(1)
    batch = ImageCrops(wholebody, CropGeometry(SIZE, 1.25)).read_batch(np.arange(len(wholebody)))
    plain = augment_batch(batch, WHOLEBODY133, SIZE, AugmentConfig.none())[1]
    cfg = AugmentConfig(flip_prob=0, half_body_prob=1.0, box_noise_prob=0, scale_range=(1.0, 1.0), rotate_prob=0,
                        colour_prob=0, dropout_prob=0)
    half = augment_batch(batch, WHOLEBODY133, SIZE, cfg)[1]
    labelled = batch["weights"] > 0
    spread = lambda p: torch.stack([p[i][labelled[i]].std(0).sum() for i in range(len(p))])  # noqa: E731
    eligible = labelled.sum(1) >= 9
    assert (spread(half)[eligible] > spread(plain)[eligible] * 1.05).float().mean() > 0.5


def test_crop_cache_round_trip_and_mismatch(wholebody, tmp_path):
    geometry = CropGeometry(SIZE, 1.25)
    build_crop_cache(wholebody, geometry, tmp_path / "cache", batch=5, progress=False)
    cached = CachedCrops(wholebody, geometry, tmp_path / "cache")
    direct = ImageCrops(wholebody, geometry)
    idx = np.array([7, 0, 3, 11])
    a, b = cached.read_batch(idx), direct.read_batch(idx)
    for key in ("crops", "keypoints", "weights", "boxes"):
        assert torch.equal(a[key], b[key]), key
    assert cached.array.shape == (12, 160, 120, 3)
    with pytest.raises(UserError, match="built for other data or settings"):
        CachedCrops(wholebody, CropGeometry(SIZE, 1.5), tmp_path / "cache")
    with pytest.raises(UserError, match="no crop cache here"):
        CachedCrops(wholebody, geometry, tmp_path / "elsewhere")


def test_batch_indices_partition_each_epoch_across_ranks():
    samplers = [BatchIndices(103, 10, seed=3, rank=r, world=2) for r in range(2)]
    for s in samplers:
        s.set_epoch(4)
    batches = [list(s) for s in samplers]
    assert all(len(b) == 5 for b in batches)
    seen = np.concatenate([np.concatenate(b) for b in batches])
    assert len(np.unique(seen)) == 100
    again = BatchIndices(103, 10, seed=3, rank=0, world=2)
    again.set_epoch(4)
    assert all(np.array_equal(x, y) for x, y in zip(again, batches[0]))
    again.set_epoch(5)
    assert not np.array_equal(next(iter(again)), batches[0][0])
