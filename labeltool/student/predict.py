"""Top-down inference with a trained student: batched crops, flip TTA, results json, pose NMS.

Results are written in the COCO-WholeBody results format that ``wbt eval`` (and the official
xtcocotools scripts) read: per person ``image_id``, ``category_id``, ``score`` and the split
keys ``keypoints`` (17 x 3), ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``,
``righthand_kpts`` for 133 points, or one flat ``keypoints`` list for 136 (Halpe).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labeltool.errors import UserError
from labeltool.images import read_rgb
from labeltool.io.atomic import write_json_atomic
from labeltool.io.boxes import person_boxes
from labeltool.io.paths import image_path
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133, WHOLEBODY_KPT_KEYS, Layout, layout_for
from labeltool.student.checkpoint import load_checkpoint, model_from_checkpoint
from labeltool.student.codec import SimCCCodec, flip_simcc
from labeltool.student.model import Student
from labeltool.topdown import (
    BOX_PADDING,
    box_center_scale,
    clip_boxes_to_images,
    crop_matrices,
    invert_affine,
    warp_bilinear,
)

KEYPOINT_SCORE_THR = 0.2  # mmpose's rescoring: instance score = box score x mean of the scores above this


def crop_persons(image: np.ndarray, bboxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (M, H, W, 3) uint8 of the x y w h ``bboxes`` and their (M, 2, 3) image -> input maps."""
    w, h = input_size
    center, scale = box_center_scale(bboxes, w / h, BOX_PADDING)
    matrices = crop_matrices(center, scale, input_size)
    crops = np.zeros((len(bboxes), h, w, 3), dtype=np.uint8)
    for i, m in enumerate(matrices):
        crops[i] = warp_bilinear(image, m, (w, h))
    return crops, matrices


class Predictor:
    """Runs a student on batches of crops; optional horizontal-flip test-time augmentation."""

    def __init__(self, model: Student, device: str | torch.device = "cpu", flip: bool = False,
                 layout: Layout | None = None):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.flip = flip
        self.config = model.config
        self.layout = layout or layout_for(self.config.num_keypoints)
        self.codec = SimCCCodec(self.config.input_size, self.config.split_ratio)

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (B, K, 2) in input pixels and scores (B, K) of uint8 crops (B, H, W, 3)."""
        x = torch.as_tensor(crops, device=self.device).permute(0, 3, 1, 2).float()
        simcc_x, simcc_y = self.model(x)
        if self.flip:
            fx, fy = self.model(x.flip(-1))
            fx, fy = flip_simcc(fx, fy, self.layout.flip_index)
            simcc_x, simcc_y = (simcc_x + fx) / 2, (simcc_y + fy) / 2
        kp, scores = self.codec.decode(simcc_x, simcc_y)
        kp, scores = kp.cpu().numpy().astype(np.float64), scores.cpu().numpy().astype(np.float64)
        # a non-finite logit (an input that overflows the network) is no prediction, as for the ONNX teachers
        # (teachers.onnx.to_image): score 0, never a NaN that the results json would carry as null
        bad = ~np.isfinite(scores) | ~np.isfinite(kp).all(axis=-1)
        kp[bad], scores[bad] = 0.0, 0.0
        return kp, scores

    def _to_image(self, crops: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, self.config.num_keypoints, 3))
        kp, scores = self.predict_crops(crops)
        inv = invert_affine(matrices)
        xy = np.einsum("nij,nkj->nki", inv[:, :, :2], kp) + inv[:, None, :, 2]
        return np.concatenate([xy, scores[..., None]], axis=-1)

    def predict_persons(self, paths: list[str], image_index: np.ndarray, bboxes: np.ndarray, batch_size: int = 64,
                        workers: int = 0, progress: bool = False) -> np.ndarray:
        """(N, K, 3) for N persons given by the image each is in (``paths[image_index[i]]``) and its box.

        Images are decoded and cropped in ``workers`` processes, a batch of persons at a time.
        """
        n = len(bboxes)
        out = np.zeros((n, self.config.num_keypoints, 3))
        order = np.argsort(image_index, kind="stable")
        chunks = [order[i:i + batch_size] for i in range(0, n, batch_size)]
        reader = _CropReader(paths, image_index, np.asarray(bboxes, dtype=np.float64), self.config.input_size)
        loader = torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=workers, collate_fn=reader)
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, total=len(chunks), desc="predict", unit="batch")
        for idx, crops, matrices in loader:
            out[idx] = self._to_image(crops, matrices)
        return out


@dataclass
class _CropReader:
    paths: list[str]
    image_index: np.ndarray
    bboxes: np.ndarray
    input_size: tuple[int, int]

    def __call__(self, idx: np.ndarray):
        w, h = self.input_size
        crops = np.zeros((len(idx), h, w, 3), dtype=np.uint8)
        matrices = np.zeros((len(idx), 2, 3))
        current, image = -1, None
        for j, i in enumerate(idx):
            if self.image_index[i] != current:
                current = self.image_index[i]
                image = read_rgb(str(self.paths[current]))
            crops[j:j + 1], matrices[j:j + 1] = crop_persons(image, self.bboxes[i:i + 1], self.input_size)
        return idx, crops, matrices


# --------------------------------------------------------------------------- results


def instance_scores(keypoints: np.ndarray, box_scores: np.ndarray, thr: float = KEYPOINT_SCORE_THR) -> np.ndarray:
    """mmpose's 'bbox_keypoint' rescoring: box score x mean of the keypoint scores above ``thr``."""
    s = keypoints[..., 2]
    valid = s > thr
    mean = np.where(valid.any(axis=1), (s * valid).sum(axis=1) / np.maximum(valid.sum(axis=1), 1), 0.0)
    return box_scores * mean


def results_json(keypoints: np.ndarray, image_ids: np.ndarray, scores: np.ndarray, layout: Layout,
                 category_ids: np.ndarray | None = None) -> list[dict]:
    """The results list: split COCO-WholeBody keys for 133 points, one flat ``keypoints`` list otherwise."""
    out = []
    cats = np.ones(len(keypoints), dtype=np.int64) if category_ids is None else category_ids
    for kp, img, score, cat in zip(keypoints, image_ids, scores, cats):
        r = {"image_id": int(img), "category_id": int(cat), "score": float(score)}
        if layout is WHOLEBODY133:
            for part, key in WHOLEBODY_KPT_KEYS.items():
                r[key] = np.round(kp[layout.parts[part]], 3).reshape(-1).tolist()
        else:
            r["keypoints"] = np.round(kp, 3).reshape(-1).tolist()
        out.append(r)
    return out


def run_predict(model_path: str, images_dir: str, out: str, gt: str | None = None, boxes: str | None = None,
                flip: bool = True, batch_size: int = 64, workers: int = 0, device: str = "cpu", nms: str = "oks",
                nms_thr: float = 0.9, box_thr: float = 0.0, use_ema: bool = True, progress: bool = True,
                detector=None) -> int:
    """``wbt predict``: persons from GT boxes (``gt``), detector boxes (``boxes``) or a detector, results to ``out``.

    With ``boxes``, image file names come from ``gt`` when given, else COCO's ``%012d.jpg`` naming.
    With neither, ``detector`` (a :class:`labeltool.detectors.base.DetectorSpec`) finds the persons
    of every image in ``images_dir`` (ids as ``wbt distill --images`` gives them: the file names'
    numbers, else 1, 2, ... in name order); its boxes and description (model, sha256, thresholds)
    go to ``detections_path(out)``. Redundant poses on detector boxes are removed per image by
    ``nms`` ('oks', 'parametric' or 'none'). Returns the number of results written.
    """
    if gt is None and boxes is None and detector is None:
        raise UserError("give --gt GT.json (predict on its person boxes) or --boxes DETS.json (detector boxes)")
    images_dir_p = Path(images_dir)
    if not images_dir_p.is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    found = None
    if detector is not None:  # before loading the model: a wrong image folder fails at once
        from labeltool.io.paths import list_images

        detector_images = list_images(images_dir_p)
    ckpt = load_checkpoint(model_path)
    model = model_from_checkpoint(ckpt, use_ema)
    predictor = Predictor(model, device, flip)
    layout = predictor.layout
    names: dict[int, str] = {}
    if gt is not None:
        ds = load_pose_dataset(gt)
        names = {int(im["id"]): str(image_path(images_dir_p, im)) for im in ds.images}
    if detector is not None:
        from labeltool.detectors.folder import detect_folder
        from labeltool.detectors.registry import describe_detector

        found = detect_folder(detector_images, images_dir_p, detector, detections_path(out),
                              describe_detector(detector), progress=progress, replace=True, workers=max(1, workers))
        names = {int(im["id"]): str(images_dir_p / im["file_name"]) for im in detector_images}
        image_ids, bboxes, box_scores = found.image_ids, found.bboxes, found.scores
    elif boxes is not None:
        image_ids, bboxes, box_scores = person_boxes(boxes, box_thr)
    else:
        clipped = clip_boxes_to_images(ds.bboxes, ds.image_ids, ds.images)  # as validation (mmpose's reader)
        keep = (ds.iscrowd == 0) & (clipped[:, 2] > 0) & (clipped[:, 3] > 0)
        image_ids, bboxes, box_scores = ds.image_ids[keep], clipped[keep], np.ones(int(keep.sum()))
    uniq, image_index = np.unique(image_ids, return_inverse=True)
    paths = []
    for i in uniq:
        p = names.get(int(i), str(images_dir_p / f"{int(i):012d}.jpg"))
        if not os.path.isfile(p):
            src = gt if int(i) in names else f"{boxes} (COCO file naming %012d.jpg; pass --gt to map ids to files)"
            raise UserError(f"{p}: image file not found (image id {int(i)} from {src})")
        paths.append(p)
    keypoints = predictor.predict_persons(paths, image_index, bboxes, batch_size, workers, progress)
    scores = instance_scores(keypoints, box_scores)
    if (boxes is not None or detector is not None) and nms != "none":
        keypoints, image_ids, scores = _nms_per_image(keypoints, image_ids, scores, bboxes, layout, nms, nms_thr)
    write_json_atomic(results_json(keypoints, image_ids, scores, layout), out)
    return len(keypoints)


def detections_path(out: str | os.PathLike) -> Path:
    """Where ``wbt predict --images`` keeps its detector's boxes: ``results.json`` -> ``results.detections.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.detections.json" if out.suffix else f"{out.name}.detections.json")


def _nms_per_image(keypoints, image_ids, scores, bboxes, layout, method, thr):
    from labeltool.student.nms import oks_nms, parametric_pose_nms

    if method not in ("oks", "parametric"):
        raise UserError(f"unknown --nms {method!r} (oks, parametric, none)")
    kps, ids, scs = [], [], []
    order = np.argsort(image_ids, kind="stable")
    starts = np.r_[0, np.nonzero(np.diff(image_ids[order]))[0] + 1, len(order)]
    for a, b in zip(starts[:-1], starts[1:]):
        idx = order[a:b]
        if method == "oks":
            keep = idx[oks_nms(keypoints[idx], scores[idx], layout.sigmas, thr)]
            kps.append(keypoints[keep])
            scs.append(scores[keep])
        else:
            keep, merged = parametric_pose_nms(keypoints[idx], bboxes[idx], layout.parts["body"])
            kps.append(merged)
            scs.append(scores[idx][keep])
            keep = idx[keep]
        ids.append(image_ids[keep])
    k = keypoints.shape[1]
    if not kps:
        return np.zeros((0, k, 3)), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(kps), np.concatenate(ids), np.concatenate(scs)
