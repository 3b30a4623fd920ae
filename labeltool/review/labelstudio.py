"""Label Studio round trip: a labeling config, tasks with predictions, and the import of its JSON export.

The config has an image, a ``person`` rectangle, every keypoint name as a ``KeyPointLabels``
label, and a per-point ``visibility`` choice (visible / occluded). Each task is one image; its
prediction holds per person a rectangle and the person's labelled points, each point linked
to its rectangle with ``parentID``, in percent of the image size, with the teacher's
confidence as the region score; the prediction score is ``1 - suspicion`` of the task's most
suspicious person, so sorting tasks by prediction score puts the review queue first.

The task data keeps what the labels need and Label Studio does not model (``data.wbt``:
the image entry, the layout, and per person the id, box, area, keypoints with their exact
visibilities and other fields), so the import needs nothing but Label Studio's export:
points are grouped into persons by their parent rectangle, persons are matched to the
originals by rectangle id, unmoved points get their exact original values back.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from labeltool.errors import UserError
from labeltool.io.atomic import write_bytes_atomic, write_json_atomic
from labeltool.io.jsonfile import is_number
from labeltool.io.pose import PoseDataset
from labeltool.layouts import HALPE136, WHOLEBODY133, Layout
from labeltool.review.cvat import UNKNOWN_VISIBILITY, ImportReport, assemble_import

IMAGE_TAG = "image"
PERSON_TAG = "person"
KEYPOINT_TAG = "keypoints"
VISIBILITY_TAG = "visibility"
VISIBILITY_CHOICES = {"visible": 2.0, "occluded": 1.0}
POINT_SIZE_PCT = 0.4  # keypoint region 'width' in percent of the image width
DEFAULT_IMAGE_URL = "/data/local-files/?d={file_name}"
MODEL_VERSION = "wbt"
PART_COLORS = {"body": "#e6194b", "foot": "#f58231", "face": "#4363d8", "lefthand": "#3cb44b", "righthand": "#911eb4"}
LAYOUTS = {WHOLEBODY133.name: WHOLEBODY133, HALPE136.name: HALPE136}


def labelstudio_config(layout: Layout) -> str:
    """The labeling config (XML): image, person rectangles, every keypoint label, a per-point visibility choice."""
    part_of = layout.part_of()
    labels = "\n".join(
        f'    <Label value={quoteattr(name)} background={quoteattr(PART_COLORS[part_of[k]])} model_index="{k}"/>'
        for k, name in enumerate(layout.names)
    )
    return f"""<View>
  <Header value="wbt review: move, delete or add points; each point belongs to its person's rectangle"/>
  <Image name="{IMAGE_TAG}" value="$image" zoom="true" zoomControl="true"/>
  <RectangleLabels name="{PERSON_TAG}" toName="{IMAGE_TAG}">
    <Label value="person" background="#ffe119"/>
  </RectangleLabels>
  <KeyPointLabels name="{KEYPOINT_TAG}" toName="{IMAGE_TAG}" strokeWidth="1">
{labels}
  </KeyPointLabels>
  <Choices name="{VISIBILITY_TAG}" toName="{IMAGE_TAG}" perRegion="true" whenTagName="{KEYPOINT_TAG}" choice="single">
    <Choice value="visible"/>
    <Choice value="occluded"/>
  </Choices>
</View>
"""


def _person_region_id(ann_id: int) -> str:
    return f"p{ann_id}"


def labelstudio_tasks(
    ds: PoseDataset,
    order: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    suspicion: np.ndarray | None = None,
    image_url: str = DEFAULT_IMAGE_URL,
) -> list[dict]:
    """One task per image holding the persons in ``order`` (default all); images in order of first appearance."""
    check_image_url(image_url)
    order = np.arange(len(ds)) if order is None else np.asarray(order, dtype=np.int64)
    images = ds.image_index()
    by_image = ds.persons_by_image()
    layout = ds.layout
    seen: list[int] = []
    for i in order:
        if int(ds.image_ids[i]) not in seen:
            seen.append(int(ds.image_ids[i]))
    tasks = []
    for image_id in seen:
        im = images[image_id]
        width, height = float(im["width"]), float(im["height"])
        result, persons = [], []
        worst = 0.0
        for i in by_image[image_id]:
            ann_id = int(ds.ann_ids[i])
            rid = _person_region_id(ann_id)
            x, y, w, h = (float(v) for v in ds.bboxes[i])
            common = {"from_name": PERSON_TAG, "to_name": IMAGE_TAG, "original_width": int(width),
                      "original_height": int(height), "image_rotation": 0}  # fmt: skip
            result.append(
                {"id": rid, "type": "rectanglelabels", **common,
                 "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                           "height": 100 * h / height, "rotation": 0, "rectanglelabels": ["person"]}}
            )  # fmt: skip
            for k in np.nonzero(ds.keypoints[i, :, 2] > 0)[0]:
                px, py = ds.keypoints[i, k, :2]
                region = {"id": f"{rid}_k{k}", "type": "keypointlabels", **common, "from_name": KEYPOINT_TAG,
                          "parentID": rid,
                          "value": {"x": 100 * px / width, "y": 100 * py / height, "width": POINT_SIZE_PCT,
                                    "keypointlabels": [layout.names[k]]}}  # fmt: skip
                if confidence is not None:
                    region["score"] = float(confidence[i, k])
                result.append(region)
            if suspicion is not None:
                worst = max(worst, float(suspicion[i]))
            persons.append(
                {
                    "id": ann_id,
                    "bbox": [float(v) for v in ds.bboxes[i]],
                    "area": float(ds.areas[i]),
                    "iscrowd": int(ds.iscrowd[i]),
                    "category_id": int(ds.category_ids[i]),
                    "keypoints": ds.keypoints[i].reshape(-1).tolist(),
                    "fields": ds.annotations[i],
                }
            )
        data = {
            "image": image_url.format(file_name=quote(im["file_name"]), image_id=image_id),  # a#b.jpg -> a%23b.jpg
            "wbt": {"layout": layout.name, "image": im, "persons": persons},
        }
        prediction = {"model_version": MODEL_VERSION, "score": 1.0 - worst, "result": result}
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def check_image_url(image_url: str) -> None:
    """``--image-url`` may use ``{file_name}`` and ``{image_id}`` only: a one-line error otherwise."""
    try:
        image_url.format(file_name="a.jpg", image_id=1)
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(
            f"--image-url {image_url!r}: {type(err).__name__} {err}; "
            "use the placeholders {file_name} and {image_id}"
        ) from None


def export_labelstudio(
    ds: PoseDataset,
    out_dir: str | os.PathLike,
    order: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    suspicion: np.ndarray | None = None,
    image_url: str = DEFAULT_IMAGE_URL,
) -> list[Path]:
    """Write ``labeling_config.xml`` and ``tasks.json`` under ``out_dir``."""
    out_dir = Path(out_dir)
    config_path = out_dir / "labeling_config.xml"
    tasks_path = out_dir / "tasks.json"
    write_json_atomic(labelstudio_tasks(ds, order, confidence, suspicion, image_url), tasks_path)
    write_bytes_atomic(labelstudio_config(ds.layout).encode("utf-8"), config_path)
    return [config_path, tasks_path]


# --------------------------------------------------------------------------- import


def _time(value) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            pass
    return datetime.min


def _chosen_result(task: dict, where: str) -> tuple[list | None, bool]:
    """(result, from_annotation): the latest non-cancelled annotation, else the first prediction."""
    annotations = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled") and not a.get("skipped")
    ]
    if annotations:
        latest = max(
            annotations, key=lambda a: (_time(a.get("updated_at") or a.get("created_at")), _number_or_0(a.get("id")))
        )
        return _result_list(latest.get("result"), task, where), True
    # Label Studio's JSON export lists predictions by id only; a full prediction object is used if present
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict) and "result" in p]
    if predictions:
        return _result_list(predictions[0]["result"], task, where), False
    return None, False


def _number_or_0(value) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _result_list(result, task: dict, where: str) -> list:
    """An annotation's ``result``: a list of regions (an empty one: every person deleted)."""
    if result is None:
        return []
    if not isinstance(result, list):
        raise UserError(
            f"{where}: task {task.get('id', '?')}: 'result' is {type(result).__name__}, expected a list of regions"
        )
    return result


def _region_numbers(region: dict, keys: tuple[str, ...], where: str, tid) -> list[float]:
    """The region's ``value`` numbers under ``keys`` (percent of the image), checked: finite numbers."""
    value = region["value"]
    out = []
    for key in keys:
        v = value.get(key) if isinstance(value, dict) else None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise UserError(
                f"{where}: task {tid}: region {region.get('id')}: value.{key} must be a number, got {v!r}"
            )
        out.append(float(v))
    return out


def _original_persons(task: dict, layout: Layout) -> list[dict]:
    """The persons as exported (``data.wbt``): what an unreviewed task stands for."""
    wbt = task["data"]["wbt"]
    return [
        {"image": wbt["image"], "points": np.asarray(p["keypoints"], dtype=np.float64).reshape(layout.num_keypoints, 3),
         "bbox": np.asarray(p["bbox"], dtype=np.float64), "area": float(p["area"]), "iscrowd": int(p.get("iscrowd", 0)),
         "wbt_id": int(p["id"]), "tool_id": None}
        for p in wbt["persons"]
    ]  # fmt: skip


def _rect_box(value: dict, width: float, height: float) -> np.ndarray:
    x, y = value["x"] / 100 * width, value["y"] / 100 * height
    w, h = value["width"] / 100 * width, value["height"] / 100 * height
    rotation = value.get("rotation") or 0.0
    angle = np.deg2rad(float(rotation) if isinstance(rotation, (int, float)) else 0.0)
    if angle == 0:
        return np.array([x, y, w, h])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = corners @ rot.T + (x, y)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _task_persons(task: dict, result: list, layout: Layout, image: dict, where: str) -> list[dict]:
    tid = task.get("id", "?")
    try:
        width, height = float(image["width"]), float(image["height"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{where}: task {tid}: data.wbt.image needs numeric 'width' and 'height'") from None
    rects: dict[str, dict] = {}
    points: list[dict] = []
    visibility: dict[str, float] = {}
    for r in result:
        if not isinstance(r, dict) or "value" not in r:
            continue
        kind, value = r.get("type"), r["value"]
        if kind == "rectanglelabels" and r.get("from_name") == PERSON_TAG:
            if r.get("id") is None or str(r.get("id")) in rects:
                raise UserError(
                    f"{where}: task {tid}: a person rectangle has a missing or repeated 'id' ({r.get('id')!r})"
                )
            _region_numbers(r, ("x", "y", "width", "height"), where, tid)
            rects[str(r.get("id"))] = r
        elif kind == "keypointlabels" and r.get("from_name") == KEYPOINT_TAG:
            points.append(r)
        elif kind == "choices" and r.get("from_name") == VISIBILITY_TAG:
            choice = ((value.get("choices") if isinstance(value, dict) else None) or [None])[0]
            if choice in VISIBILITY_CHOICES:
                visibility[str(r.get("id"))] = VISIBILITY_CHOICES[choice]
    persons: dict[str, dict] = {}
    for rid, r in rects.items():
        w, h = _original_size(r, width, height)
        box = _rect_box(r["value"], w, h)
        wbt_id = int(rid[1:]) if rid.startswith("p") and rid[1:].isascii() and rid[1:].isdigit() else None
        persons[rid] = {"image": image, "points": np.zeros((layout.num_keypoints, 3)), "bbox": box,
                        "area": float(box[2] * box[3]), "iscrowd": 0, "wbt_id": wbt_id, "tool_id": rid}  # fmt: skip
    for r in points:
        value = r["value"]
        names = (value.get("keypointlabels") if isinstance(value, dict) else None) or []
        if len(names) != 1 or names[0] not in layout.names:
            raise UserError(
                f"{where}: task {tid}: keypoint region {r.get('id')} has label(s) {names}, expected one {layout.name} point name"
            )
        w, h = _original_size(r, width, height)
        xy = np.array(_region_numbers(r, ("x", "y"), where, tid)) / 100 * (w, h)
        parent = r.get("parentID")
        if parent is None or str(parent) not in persons:
            inside = [rid for rid, p in persons.items() if _contains(p["bbox"], xy)]
            if len(inside) != 1:
                raise UserError(
                    f"{where}: task {tid}: point '{names[0]}' ({r.get('id')}) belongs to no person rectangle "
                    f"(no parentID, and {len(inside)} rectangles contain it); in Label Studio put it under its person's rectangle"
                )
            parent = inside[0]
        person = persons[str(parent)]
        k = layout.index(names[0])
        if person["points"][k, 2] != 0:
            raise UserError(f"{where}: task {tid}: person rectangle {parent} has two '{names[0]}' points")
        person["points"][k] = (xy[0], xy[1], visibility.get(str(r.get("id")), UNKNOWN_VISIBILITY))
    return list(persons.values())


def _original_size(region: dict, width: float, height: float) -> tuple[float, float]:
    """The image size the region's percentages refer to (its own ``original_width`` / ``_height`` when numeric)."""
    w, h = region.get("original_width"), region.get("original_height")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (w, h))
    return (float(w), float(h)) if ok else (width, height)


def _contains(box: np.ndarray, xy: np.ndarray) -> bool:
    return bool(box[0] <= xy[0] <= box[0] + box[2] and box[1] <= xy[1] <= box[1] + box[3])


def _reference_from_tasks(tasks: list[dict], layout: Layout, where: str) -> PoseDataset:
    """The original labels carried in the tasks' ``data.wbt``."""
    images, rows = {}, []
    for task in tasks:
        wbt = task["data"]["wbt"]
        images[int(wbt["image"]["id"])] = wbt["image"]
        for p in wbt["persons"]:
            rows.append((int(wbt["image"]["id"]), p))
    n = len(rows)
    return PoseDataset(
        layout=layout,
        keypoints=np.array([p["keypoints"] for _, p in rows], dtype=np.float64).reshape(n, layout.num_keypoints, 3),
        ann_ids=np.array([p["id"] for _, p in rows], dtype=np.int64),
        image_ids=np.array([i for i, _ in rows], dtype=np.int64),
        category_ids=np.array([p.get("category_id", 1) for _, p in rows], dtype=np.int64),
        bboxes=np.array([p["bbox"] for _, p in rows], dtype=np.float64).reshape(n, 4),
        areas=np.array([p["area"] for _, p in rows], dtype=np.float64),
        iscrowd=np.array([p.get("iscrowd", 0) for _, p in rows], dtype=np.int64),
        annotations=[dict(p.get("fields") or {}) for _, p in rows],
        images=sorted(images.values(), key=lambda im: int(im["id"])),
        categories=[],
        path=where,
    )


def _check_wbt_data(wbt: dict, layout: Layout, where: str) -> None:
    """``data.wbt`` as wbt wrote it: an image with an integer id, persons with id, bbox, area and keypoints."""
    if not isinstance(wbt["image"].get("id"), int) or not isinstance(wbt["persons"], list):
        raise UserError(f"{where}: data.wbt needs an image with an integer 'id' and a 'persons' list")
    for p in wbt["persons"]:
        ok = isinstance(p, dict) and isinstance(p.get("id"), int) and is_number(p.get("area"))
        ok = ok and _numbers_list(p.get("bbox"), 4) and _numbers_list(p.get("keypoints"), 3 * layout.num_keypoints)
        if not ok:
            name = p.get("id") if isinstance(p, dict) else p
            raise UserError(
                f"{where}: data.wbt person {name!r} needs an integer 'id', a number 'area', "
                f"4 numbers 'bbox' and {3 * layout.num_keypoints} numbers 'keypoints'"
            )


def _numbers_list(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(is_number(x) for x in v)


def labelstudio_import(
    tasks: list, where: str, ref: PoseDataset | None = None, annotated_only: bool = False
) -> tuple[PoseDataset, ImportReport]:
    """Label Studio's JSON export (a list of tasks) -> the reviewed labels.

    Without ``ref`` the originals come from the tasks' ``data.wbt``. A task without a
    (non-cancelled) annotation contributes its labels as exported, unless ``annotated_only``.
    """
    if not isinstance(tasks, list):
        raise UserError(f"{where}: expected Label Studio's JSON export (a list of tasks), got {type(tasks).__name__}")
    layout = None
    for k, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise UserError(f"{where}: task #{k} has no 'data' object")
        wbt = task["data"].get("wbt")
        if not isinstance(wbt, dict) or not isinstance(wbt.get("image"), dict) or "persons" not in wbt:
            raise UserError(f"{where}: task {task.get('id', f'#{k}')} has no data.wbt (not made by wbt review export)")
        this = LAYOUTS.get(wbt.get("layout"))
        if this is None:
            raise UserError(f"{where}: task {task.get('id', f'#{k}')}: unknown layout {wbt.get('layout')!r}")
        if layout is not None and this is not layout:
            raise UserError(f"{where}: tasks mix the {layout.name} and {this.name} layouts")
        layout = this
        _check_wbt_data(wbt, layout, f"{where}: task {task.get('id', f'#{k}')}")
    if layout is None:
        raise UserError(f"{where}: no tasks")
    if ref is None:
        ref = _reference_from_tasks(tasks, layout, where)
    persons, images, without = [], [], 0
    for task in tasks:
        image = task["data"]["wbt"]["image"]
        result, annotated = _chosen_result(task, where)
        if not annotated:
            without += 1
            if annotated_only:
                continue
        images.append(image)
        if result is None:
            persons.extend(_original_persons(task, layout))
        else:
            persons.extend(_task_persons(task, result, layout, image, where))
    ds, report = assemble_import(persons, images, layout, ref, where, restore=True)
    report.tasks_without_annotation = without
    if annotated_only:
        kept = {int(im["id"]) for im in images}
        report.removed = int(sum(1 for i in ref.image_ids if int(i) in kept)) - report.matched
    return ds, report
