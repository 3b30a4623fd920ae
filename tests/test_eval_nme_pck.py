"""`--protocol nme` / `--protocol pck`: the same numbers as mmpose's keypoint_nme,
keypoint_pck_accuracy, keypoint_auc and keypoint_epe on the same arrays.

The reference below is mmpose's code (mmpose/evaluation/functional/keypoint_eval.py and the
NME metric's outer-eye-corner normaliser, Apache-2.0) ported as is; the arrays are the real
300W faces and Panoptic / OneHand10K hands in ../shared/realdata with noise, masked points, a
zero and a negative normaliser. Where mmpose itself is installed (~/.cache/wbt/mmpose-venv),
a slow test compares with it too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.eval.nme import evaluate_nme, keypoint_nme, normalize_factor, per_face_nme
from labeltool.eval.pck import bbox_size, evaluate_pck, keypoint_auc, keypoint_epe, keypoint_pck_accuracy, pooled_pck
from labeltool.eval.pointwise import load_point_set

# --------------------------------------------------------------------------- mmpose, ported as is


def ref_calc_distances(preds, gts, mask, norm_factor):
    N, K, _ = preds.shape
    _mask = mask.copy() > 0
    _mask[np.where((norm_factor == 0).sum(1))[0], :] = False
    distances = np.full((N, K), -1, dtype=np.float32)
    norm_factor[np.where(norm_factor <= 0)] = 1e6
    distances[_mask] = np.linalg.norm(((preds - gts) / norm_factor[:, None, :])[_mask], axis=-1)
    return distances.T


def ref_distance_acc(distances, thr=0.5):
    distance_valid = distances != -1
    num_distance_valid = distance_valid.sum()
    if num_distance_valid > 0:
        return (distances[distance_valid] < thr).sum() / num_distance_valid
    return -1


def ref_pck(pred, gt, mask, thr, norm_factor):
    distances = ref_calc_distances(pred, gt, mask, norm_factor)
    acc = np.array([ref_distance_acc(d, thr) for d in distances])
    valid_acc = acc[acc >= 0]
    cnt = len(valid_acc)
    avg_acc = valid_acc.mean() if cnt > 0 else 0
    return acc, avg_acc, cnt


def ref_auc(pred, gt, mask, norm_factor, num_thrs=20):
    nor = np.tile(np.array([[norm_factor, norm_factor]]), (pred.shape[0], 1))
    thrs = [1.0 * i / num_thrs for i in range(num_thrs)]
    avg_accs = []
    for thr in thrs:
        _, avg_acc, _ = ref_pck(pred, gt, mask, thr, nor)
        avg_accs.append(avg_acc)
    auc = 0
    for i in range(num_thrs):
        auc += 1.0 / num_thrs * avg_accs[i]
    return auc


def ref_nme(pred, gt, mask, normalize_factor):
    distances = ref_calc_distances(pred, gt, mask, normalize_factor)
    distance_valid = distances[distances != -1]
    return distance_valid.sum() / max(1, len(distance_valid))


def ref_epe(pred, gt, mask):
    distances = ref_calc_distances(pred, gt, mask, np.ones((pred.shape[0], pred.shape[2]), dtype=np.float32))
    distance_valid = distances[distances != -1]
    return distance_valid.sum() / max(1, len(distance_valid))


def ref_interocular(gt_coords, idx1=36, idx2=45):
    interocular = np.linalg.norm(gt_coords[:, idx1, :] - gt_coords[:, idx2, :], axis=1, keepdims=True)
    return np.tile(interocular, [1, 2])


# --------------------------------------------------------------------------- real arrays


def noisy(gt: np.ndarray, sigma: float, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, gt, mask) from real GT points: N(0, sigma) px noise, in ``dtype``."""
    rng = np.random.default_rng(seed)
    pred = gt[:, :, :2] + rng.normal(0, sigma, gt[:, :, :2].shape)
    return pred.astype(dtype), gt[:, :, :2].astype(dtype), gt[:, :, 2] > 0


@pytest.fixture(scope="module")
def faces(realdata):
    path = realdata / "face300w" / "test_300w.json"
    doc = json.loads(path.read_text())
    return path, doc, np.array([a["keypoints"] for a in doc["annotations"]], dtype=np.float64).reshape(-1, 68, 3)


@pytest.fixture(scope="module", params=["hand_panoptic/test_panoptic.json", "hand_onehand10k/test_onehand10k.json"])
def hands(realdata, request):
    path = realdata / request.param
    doc = json.loads(path.read_text())
    gt = np.array([a["keypoints"] for a in doc["annotations"]], dtype=np.float64).reshape(-1, 21, 3)
    boxes = np.array([a["bbox"] for a in doc["annotations"]], dtype=np.float64)
    return path, doc, gt, boxes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sigma", [0.5, 4.0, 20.0])
def test_nme_equals_mmpose_on_300w(faces, sigma, dtype):
    _, _, gt = faces
    pred, ref, mask = noisy(gt, sigma, seed=int(sigma * 10), dtype=dtype)
    mask[0, :5] = False  # some points unlabelled
    factor = ref_interocular(ref)
    ours = keypoint_nme(pred, ref, mask, factor.copy())
    assert ours == ref_nme(pred, ref, mask, factor.copy())
    np.testing.assert_array_equal(normalize_factor(gt, np.zeros((len(gt), 4)))[:, None].repeat(2, 1),
                                  ref_interocular(gt[:, :, :2]))  # fmt: skip
    # a zero normaliser drops the face, a negative one becomes 1e6 (mmpose's guards)
    for bad in (0.0, -1.0):
        f = factor.copy()
        f[1] = bad
        assert keypoint_nme(pred, ref, mask, f.copy()) == ref_nme(pred, ref, mask, f.copy())


def test_nme_normalisations_known_answers(faces):
    """Every point moved by (3, 4) px: the NME is 5 px over each normaliser."""
    path, doc, gt = faces
    results = []
    for ann, pts in zip(doc["annotations"], gt):
        moved = pts.copy()
        moved[:, :2] += (3.0, 4.0)
        results.append({"image_id": ann["image_id"], "keypoints": moved.reshape(-1).tolist()})
    report = evaluate_nme(path, results)
    x, y, w, h = np.array([a["bbox"] for a in doc["annotations"]]).T
    eyes = np.linalg.norm(gt[:, 36, :2] - gt[:, 45, :2], axis=1)
    pupils = np.linalg.norm(gt[:, 36:42, :2].mean(1) - gt[:, 42:48, :2].mean(1), axis=1)
    for name, d in (("outer-eye-corners", eyes), ("inter-pupil", pupils), ("bbox", np.sqrt(w * h))):
        assert report.metrics[f"NME {name}"] == pytest.approx(np.mean(5.0 / d), rel=1e-6)  # float32 distances
        np.testing.assert_allclose(per_face_nme(load_point_set(path, results), name), 5.0 / d, rtol=1e-6)
    assert 0.005 < report.metrics["NME outer-eye-corners"] < 0.05  # 5 px on faces ~200-500 px wide


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sigma", [1.0, 6.0, 25.0])
def test_pck_auc_epe_equal_mmpose_on_real_hands(hands, sigma, dtype):
    _, _, gt, boxes = hands
    pred, ref, mask = noisy(gt, sigma, seed=int(sigma), dtype=dtype)
    size = np.max(boxes[:, 2:], axis=1)
    norm = np.stack([size, size], axis=1).astype(dtype)
    for thr in (0.05, 0.1, 0.2):
        acc, avg, cnt = keypoint_pck_accuracy(pred, ref, mask, thr, norm.copy())
        r_acc, r_avg, r_cnt = ref_pck(pred, ref, mask, thr, norm.copy())
        np.testing.assert_array_equal(acc, r_acc)
        assert (avg, cnt) == (r_avg, r_cnt)
    assert keypoint_auc(pred, ref, mask, 30, 20) == ref_auc(pred, ref, mask, 30, 20)
    assert keypoint_epe(pred, ref, mask) == ref_epe(pred, ref, mask)
    np.testing.assert_array_equal(bbox_size(boxes), size)


def test_pck_known_answers(hands):
    """Every point moved by exactly 3 px: EPE 3, PCK 1 at 0.2 of the box, AUC 17/20 (3 px is
    below 4.5, 6, ..., 28.5 px, not below 0, 1.5 or 3)."""
    path, doc, gt, boxes = hands
    results = []
    for ann, pts in zip(doc["annotations"], gt):
        moved = pts.copy()
        moved[:, 0] += 3.0
        results.append({"ann_id": ann["id"], "image_id": -1, "keypoints": moved.reshape(-1).tolist()})
    report = evaluate_pck(path, results)
    assert report.metrics["EPE"] == pytest.approx(3.0, abs=1e-4)
    assert report.metrics["PCK@0.2"] == 1.0
    assert report.metrics["AUC@30px"] == pytest.approx(17 / 20, abs=1e-12)
    assert report.num_points == int((gt[:, :, 2] > 0).sum())
    points = load_point_set(path, results)
    for thr, expected in ((0.2, 1.0), (0.005, 0.0)):  # 3 px of a box side from 34 to 376 px
        assert pooled_pck(points.pred[:, :, :2], points.gt[:, :, :2], points.mask, thr, bbox_size(boxes)) == expected


def test_cli_nme_and_pck_tables_and_errors(faces, hands, tmp_path):
    path, doc, gt = faces
    exact = [{"image_id": a["image_id"], "keypoints": a["keypoints"]} for a in doc["annotations"]]
    (tmp_path / "exact.json").write_text(json.dumps(exact))
    res = CliRunner().invoke(main, ["eval", "--protocol", "nme", "--gt", str(path), "--pred", str(tmp_path / "exact.json")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "NME (68-point faces; mmpose's keypoint_nme), 2 instances, 136 labelled points"
    assert lines[2].split() == ["exact", "0.00", "0.00", "0.00"]
    hand_path, hand_doc, _, _ = hands
    preds = [{"image_id": a["image_id"], "keypoints": a["keypoints"]} for a in hand_doc["annotations"]]
    (tmp_path / "hands.json").write_text(json.dumps(preds))
    res = CliRunner().invoke(main, ["eval", "--protocol", "pck", "--gt", str(hand_path), "--pred",
                                    str(tmp_path / "hands.json"), "--format", "json"])  # fmt: skip
    out = json.loads(res.output)
    assert out["results"][0]["metrics"] == {"PCK@0.2": 1.0, "AUC@30px": pytest.approx(0.95, abs=1e-12), "EPE": 0.0}
    # one face short, a result on an unknown image: one-line errors naming the file
    (tmp_path / "short.json").write_text(json.dumps(exact[:1]))
    res = CliRunner().invoke(main, ["eval", "--protocol", "nme", "--gt", str(path), "--pred", str(tmp_path / "short.json")])
    assert res.exit_code == 2 and "short.json: no result for image_id" in res.output
    with pytest.raises(UserError, match="image_id 999 is not an annotated image"):
        evaluate_nme(path, [*exact, {"image_id": 999, "keypoints": exact[0]["keypoints"]}])
    with pytest.raises(UserError, match="this protocol takes 68 or 98 or 29"):
        evaluate_nme(hand_path, preds)


MMPOSE_PY = Path.home() / ".cache" / "wbt" / "mmpose-venv" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not MMPOSE_PY.exists(), reason="mmpose venv absent (~/.cache/wbt/mmpose-venv)")
def test_equal_to_installed_mmpose(faces, hands, tmp_path):
    """The real mmpose functions on the same arrays (saved as .npy, run in mmpose's venv)."""
    _, _, face_gt = faces
    _, _, hand_gt, boxes = hands
    fp, fg, fm = noisy(face_gt, 3.0, seed=1)
    hp, hg, hm = noisy(hand_gt, 8.0, seed=2)
    size = np.max(boxes[:, 2:], axis=1)
    hn = np.stack([size, size], axis=1)
    for name, arr in dict(fp=fp, fg=fg, fm=fm, hp=hp, hg=hg, hm=hm, hn=hn, fn=ref_interocular(fg)).items():
        np.save(tmp_path / f"{name}.npy", arr)
    script = (
        "import numpy as np, json, sys\n"
        "from mmpose.evaluation.functional import keypoint_nme, keypoint_pck_accuracy, keypoint_auc, keypoint_epe\n"
        f"L = lambda n: np.load('{tmp_path}/' + n + '.npy')\n"
        "print(json.dumps([float(keypoint_nme(L('fp'), L('fg'), L('fm'), L('fn'))),\n"
        "  float(keypoint_pck_accuracy(L('hp'), L('hg'), L('hm'), 0.2, L('hn'))[1]),\n"
        "  float(keypoint_auc(L('hp'), L('hg'), L('hm'), 30, 20)), float(keypoint_epe(L('hp'), L('hg'), L('hm')))]))\n"
    )
    out = subprocess.run([str(MMPOSE_PY), "-c", script], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.skip(f"mmpose does not import in its venv: {out.stderr.strip().splitlines()[-1:]}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = [keypoint_nme(fp, fg, fm, ref_interocular(fg)), float(keypoint_pck_accuracy(hp, hg, hm, 0.2, hn)[1]),
            keypoint_auc(hp, hg, hm, 30, 20), keypoint_epe(hp, hg, hm)]  # fmt: skip
    assert ours == theirs
