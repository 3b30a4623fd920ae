"""Shared test fixtures: the real labelled data in ../shared/realdata (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WBT_SHARED", REPO.parent / "shared"))  # a checkout elsewhere (a git worktree) points here
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata, or skip: the real labelled images live beside the repo, never in it."""
    if not REALDATA.is_dir():
        pytest.skip(f"real labelled data not found at {REALDATA} (it lives beside the repo in ../shared)")
    return REALDATA


@pytest.fixture(scope="session")
def shared_keypoints() -> Path:
    path = SHARED / "keypoints.json"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is absent)")
    return path


@pytest.fixture(scope="session")
def labels_table_of():
    """Builds a labels.parquet table (labeltool.labels_table.LabelsTable) from a 133-point PoseDataset."""
    import numpy as np

    from labeltool.io.pose import wholebody_document
    from labeltool.labels_table import PARTS, LabelsTable

    def build(ds, confidence=None, source=None, source_names=("none", "gt", "derived"), status="accepted"):
        n = len(ds)
        labelled = ds.keypoints[:, :, 2] > 0
        anns = wholebody_document(ds)["annotations"]
        names = {int(im["id"]): im["file_name"] for im in ds.images}
        return LabelsTable(
            ann_ids=ds.ann_ids, image_ids=ds.image_ids, file_names=[names[int(i)] for i in ds.image_ids],
            category_ids=ds.category_ids, iscrowd=ds.iscrowd.astype(np.int8), bboxes=ds.bboxes, areas=ds.areas,
            distilled=np.ones(n, dtype=bool), keypoints=ds.keypoints,
            confidence=labelled.astype(np.float32) if confidence is None else confidence,
            source=labelled.astype(np.int8) if source is None else source,
            valid={p: np.array([a[f"{p}_valid"] for a in anns]) for p in PARTS},
            part_boxes={k: np.array([a[k] for a in anns], dtype=np.float64).reshape(n, 4)
                        for k in ("face_box", "lefthand_box", "righthand_box")},
            status={p: [status] * n for p in PARTS}, source_names=tuple(source_names),
        )  # fmt: skip

    return build
