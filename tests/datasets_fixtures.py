"""Body-dataset versions of the real COCO-WholeBody sample, written the way each dataset's files are.

The files have the key types and the missing keys of the datasets' distributed files (checked
against mmpose's tests/data/<dataset>/ samples, which are cut from them): PoseTrack18 writes
``"iscrowd": false`` (a JSON boolean), has no ``area``, gives each person ``track_id``,
``bbox_head`` and an empty ``scores``, each frame ``vid_id``, ``frame_id``, ``nframes``,
``is_labeled``, ``mask_file`` and ignore-region polygons, and lists unlabelled frames with no
persons; AI Challenger has neither ``area`` nor ``iscrowd`` and names its points "Right
Shoulder", "Head top"; CrowdPose has no ``area``, an integer ``iscrowd``, ``crowdIndex`` per
image and "head" / "neck" in its category; MPII (mmpose's json) writes unlabelled joints as
[-1, -1] with ``joints_vis`` 0.

The keypoint orders below are copied literally from mmpose's dataset_info
(configs/_base_/datasets/{crowdpose,aic,mpii,posetrack18}.py), independently of
labeltool/data/body_datasets.json, so a wrong table entry fails the tests instead of
round-tripping. Points COCO-WholeBody does not label are made from its points: neck /
thorax = shoulder midpoint, pelvis = hip midpoint, chin (face point 8) = head bottom / upper
neck, head top = brow centre + 0.6 x (brow centre - chin); they are labelled only where
their sources are.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np

from labeltool.layouts import COCO17

COCO = list(COCO17.names)
CROWDPOSE = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
             "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "top_head", "neck"]  # fmt: skip
AIC = ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist", "right_hip",
       "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck"]  # fmt: skip
MPII = ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist"]  # fmt: skip
POSETRACK = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
HUMANART21 = COCO + ["left_finger", "right_finger", "left_toe", "right_toe"]
NAMES = {"crowdpose": CROWDPOSE, "aic": AIC, "mpii": MPII, "posetrack18": POSETRACK, "humanart": HUMANART21}
PART_KEYS = ("foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts", "face_box", "lefthand_box", "righthand_box",
             "foot_valid", "face_valid", "lefthand_valid", "righthand_valid")  # fmt: skip


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a[2] > 0 and b[2] > 0:
        return np.array([(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, 2.0])
    return np.zeros(3)


def made_points(ann: dict) -> dict[str, np.ndarray]:
    """The points COCO-17 lacks, made from one COCO-WholeBody annotation (see the module docstring)."""
    body = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    face = np.array(ann.get("face_kpts") or [0] * 204, dtype=np.float64).reshape(68, 3)
    out = {name: np.zeros(3) for name in ("top_head", "head_top", "neck", "thorax", "pelvis", "upper_neck", "head_bottom")}
    out["neck"] = out["thorax"] = _mid(body[5], body[6])
    out["pelvis"] = _mid(body[11], body[12])
    brows = face[17:27]
    if face[8, 2] > 0 and (brows[:, 2] > 0).all():
        chin = face[8, :2]
        brow = brows[:, :2].mean(axis=0)
        top = brow + 0.6 * (brow - chin)
        out["head_top"] = out["top_head"] = np.array([top[0], top[1], 2.0])
        out["head_bottom"] = out["upper_neck"] = np.array([chin[0], chin[1], 2.0])
    for name in ("left_finger", "right_finger", "left_toe", "right_toe"):
        out[name] = np.zeros(3)
    wrist = {"left_finger": 9, "right_finger": 10}
    for name, k in wrist.items():  # Human-Art's finger: a point past the wrist, to see it kept
        if body[k, 2] > 0:
            out[name] = np.array([body[k, 0] + 3.5, body[k, 1] + 4.25, 2.0])
    return out


def dataset_points(ann: dict, names: list[str]) -> np.ndarray:
    """(K, 3) the dataset's points of one person: COCO's where the names agree, else the made ones."""
    body = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    made = made_points(ann)
    return np.stack([body[COCO.index(n)] if n in COCO else made[n] for n in names])


def _numbers(a: np.ndarray) -> list:
    return [int(v) if float(v).is_integer() else float(v) for v in a.reshape(-1).tolist()]


def coco_style(doc: dict, names: list[str], key: str = "keypoints") -> dict:
    """A COCO-style document of the dataset with ``names``: the part keys removed, the points under ``key``."""
    out = copy.deepcopy(doc)
    for ann in out["annotations"]:
        pts = dataset_points(ann, names)
        for k in PART_KEYS:
            ann.pop(k, None)
        ann[key] = _numbers(pts)  # Human-Art: 'keypoints_21', its 17 COCO points stay under 'keypoints' too
        ann["num_keypoints"] = int((pts[:, 2] > 0).sum())
    for cat in out["categories"]:
        cat["keypoints"] = list(names)
        cat.pop("skeleton", None)
    return out


def write_dataset(name: str, src: Path, tmp: Path) -> tuple[Path, Path, dict]:
    """Write ``name``'s version of the real sample in ``tmp``; returns (annotation file, images dir, source doc)."""
    doc = json.loads((src / "test_coco_wholebody.json").read_text())
    tmp.mkdir(parents=True, exist_ok=True)
    ann = tmp / f"{name}.json"
    images = src
    if name == "crowdpose":  # CrowdPose's images carry 'crowdIndex'; no 'area'; its category says "head"
        out = coco_style(doc, CROWDPOSE)
        for im in out["images"]:
            im["crowdIndex"] = 0.25
        for a in out["annotations"]:
            del a["area"]
            a.pop("segmentation", None)
        for cat in out["categories"]:
            cat["keypoints"] = [{"top_head": "head"}.get(n, n) for n in CROWDPOSE]
    elif name == "aic":  # no 'area', no 'iscrowd'; the category's names as AIC writes them
        out = coco_style(doc, AIC)
        out["info"] = {"description": "AI Challenger keypoints", "version": "1.0", "year": "2017"}
        for im in out["images"]:
            im["url"] = f"http://www.sinaimg.cn/{im['file_name']}"
        for a in out["annotations"]:
            for key in ("area", "iscrowd", "segmentation"):
                a.pop(key, None)
        for cat in out["categories"]:
            cat["keypoints"] = [n.replace("_", " ").title().replace("Head Top", "Head top") for n in AIC]
    elif name == "humanart":
        out = coco_style(doc, HUMANART21, key="keypoints_21")
    elif name == "posetrack18":  # one video's file: nested file names, vid_id, frame_id, ignore regions
        out = coco_style(doc, POSETRACK)
        images = tmp / "posetrack"
        video = images / "images" / "val" / "000001_test"
        video.mkdir(parents=True, exist_ok=True)
        ids = {}
        labelled = sorted(out["images"], key=lambda im: im["id"])
        nframes = len(labelled) + 1
        for frame, im in enumerate(labelled):
            link = video / f"{frame:06d}.jpg"
            if not link.exists():
                os.symlink((src / im["file_name"]).resolve(), link)
            ids[im["id"]] = 10000010000 + frame
            im.update(file_name=f"images/val/000001_test/{frame:06d}.jpg", vid_id="000001", frame_id=ids[im["id"]],
                      id=ids[im["id"]], is_labeled=True, nframes=nframes, has_no_densepose=True,
                      mask_file=f"mask/val/000001_test/{frame:06d}.jpg", ignore_regions_x=[[0, 1, 9, 0]],
                      ignore_regions_y=[[0, 0, 5, 7]])  # fmt: skip
        # a frame nobody labelled: listed, with no persons (as in every PoseTrack18 video)
        frame = len(labelled)
        link = video / f"{frame:06d}.jpg"
        if not link.exists():
            os.symlink((src / labelled[0]["file_name"]).resolve(), link)
        out["images"].append({
            "has_no_densepose": True, "is_labeled": False, "file_name": f"images/val/000001_test/{frame:06d}.jpg",
            "nframes": nframes, "frame_id": 10000010000 + frame, "vid_id": "000001", "id": 10000010000 + frame,
            "width": labelled[0].get("width"), "height": labelled[0].get("height"), "ignore_regions_x": [],
            "ignore_regions_y": [],
        })  # fmt: skip
        for a in out["annotations"]:
            a["image_id"] = ids[a["image_id"]]
            a["track_id"] = a["id"] % 7
            a["iscrowd"] = bool(a["iscrowd"])  # a JSON boolean, as PoseTrack18 writes it
            a["scores"] = []
            a["bbox_head"] = [0, 0, 0, 0]
            for key in ("area", "segmentation"):
                a.pop(key, None)
    elif name == "mpii":  # mmpose's json list, 1-based like MATLAB; no crowd regions in MPII
        out = []
        for a in doc["annotations"]:
            if a["iscrowd"]:
                continue
            pts = dataset_points(a, MPII)
            file_name = next(im["file_name"] for im in doc["images"] if im["id"] == a["image_id"])
            x, y, w, h = a["bbox"]
            scale = max(w, h) / 200.0
            out.append({
                "image": file_name,
                "joints": np.where(pts[:, 2:] > 0, pts[:, :2] + 1.0, -1.0).tolist(),  # unlabelled: [-1, -1]
                "joints_vis": (pts[:, 2] > 0).astype(int).tolist(),
                "center": [x + w / 2 + 1.0, y + h / 2 + 1.0 - 15 * scale],
                "scale": scale,
            })  # fmt: skip
    else:
        raise ValueError(name)
    ann.write_text(json.dumps(out))
    return ann, images, doc
