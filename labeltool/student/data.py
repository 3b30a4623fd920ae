"""Training data for the student: persons as arrays, top-down crops, an optional on-disk crop cache.

A :class:`PersonTable` holds every training person as flat arrays (boxes, keypoints, loss
weights, image index, source id): memory stays a few hundred bytes per keypoint-row for
150k+ persons, never a Python object per keypoint or per person.

Crops come in two steps so that one augmentation code path serves every device:

1. *source crop*: a fixed-size uint8 crop around the person's box, ``margin`` times larger
   than the model's nominal crop, made with ``cv2.warpAffine`` straight from the image
   (:class:`ImageCrops`) or read from a memory-mapped cache of such crops
   (:class:`CachedCrops`, built once by :func:`build_crop_cache`) so a GPU is not starved
   by JPEG decoding.
2. *augmented crop*: flip, half-body, box noise, scale, rotation and colour, applied to a
   whole batch of source crops with ``torch.nn.functional.grid_sample`` on the batch's
   device (the GPU when training on CUDA), see :mod:`labeltool.student.augment`.

Batches are read whole (:meth:`CropSource.read_batch`): one memmap gather, or one image
decode per image for all its persons.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from labeltool.convert import convert_keypoints, convert_points
from labeltool.errors import UserError
from labeltool.images import read_rgb
from labeltool.io.atomic import AtomicFile, write_bytes_atomic
from labeltool.io.jsonfile import read_json
from labeltool.io.paths import image_path
from labeltool.io.pose import load_part_dataset, load_pose_dataset
from labeltool.layouts import Layout
from labeltool.topdown import apply_affine, box_center_scale, crop_matrices

FACE_WEIGHT = 1.0  # RTMPose-t/s/m (the presets' anchors) weight every point alike; RTMW weights the face 0.5
PART_SOURCES = ("face", "lefthand", "righthand", "hand")  # part-only datasets (flat 68 or 21 points)


@dataclass
class PersonTable:
    """Training persons as arrays, in the model's layout."""

    layout: Layout
    keypoints: np.ndarray  # (N, K, 2) float32, image pixels
    weights: np.ndarray  # (N, K) float32 loss weight; 0 where the label has no point
    bboxes: np.ndarray  # (N, 4) float32 x y w h
    image_index: np.ndarray  # (N,) int32 into image_paths
    image_paths: np.ndarray  # (M,) str, one per image
    ann_ids: np.ndarray  # (N,) int64
    image_ids: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int16 into source_names
    source_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.bboxes)

    def subset(self, index: np.ndarray) -> PersonTable:
        index = np.asarray(index, dtype=np.int64)
        return PersonTable(self.layout, self.keypoints[index], self.weights[index], self.bboxes[index],
                           self.image_index[index], self.image_paths, self.ann_ids[index], self.image_ids[index],
                           self.source[index], self.source_names)

    def signature(self) -> str:
        """A short fingerprint of boxes and images (to tell whether a crop cache belongs to this table)."""
        import hashlib

        h = hashlib.sha1()
        h.update(np.ascontiguousarray(self.bboxes).tobytes())
        h.update(np.ascontiguousarray(self.image_index).tobytes())
        h.update("\n".join(self.image_paths.tolist()).encode())
        return h.hexdigest()[:16]


def concat_tables(tables: list[PersonTable]) -> PersonTable:
    """One table of several sources (same layout); image and source indices are re-based."""
    if len(tables) == 1:
        return tables[0]
    offsets = np.cumsum([0] + [len(t.image_paths) for t in tables[:-1]])
    src_offsets = np.cumsum([0] + [len(t.source_names) for t in tables[:-1]])
    return PersonTable(
        layout=tables[0].layout,
        keypoints=np.concatenate([t.keypoints for t in tables]),
        weights=np.concatenate([t.weights for t in tables]),
        bboxes=np.concatenate([t.bboxes for t in tables]),
        image_index=np.concatenate([t.image_index + o for t, o in zip(tables, offsets)]).astype(np.int32),
        image_paths=np.concatenate([t.image_paths for t in tables]),
        ann_ids=np.concatenate([t.ann_ids for t in tables]),
        image_ids=np.concatenate([t.image_ids for t in tables]),
        source=np.concatenate([t.source + o for t, o in zip(tables, src_offsets)]).astype(np.int16),
        source_names=tuple(n for t in tables for n in t.source_names),
    )


# --------------------------------------------------------------------------- layouts


def label_weights(labelled: np.ndarray, confidence: np.ndarray | None, layout: Layout,
                  face_weight: float = FACE_WEIGHT) -> np.ndarray:
    """(N, K) loss weights: 1 where a point is labelled (json: v > 0; COCO-WholeBody's float
    visibilities are annotation scores, not weights, as mmpose reads them), or the teacher's
    confidence in [0, 1] where one is given (labels.parquet); 0 elsewhere; face points x ``face_weight``."""
    w = labelled.astype(np.float32)
    if confidence is not None:
        w *= np.clip(confidence, 0.0, 1.0).astype(np.float32)
    if "face" in layout.parts:
        w[:, layout.parts["face"]] *= face_weight
    return w


def source_is_part_only(source_name: str) -> bool:
    """True for a face-only or hand-only source (its name ends in ``:face``, ``:hand`` ...; see ``_table``)."""
    return source_name.rsplit(":", 1)[-1] in PART_SOURCES


def _usable(bboxes: np.ndarray, weights: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    return (iscrowd == 0) & (bboxes[:, 2] > 1) & (bboxes[:, 3] > 1) & (weights > 0).any(axis=1)


# --------------------------------------------------------------------------- sources


def load_json_source(path: str | os.PathLike, images_dir: str | os.PathLike, layout: Layout,
                     part: str = "wholebody", face_weight: float = FACE_WEIGHT) -> PersonTable:
    """Persons of a COCO / COCO-WholeBody / Halpe json (``part='wholebody'``, any layout: points the
    file lacks get weight 0), or of a part-only json (``part`` face: 68 points; lefthand, righthand
    or hand: 21 points, ``hand`` going to the left hand as RTMW does; the rest of the body weight 0).

    Crowd persons, empty boxes and persons without a labelled point are left out.
    """
    path = Path(path)
    if part == "wholebody":
        ds = load_pose_dataset(path)
        points = convert_keypoints(ds.keypoints, ds.layout, layout).astype(np.float32)
        bboxes, iscrowd, ann_ids, img_ids = ds.bboxes, ds.iscrowd, ds.ann_ids, ds.image_ids
        images = ds.images
    elif part in PART_SOURCES:
        points, bboxes, iscrowd, ann_ids, img_ids, images = _load_part_json(path, layout, part)
    else:
        raise UserError(f"{path}: unknown part {part!r} (use wholebody, {', '.join(PART_SOURCES)})")
    weights = label_weights(points[..., 2] > 0, None, layout, face_weight)
    keep = _usable(bboxes, weights, iscrowd)
    return _table(layout, points[keep], weights[keep], bboxes[keep], ann_ids[keep], img_ids[keep], images,
                  images_dir, f"{path.name}:{part}", path)


def _load_part_json(path: Path, layout: Layout, part: str):
    """A part-only file's points placed at ``part``'s indices of ``layout`` (the others unlabelled)."""
    part_name = "lefthand" if part == "hand" else part
    if part_name not in layout.parts:
        raise UserError(f"{path}: the {layout.name} layout has no part {part_name!r}")
    idx = layout.parts[part_name]
    ds = load_part_dataset(path, (len(idx),), taker=f"a {part} source")
    points = np.zeros((len(ds), layout.num_keypoints, 3), dtype=np.float32)
    points[:, idx] = ds.keypoints
    return points, ds.bboxes, ds.iscrowd, ds.ann_ids, ds.image_ids, ds.images


def load_parquet_source(path: str | os.PathLike, images_dir: str | os.PathLike, layout: Layout,
                        face_weight: float = FACE_WEIGHT) -> PersonTable:
    """Persons of a ``labels.parquet`` written by ``wbt distill`` (read by :mod:`labeltool.labels_table`).

    Its 133 points go to ``layout`` by the one conversion (:func:`labeltool.convert.convert_points`);
    a point's weight is its teacher confidence (0 = no prediction; face x ``face_weight``).
    """
    from labeltool.labels_table import read_labels
    from labeltool.layouts import WHOLEBODY133

    path = Path(path)
    table = read_labels(path)
    points, confidence = convert_points(table.keypoints, table.confidence, WHOLEBODY133, layout)
    points = points.astype(np.float32)
    weights = label_weights(points[..., 2] > 0, confidence, layout, face_weight)
    uniq, first = np.unique(table.image_ids, return_index=True)
    images = [{"id": int(i), "file_name": table.file_names[j]} for i, j in zip(uniq, first)]
    keep = _usable(table.bboxes, weights, table.iscrowd.astype(np.int64))
    return _table(layout, points[keep], weights[keep], table.bboxes[keep], table.ann_ids[keep],
                  table.image_ids[keep], images, images_dir, f"{path.name}", path)


def _table(layout, points, weights, bboxes, ann_ids, img_ids, images, images_dir, name, path) -> PersonTable:
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: image directory not found (images of {path})")
    index = {int(im["id"]): i for i, im in enumerate(images)}
    try:
        image_index = np.array([index[int(i)] for i in img_ids], dtype=np.int32)
    except KeyError as err:
        raise UserError(f"{path}: an annotation refers to image id {err.args[0]}, which is not in 'images'") from None
    paths = np.array([str(image_path(images_dir, im)) for im in images])
    used = np.unique(image_index)
    for i in used[:1000] if len(used) > 1000 else used:  # a cheap early check; read errors name the file too
        if not os.path.isfile(paths[i]):
            raise UserError(f"{paths[i]}: image file not found (listed in {path})")
    return PersonTable(
        layout=layout,
        keypoints=np.ascontiguousarray(points[..., :2], dtype=np.float32),
        weights=np.ascontiguousarray(weights, dtype=np.float32),
        bboxes=bboxes.astype(np.float32),
        image_index=image_index,
        image_paths=paths,
        ann_ids=ann_ids.astype(np.int64),
        image_ids=img_ids.astype(np.int64),
        source=np.zeros(len(bboxes), dtype=np.int16),
        source_names=(name,),
    )


def load_source(path: str | os.PathLike, images_dir: str | os.PathLike, layout: Layout, part: str = "wholebody",
                face_weight: float = FACE_WEIGHT) -> PersonTable:
    """A ``labels.parquet`` or a json label file (see :func:`load_json_source`)."""
    if str(path).endswith(".parquet"):
        if part != "wholebody":
            raise UserError(f"{path}: a labels.parquet is whole-body; part {part!r} applies to json files")
        return load_parquet_source(path, images_dir, layout, face_weight)
    return load_json_source(path, images_dir, layout, part, face_weight)


# --------------------------------------------------------------------------- crop sources


@dataclass(frozen=True)
class CropGeometry:
    """Size of the model input and of the source crops around it."""

    input_size: tuple[int, int]  # model input (w, h)
    margin: float = 1.25  # source crops cover this many times the nominal crop

    @property
    def crop_size(self) -> tuple[int, int]:
        w, h = self.input_size
        return int(round(w * self.margin / 2)) * 2, int(round(h * self.margin / 2)) * 2

    def source_matrices(self, bboxes: np.ndarray) -> np.ndarray:
        """(N, 2, 3) image -> source-crop maps: the nominal crop (box grown to the input aspect and by
        1.25) lands centred at the input's scale, surrounded by ``margin`` worth of context."""
        w, h = self.input_size
        center, scale = box_center_scale(bboxes, w / h)
        return crop_matrices(center, scale * (self.crop_size[0] / w), self.crop_size)


class CropSource:
    """Reads batches of source crops: uint8 (B, h, w, 3), keypoints (B, K, 2) and boxes (B, 4) in crop pixels."""

    def __init__(self, table: PersonTable, geometry: CropGeometry):
        self.table = table
        self.geometry = geometry

    def __len__(self) -> int:
        return len(self.table)

    def crops(self, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read_batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        index = np.asarray(index, dtype=np.int64)
        t = self.table
        m = self.geometry.source_matrices(t.bboxes[index])
        keypoints = apply_affine(m, t.keypoints[index].astype(np.float64))
        b = t.bboxes[index].astype(np.float64)
        corners = apply_affine(m, np.stack([b[:, :2], b[:, :2] + b[:, 2:]], axis=1))
        boxes = np.concatenate([corners[:, 0], corners[:, 1] - corners[:, 0]], axis=1)
        part_only = np.array([source_is_part_only(n) for n in t.source_names], dtype=bool)[t.source[index]]
        return {
            "crops": torch.from_numpy(self.crops(index)),
            "part_only": torch.from_numpy(part_only),
            "keypoints": torch.from_numpy(keypoints.astype(np.float32)),
            "weights": torch.from_numpy(t.weights[index]),
            "boxes": torch.from_numpy(boxes.astype(np.float32)),
            "index": torch.from_numpy(index),
        }


class ImageCrops(CropSource):
    """Source crops cut from the images with ``cv2.warpAffine`` (one decode per image per batch)."""

    def crops(self, index: np.ndarray) -> np.ndarray:
        t = self.table
        cw, ch = self.geometry.crop_size
        out = np.zeros((len(index), ch, cw, 3), dtype=np.uint8)
        matrices = self.geometry.source_matrices(t.bboxes[index])
        order = np.argsort(t.image_index[index], kind="stable")
        current, image = -1, None
        for j in order:
            img = int(t.image_index[index[j]])
            if img != current:
                image, current = read_rgb(str(t.image_paths[img])), img
            out[j] = cv2.warpAffine(image, matrices[j], (cw, ch), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return out


class CachedCrops(CropSource):
    """Source crops from a memory-mapped uint8 cache written by :func:`build_crop_cache`."""

    def __init__(self, table: PersonTable, geometry: CropGeometry, cache_dir: str | os.PathLike):
        super().__init__(table, geometry)
        self.cache_dir = Path(cache_dir)
        meta = check_crop_cache(self.cache_dir, table, geometry)
        cw, ch = meta["crop_size"]
        self.array = np.memmap(self.cache_dir / "crops.u8", dtype=np.uint8, mode="r", shape=(len(table), ch, cw, 3))

    def crops(self, index: np.ndarray) -> np.ndarray:
        order = np.argsort(index)  # sorted reads are sequential-ish on disk
        out = np.empty((len(index), *self.array.shape[1:]), dtype=np.uint8)
        out[order] = self.array[index[order]]
        return out


def _cache_meta(table: PersonTable, geometry: CropGeometry) -> dict:
    return {"persons": len(table), "crop_size": list(geometry.crop_size), "input_size": list(geometry.input_size),
            "margin": geometry.margin, "signature": table.signature(), "version": 1}


def check_crop_cache(cache_dir: Path, table: PersonTable, geometry: CropGeometry) -> dict:
    """The cache's meta data, or a :class:`UserError` saying why it does not fit this table."""
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{cache_dir}: no crop cache here (meta.json missing; build it with --build-cache)")
    meta = read_json(meta_path)
    want = _cache_meta(table, geometry)
    for key in ("persons", "crop_size", "margin", "signature"):
        if meta.get(key) != want[key]:
            raise UserError(f"{meta_path}: the crop cache was built for other data or settings ({key}: "
                            f"{meta.get(key)} in the cache, {want[key]} now); rebuild it with --build-cache")
    size = os.path.getsize(cache_dir / "crops.u8") if (cache_dir / "crops.u8").is_file() else -1
    cw, ch = want["crop_size"]
    if size != len(table) * cw * ch * 3:
        raise UserError(f"{cache_dir / 'crops.u8'}: size {size} bytes, expected {len(table) * cw * ch * 3}; rebuild it")
    return meta


def build_crop_cache(table: PersonTable, geometry: CropGeometry, cache_dir: str | os.PathLike,
                     batch: int = 256, workers: int = 0, progress: bool = True) -> Path:
    """Write every person's source crop to ``cache_dir/crops.u8`` (N x h x w x 3 uint8, memory-mapped).

    Written to a temp file and renamed; ``meta.json`` last, so a half-built cache is never used.
    Size: N * w * h * 3 bytes (240 x 320 crops: 230 kB a person, 35 GB for 150k persons).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cw, ch = geometry.crop_size
    n = len(table)
    (cache_dir / "meta.json").unlink(missing_ok=True)
    with AtomicFile(cache_dir / "crops.u8") as tmp:  # renamed over crops.u8 when complete, removed on failure
        array = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(max(n, 1), ch, cw, 3))
        source = ImageCrops(table, geometry)
        # whole images per chunk: persons sorted by image, so each image is decoded once
        order = np.argsort(table.image_index, kind="stable")
        chunks = [order[i:i + batch] for i in range(0, n, batch)]
        loader = torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=workers,
                                             collate_fn=lambda idx: (idx, source.crops(idx)))
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, total=len(chunks), desc="crop cache", unit="batch")
        for idx, crops in loader:
            array[idx] = crops
        array.flush()
        del array
        if n == 0:
            os.truncate(tmp, 0)
    write_bytes_atomic(json.dumps(_cache_meta(table, geometry)).encode("utf-8"), cache_dir / "meta.json")
    return cache_dir


# --------------------------------------------------------------------------- batches


class BatchIndices(torch.utils.data.Sampler):
    """Batches of person indices: a fresh permutation per epoch from (seed, epoch); under DDP each rank
    takes every world-th batch, so ranks never share a sample. The last short batch is dropped."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.n // self.batch_size) // self.world

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g).numpy()
        else:
            order = np.arange(self.n)
        batches = len(self) * self.world
        for b in range(self.rank, batches, self.world):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]


def batch_loader(source: CropSource, sampler: BatchIndices, workers: int, pin_memory: bool = False):
    """An iterable of whole batches read by ``source.read_batch``: from the crop cache by a pool of
    ``workers`` threads (a memmap gather releases the GIL; no inter-process copies), from the images
    by a DataLoader with ``workers`` processes (JPEG decoding needs them)."""
    if isinstance(source, CachedCrops):
        return ThreadedBatches(source, sampler, max(1, workers), pin_memory)
    return torch.utils.data.DataLoader(
        _BatchDataset(source), sampler=sampler, batch_size=None, num_workers=workers, pin_memory=pin_memory,
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
    )


class ThreadedBatches:
    """Batches read ahead, in order, by a pool of threads."""

    def __init__(self, source: CropSource, sampler, threads: int, pin_memory: bool = False):
        self.source, self.sampler, self.threads, self.pin_memory = source, sampler, threads, pin_memory

    def __len__(self) -> int:
        return len(self.sampler)

    def _read(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        batch = self.source.read_batch(index)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch

    def __iter__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        indices = iter(self.sampler)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="crop-cache") as pool:
            pending = deque(pool.submit(self._read, idx) for _, idx in zip(range(2 * self.threads), indices))
            try:
                while pending:
                    batch = pending.popleft().result()
                    nxt = next(indices, None)
                    if nxt is not None:
                        pending.append(pool.submit(self._read, nxt))
                    yield batch
            finally:
                for f in pending:
                    f.cancel()


class _BatchDataset(torch.utils.data.Dataset):
    def __init__(self, source: CropSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        return self.source.read_batch(index)
