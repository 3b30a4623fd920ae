"""Final outputs from the shards, streamed: wholebody133.json, halpe136.json, labels.parquet, errors.jsonl.

Persons are written in image-id order, and inside an image in the input file's order
(persons the body teacher found follow, in its order). Every input person is kept:
labelled persons get their 133 points; crowd regions and persons without body keypoints
are carried through unchanged (body as in the input, parts all zeros). Every output file
is written under a temporary name and renamed. Nothing time-dependent goes into these
files, so a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeltool.distill.shards import read_shard, shard_path
from labeltool.halpe import to_halpe136
from labeltool.io.atomic import JsonDocumentWriter, write_errors_name
from labeltool.io.pose import KEYPOINT_KEYS, PoseDataset, flat_document, wholebody_document
from labeltool.label_codes import ACCEPTED, MERGED_PARTS, NO_PROPOSAL, NOT_RUN, SOURCE_GT, SOURCE_NONE
from labeltool.labels_table import LabelsTable, LabelsWriter
from labeltool.layouts import HALPE136, WHOLEBODY133, WHOLEBODY_BOX_KEYS

FLUSH_PERSONS = 2000  # persons per write batch (and per parquet row group)


@dataclass
class Outputs:
    """Which files to write."""

    out_dir: Path
    wholebody: bool = True
    halpe: bool = True


@dataclass
class Counts:
    """Counters for summary.json, filled while the persons stream by."""

    persons: int = 0
    distilled: int = 0
    crowd: int = 0
    no_body: int = 0
    failed_image: int = 0
    status: dict[str, Counter] = field(default_factory=lambda: {p: Counter() for p in MERGED_PARTS})
    points: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MERGED_PARTS, 0))
    sources: Counter = field(default_factory=Counter)


@dataclass
class _Batch:
    base: list[dict] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)
    source: list[np.ndarray] = field(default_factory=list)
    status: list[dict] = field(default_factory=list)
    distilled: list[bool] = field(default_factory=list)
    file_names: list[str] = field(default_factory=list)
    extra: list[np.ndarray] = field(default_factory=list)  # (E, 3) per person

    def __len__(self) -> int:
        return len(self.base)


def _base(ann: dict, ann_id: int, image_id: int, category_id: int, bbox, area: float, iscrowd: int) -> dict:
    out = {k: v for k, v in ann.items() if k not in WHOLEBODY_BOX_KEYS.values()}
    out.update(id=int(ann_id), image_id=int(image_id), category_id=int(category_id))
    out.update(bbox=[float(v) for v in bbox], area=float(area), iscrowd=int(iscrowd))
    out.setdefault("segmentation", [])  # mmpose's COCO-WholeBody reader requires the key
    return out


def assemble(
    ds: PoseDataset,
    chunks: list[list[int]],
    keep_image_ids: set[int],
    shard_dir: Path,
    sources: list[str],
    outputs: Outputs,
    sizes: dict[int, dict],
    extra: np.ndarray | None = None,
    extra_names: tuple[str, ...] = (),
) -> tuple[Counts, list[dict], list[dict]]:
    """Write the output files from the shards (each read once); returns (counts, output images, errors).

    ``sizes``: image id -> {height, width, error} of every labelled image, from the shards'
    footers (the json's image list, written first, needs them before any row is read).
    ``extra`` (N, E, 3): the input persons' extra points (names ``extra_names``), written to
    labels.parquet as read (zeros for persons the body teacher found).
    """
    no_extra = np.zeros((len(extra_names), 3))
    shard_of = {image_id: k for k, ids in enumerate(chunks) for image_id in ids}
    errors = []
    image_index = ds.image_index()
    images = []
    for im in ds.images:
        if int(im["id"]) not in keep_image_ids:
            continue
        info = sizes.get(int(im["id"]))
        if info and info["height"] and ("height" not in im or "width" not in im):
            im = {**im, "height": info["height"], "width": info["width"]}
        if info and info["error"]:
            errors.append({"image_id": int(im["id"]), "file_name": im["file_name"], "error": info["error"]})
        images.append(im)
    errors.sort(key=lambda e: e["image_id"])

    empty = PoseDataset(
        layout=WHOLEBODY133, keypoints=np.zeros((0, 133, 3)), ann_ids=np.zeros(0, np.int64),
        image_ids=np.zeros(0, np.int64), category_ids=np.zeros(0, np.int64), bboxes=np.zeros((0, 4)),
        areas=np.zeros(0), iscrowd=np.zeros(0, np.int64), annotations=[], images=[], categories=ds.categories,
        extra=ds.extra,
    )  # fmt: skip
    writers: list[tuple[str, JsonDocumentWriter]] = []
    parquet = None
    try:
        out = outputs.out_dir
        if outputs.wholebody:
            cats = wholebody_document(empty)["categories"]
            writers.append(
                (
                    "wholebody",
                    JsonDocumentWriter(
                        out / "wholebody133.json", {**ds.extra, "images": images}, "annotations", {"categories": cats}
                    ),
                )
            )
        if outputs.halpe:
            cats = flat_document(
                PoseDataset(**{**empty.__dict__, "layout": HALPE136, "keypoints": np.zeros((0, 136, 3))})
            )["categories"]
            writers.append(
                (
                    "halpe",
                    JsonDocumentWriter(
                        out / "halpe136.json", {**ds.extra, "images": images}, "annotations", {"categories": cats}
                    ),
                )
            )
        parquet = LabelsWriter(out / "labels.parquet", sources, tuple(extra_names))
        counts = Counts()
        batch = _Batch()

        def flush():
            if len(batch):
                _write_batch(batch, ds, writers, parquet, counts)
                batch.__init__()

        persons_of = ds.persons_by_image()
        loaded, shard, rows_of_image, row_of_ann = -1, None, {}, {}
        for image_id in sorted(keep_image_ids):
            file_name = image_index[image_id]["file_name"]
            k = shard_of.get(image_id)
            if k is not None and k != loaded:
                shard = read_shard(shard_path(shard_dir, k))
                loaded = k
                row_of_ann = {int(a): i for i, a in enumerate(shard.ann_ids)}
                rows_of_image = {}
                for i, im_id in enumerate(shard.image_ids):
                    rows_of_image.setdefault(int(im_id), []).append(i)
            used = set()
            for i in persons_of.get(image_id, []):
                ann_id = int(ds.ann_ids[i])
                base = _base(
                    ds.annotations[i], ann_id, image_id, ds.category_ids[i], ds.bboxes[i], ds.areas[i], ds.iscrowd[i]
                )
                row = row_of_ann.get(ann_id) if k is not None else None
                batch.extra.append(no_extra if extra is None else extra[i])
                if row is not None and int(shard.image_ids[row]) == image_id:
                    used.add(row)
                    _add_row(batch, base, shard, row, file_name)
                else:
                    failed = bool(sizes.get(image_id, {}).get("error"))
                    _add_carried(batch, base, ds.keypoints[i], file_name, counts, failed)
            if k is not None:
                for row in rows_of_image.get(image_id, []):
                    if row in used:
                        continue  # persons created by the body teacher (no input annotation)
                    ann_id = int(shard.ann_ids[row])
                    base = _base({}, ann_id, image_id, 1, shard.bboxes[row], shard.areas[row], 0)
                    batch.extra.append(no_extra)
                    _add_row(batch, base, shard, row, file_name)
            if len(batch) >= FLUSH_PERSONS:
                flush()
        flush()
        for _, w in writers:  # every file finished before any is renamed: a full disk changes none of them
            w.finish()
        parquet.finish()
        for target in [*(w.target for _, w in writers), parquet.target]:
            with write_errors_name(target.path):
                target.commit()
    except BaseException:
        for _, w in writers:
            w.abort()
        if parquet is not None:
            parquet.abort()
        raise
    return counts, images, errors


def _add_row(batch: _Batch, base: dict, shard, row: int, file_name: str) -> None:
    batch.base.append(base)
    batch.keypoints.append(shard.keypoints[row])
    batch.confidence.append(shard.confidence[row])
    batch.source.append(shard.source[row])
    batch.status.append({p: shard.status[p][row] for p in MERGED_PARTS})
    batch.distilled.append(True)
    batch.file_names.append(file_name)


def _add_carried(batch: _Batch, base: dict, body: np.ndarray, file_name: str, counts: Counts, failed: bool) -> None:
    kpts = np.zeros((133, 3))
    kpts[:17] = body
    labelled = body[:, 2] > 0
    conf = np.zeros(133, dtype=np.float32)
    conf[:17] = labelled
    src = np.full(133, SOURCE_NONE, dtype=np.int8)
    src[:17] = np.where(labelled, SOURCE_GT, SOURCE_NONE)
    batch.base.append(base)
    batch.keypoints.append(kpts)
    batch.confidence.append(conf)
    batch.source.append(src)
    batch.status.append(dict.fromkeys(MERGED_PARTS, NOT_RUN))
    batch.distilled.append(False)
    batch.file_names.append(file_name)
    if base["iscrowd"]:
        counts.crowd += 1
    elif failed:
        counts.failed_image += 1
    else:
        counts.no_body += 1


def _write_batch(
    batch: _Batch, ds: PoseDataset, writers, parquet: LabelsWriter, counts: Counts
) -> None:
    n = len(batch)
    kpts = np.stack(batch.keypoints)
    conf = np.stack(batch.confidence).astype(np.float32)
    src = np.stack(batch.source).astype(np.int8)
    sub = PoseDataset(
        layout=WHOLEBODY133,
        keypoints=kpts,
        ann_ids=np.array([b["id"] for b in batch.base], dtype=np.int64),
        image_ids=np.array([b["image_id"] for b in batch.base], dtype=np.int64),
        category_ids=np.array([b["category_id"] for b in batch.base], dtype=np.int64),
        bboxes=np.array([b["bbox"] for b in batch.base], dtype=np.float64).reshape(n, 4),
        areas=np.array([b["area"] for b in batch.base], dtype=np.float64),
        iscrowd=np.array([b["iscrowd"] for b in batch.base], dtype=np.int64),
        annotations=batch.base,
        images=[],
        categories=ds.categories,
        extra={},
    )
    wb_anns = wholebody_document(sub)["annotations"]
    for kind, writer in writers:
        if kind == "wholebody":
            writer.write(wb_anns)
        else:
            # the same document as `wbt convert wholebody133.json --to 136`: the 133 annotation
            # (part boxes included) without its split keypoint keys, then the 136 points
            halpe = PoseDataset(
                **{**sub.__dict__, "layout": HALPE136, "keypoints": to_halpe136(kpts)[0],
                   "annotations": [{k: v for k, v in a.items() if k not in KEYPOINT_KEYS} for a in wb_anns]}
            )  # fmt: skip
            writer.write(flat_document(halpe)["annotations"])

    parquet.write(
        LabelsTable(
            ann_ids=sub.ann_ids, image_ids=sub.image_ids, file_names=batch.file_names, category_ids=sub.category_ids,
            iscrowd=sub.iscrowd, bboxes=sub.bboxes, areas=sub.areas, distilled=np.array(batch.distilled, dtype=bool),
            keypoints=kpts, confidence=conf, source=src,
            valid={p: np.array([bool(a.get(f"{p}_valid", False)) for a in wb_anns]) for p in MERGED_PARTS},
            part_boxes={key: np.array([a[key] for a in wb_anns], dtype=np.float64).reshape(n, 4)
                        for key in WHOLEBODY_BOX_KEYS.values()},
            status={p: [s[p] for s in batch.status] for p in MERGED_PARTS},
            source_names=parquet.source_names,
            extra_keypoints=np.stack(batch.extra).reshape(n, len(parquet.extra_names), 3),
            extra_names=parquet.extra_names,
        )
    )  # fmt: skip

    counts.persons += n
    counts.distilled += int(sum(batch.distilled))
    for s in batch.status:
        for p in MERGED_PARTS:
            counts.status[p][s[p]] += 1
    for p in MERGED_PARTS:
        counts.points[p] += int((kpts[:, WHOLEBODY133.parts[p], 2] > 0).sum())
    values, freq = np.unique(src[kpts[:, :, 2] > 0], return_counts=True)
    for v, c in zip(values.tolist(), freq.tolist()):
        counts.sources[v] += c


def part_summary(counts: Counts) -> dict:
    """Per part: persons proposed (a crop was made), accepted, acceptance rate, points, status counts."""
    out = {}
    for p in MERGED_PARTS:
        status = counts.status[p]
        proposed = sum(c for s, c in status.items() if s not in (NO_PROPOSAL, NOT_RUN))
        accepted = status.get(ACCEPTED, 0)
        out[p] = {
            "proposed": proposed,
            "accepted": accepted,
            "acceptance_rate": round(accepted / proposed, 4) if proposed else None,
            "points": counts.points[p],
            "status": dict(sorted(status.items())),
        }
    return out
