"""CVAT round trip: our COCO Keypoints export, a file shaped as CVAT exports it, and the import back.

CVAT's "COCO Keypoints 1.0" import and export run datumaro's ``coco_person_keypoints``
(cvat/apps/dataset_manager/formats/coco.py). What that does to a file, reproduced by
:func:`through_cvat`: coordinates rounded to 2 decimals (datumaro's COORDINATE_ROUNDING_DIGITS),
integer visibility, boxes dropped on import and recomputed on export from the non-absent points,
images and annotations renumbered from 1, custom attributes kept with ``occluded`` added, and the
zip layout ``annotations/person_keypoints_<subset>.json``.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import HALPE136, WHOLEBODY133, halpe136_to_coco133_index
from labeltool.review.cvat import cvat_document, cvat_import, cvat_labels_spec, read_cvat_export


@pytest.fixture(scope="module")
def gt(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


def wbt(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def through_cvat(doc: dict) -> dict:
    """``doc`` imported into CVAT and exported again as COCO Keypoints 1.0 (what datumaro writes)."""
    images = sorted(doc["images"], key=lambda im: im["file_name"])  # CVAT frames: upload order
    new_image_id = {im["id"]: k + 1 for k, im in enumerate(images)}
    annotations = []
    for k, ann in enumerate(sorted(doc["annotations"], key=lambda a: new_image_id[a["image_id"]])):
        pts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        pts[:, :2] = np.round(pts[:, :2], 2)
        vis = pts[:, 2].astype(int)
        present = vis > 0
        lo = pts[present, :2].min(axis=0) if present.any() else np.zeros(2)  # datumaro: 0 without points
        hi = pts[present, :2].max(axis=0) if present.any() else np.zeros(2)
        bbox = [round(float(v), 2) for v in (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])]
        attributes = {"occluded": False, **{k: v for k, v in ann.get("attributes", {}).items() if k != "occluded"}}
        annotations.append(
            {
                "id": k + 1,
                "image_id": new_image_id[ann["image_id"]],
                "category_id": 1,
                "segmentation": [],
                "area": bbox[2] * bbox[3],
                "bbox": bbox,
                "iscrowd": 0,
                "attributes": attributes,
                "keypoints": [v for x, y, v in zip(pts[:, 0], pts[:, 1], vis) for v in (float(x), float(y), int(v))],
                "num_keypoints": int(present.sum()),
            }
        )
    cat = doc["categories"][0]
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [
            {
                "id": 1,
                "name": cat["name"],
                "supercategory": "",
                "keypoints": cat["keypoints"],
                "skeleton": cat["skeleton"],
            }
        ],  # fmt: skip
        "images": [
            {
                "id": new_image_id[im["id"]],
                "width": im["width"],
                "height": im["height"],
                "file_name": im["file_name"],
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
            for im in images
        ],  # fmt: skip
        "annotations": annotations,
    }


def _by_id(ds):
    order = np.argsort(ds.ann_ids)
    return ds.subset(order)


def assert_same_labels(a, b, atol=1e-6):
    a, b = _by_id(a), _by_id(b)
    assert a.ann_ids.tolist() == b.ann_ids.tolist()
    assert a.image_ids.tolist() == b.image_ids.tolist()
    np.testing.assert_allclose(b.bboxes, a.bboxes, atol=atol, rtol=0)
    np.testing.assert_array_equal(b.keypoints[:, :, 2], a.keypoints[:, :, 2])
    lab = a.keypoints[:, :, 2] > 0
    np.testing.assert_allclose(b.keypoints[lab][:, :2], a.keypoints[lab][:, :2], atol=atol, rtol=0)


def test_labels_spec_parses_as_cvat_reads_it():
    """CVAT's backend reads a skeleton's svg as <root>svg</root>: lines are joints, circles the point names."""
    for layout in (WHOLEBODY133, HALPE136):
        (label,) = cvat_labels_spec(layout)
        joints, names, node_ids = [], [], []
        for el in ET.fromstring("<root>" + label["svg"] + "</root>"):
            if el.tag == "line":
                joints.append([int(el.attrib["data-node-from"]), int(el.attrib["data-node-to"])])
            elif el.tag == "circle":
                names.append(el.attrib["data-label-name"])
                node_ids.append(int(el.attrib["data-node-id"]))
        assert names == list(layout.names) == [s["name"] for s in label["sublabels"]]
        assert node_ids == list(range(1, layout.num_keypoints + 1))
        assert joints == (layout.skeleton + 1).tolist()
        assert label["type"] == "skeleton" and label["attributes"][0]["name"] == "wbt_id"


def test_export_shape(gt):
    doc = cvat_document(gt)
    (cat,) = doc["categories"]
    assert cat["keypoints"] == list(WHOLEBODY133.names)
    ann = next(a for a in doc["annotations"] if a["id"] == 442619)
    src = gt.keypoints[list(gt.ann_ids).index(442619)]
    assert ann["bbox"] == [280.79, 44.73, 218.7, 346.68]  # the person box, tied to its skeleton
    assert len(ann["keypoints"]) == 133 * 3 and ann["attributes"]["wbt_id"] == "442619"
    pts = np.asarray(ann["keypoints"]).reshape(-1, 3)
    np.testing.assert_array_equal(pts[src[:, 2] > 0, :2], src[src[:, 2] > 0, :2])
    assert set(pts[:, 2].tolist()) <= {0, 1, 2}  # CVAT's visibility is an integer


def test_round_trip_through_cvat_no_edits(gt, tmp_path):
    """Unedited: the same ids, boxes, points (exact) and visibilities (floats included), given the reference."""
    exported = through_cvat(cvat_document(gt))
    assert exported["annotations"][0]["id"] == 1  # CVAT renumbered
    back, report = cvat_import(exported, "cvat.json", ref=gt)
    assert report.matched == len(gt) and report.added == 0 and report.removed == 0
    assert_same_labels(gt, back, atol=0)
    np.testing.assert_array_equal(_by_id(back).areas, _by_id(gt).areas)
    # float visibilities of the real GT (COCO-WholeBody hands carry them) came back exactly
    assert not np.isin(gt.keypoints[:, :, 2], [0, 1, 2]).all()


def test_round_trip_without_reference_keeps_our_file(gt):
    """Our own file straight back (no CVAT): ids, boxes and points exact; visibility as CVAT's 0/1/2."""
    back, report = cvat_import(cvat_document(gt), "ours.json")
    assert report.added == len(gt)
    a, b = _by_id(gt), _by_id(back)
    assert a.ann_ids.tolist() == b.ann_ids.tolist() and a.image_ids.tolist() == b.image_ids.tolist()
    np.testing.assert_array_equal(a.bboxes, b.bboxes)
    lab = a.keypoints[:, :, 2] > 0
    np.testing.assert_array_equal(a.keypoints[lab][:, :2], b.keypoints[lab][:, :2])
    np.testing.assert_array_equal(b.keypoints[:, :, 2], np.where(a.keypoints[:, :, 2] >= 2, 2, np.where(lab, 1, 0)))


def test_edits_come_back(gt):
    """A moved point, a deleted point and an added person, made in the CVAT-shaped export."""
    exported = through_cvat(cvat_document(gt))
    anns = exported["annotations"]
    target = next(a for a in anns if a["attributes"]["wbt_id"] == "442619")
    kp = target["keypoints"]
    kp[0 * 3] += 5.25  # nose moved right
    kp[9 * 3 : 9 * 3 + 3] = [0, 0, 0]  # left wrist deleted
    kp[3 * 3 + 2] = 1  # left ear now marked occluded (was 2)
    added = copy.deepcopy(target)
    added["id"] = max(a["id"] for a in anns) + 1
    added["attributes"] = {"occluded": False}  # drawn in CVAT: no wbt_id
    pts = np.asarray(added["keypoints"], dtype=np.float64).reshape(-1, 3)
    pts[pts[:, 2] > 0, 0] -= 150
    added["keypoints"] = pts.reshape(-1).tolist()
    added["bbox"] = [130.0, 50.0, 200.0, 340.0]
    anns.append(added)
    back, report = cvat_import(exported, "cvat.json", ref=gt)
    assert report.matched == len(gt) and report.added == 1
    i = list(back.ann_ids).index(442619)
    j = list(gt.ann_ids).index(442619)
    assert back.keypoints[i, 0].tolist() == [367 + 5.25, 81, 2]
    assert back.keypoints[i, 9].tolist() == [0, 0, 0]
    assert back.keypoints[i, 3, 2] == 1
    unchanged = np.ones(133, bool)
    unchanged[[0, 3, 9]] = False
    np.testing.assert_array_equal(back.keypoints[i, unchanged], gt.keypoints[j, unchanged])
    new = [k for k, a in enumerate(back.ann_ids) if a not in set(gt.ann_ids.tolist())]
    assert len(new) == 1
    k = new[0]
    assert back.ann_ids[k] == gt.ann_ids.max() + 1 and back.image_ids[k] == 785
    assert back.bboxes[k].tolist() == [130.0, 50.0, 200.0, 340.0]
    np.testing.assert_allclose(back.keypoints[k, 0, :2], [367 + 5.25 - 150, 81])  # a copy of the edited person


def test_zip_and_cli_to_136(gt, realdata, tmp_path):
    """The zip CVAT downloads, imported by the CLI into Halpe-136 json."""
    exported = through_cvat(cvat_document(gt))
    zpath = tmp_path / "task_export.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("annotations/person_keypoints_default.json", json.dumps(exported))
    doc, where = read_cvat_export(zpath)
    assert doc == exported and where.endswith("person_keypoints_default.json")
    ref = realdata / "coco_wholebody" / "test_coco_wholebody.json"
    out = tmp_path / "val136.json"
    result = wbt("review", "import", zpath, "--to", "136", "--out", out, "--ref", ref)
    assert result.exit_code == 0, result.output
    halpe = load_pose_dataset(out)
    assert halpe.layout is HALPE136 and len(halpe) == len(gt)
    h_idx, c_idx = halpe136_to_coco133_index()
    a, b = _by_id(gt), _by_id(halpe)
    np.testing.assert_array_equal(b.keypoints[:, h_idx], a.keypoints[:, c_idx])


def test_bad_inputs(gt, tmp_path):
    doc = cvat_document(gt)
    doc["categories"][0]["keypoints"] = doc["categories"][0]["keypoints"][:17]
    with pytest.raises(UserError, match="neither the 133 COCO-WholeBody nor the 136 Halpe names"):
        cvat_import(doc, "bad.json")
    doc = cvat_document(gt)
    doc["annotations"][0]["keypoints"] = doc["annotations"][0]["keypoints"][:-3]
    with pytest.raises(UserError, match=r"'keypoints' has 396 values, expected 399"):
        cvat_import(doc, "bad.json")
    bad_zip = tmp_path / "x.zip"
    bad_zip.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a valid zip file"):
        read_cvat_export(bad_zip)
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("annotations/instances_default.json", "{}")
    with pytest.raises(UserError, match="no annotations/person_keypoints"):
        read_cvat_export(empty_zip)
    # on the command line: one line, exit 2, nothing written
    out = tmp_path / "val.json"
    result = wbt("review", "import", bad_zip, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"wbt: error: {bad_zip}: not a valid zip file"]
    assert not out.exists()
