"""What recording and checking image digests costs `wbt distill` (issue 19, 4.2), on real COCO JPEGs.

Labelling: every image's bytes are hashed (sha256) once, beside the decode the work does anyway;
printed as the share of the decode time. Resume: the images of every finished shard are hashed
again (``labeltool.distill.shards.check_shard_images``, threads); printed per 1000 images and
extrapolated to COCO train2017's 64,115 images with persons (the mean size of the images used).
Files just written sit in the page cache: the figure is the hashing cost; from a cold disk the
reading dominates, at the disk's speed (the labelling read the same bytes once already).

    .venv/bin/python benchmarks/resume_digests.py [--images ../shared/realdata/coco_wholebody] [--copies 500]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeltool.digests import content_digest  # noqa: E402
from labeltool.distill.shards import ImageResult, check_shard_images, shard_path, write_shard  # noqa: E402
from labeltool.images import decode_rgb, read_image_bytes  # noqa: E402

COCO_IMAGES_WITH_PERSONS = 64115
SHARD_SIZE = 64


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "realdata" / "coco_wholebody")
    parser.add_argument("--copies", type=int, default=500, help="copies of the images for the resume check")
    args = parser.parse_args()
    sources = sorted(args.images.glob("*.jpg"))
    if not sources:
        sys.exit(f"no .jpg in {args.images}")
    blobs = [read_image_bytes(p) for p in sources]
    decode = best_of(lambda: [decode_rgb(b, "x") for b in blobs]) / len(blobs)
    digest = best_of(lambda: [content_digest(b) for b in blobs]) / len(blobs)
    mean_bytes = float(np.mean([b.size for b in blobs]))
    print(f"{len(blobs)} COCO JPEGs, mean {mean_bytes / 1e3:.0f} kB")
    print(f"labelling: decode {decode * 1e3:.2f} ms, sha256 {digest * 1e3:.3f} ms per image "
          f"= {100 * digest / decode:.1f}% of the decode alone")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images, shard_dir = tmp / "images", tmp / "shards"
        images.mkdir()
        shard_dir.mkdir()
        paths = {}
        for i in range(args.copies * len(sources)):
            paths[i + 1] = images / f"{i + 1:012d}.jpg"
            shutil.copyfile(sources[i % len(sources)], paths[i + 1])
        ids = sorted(paths)
        chunks = [ids[i : i + SHARD_SIZE] for i in range(0, len(ids), SHARD_SIZE)]
        for k, chunk in enumerate(chunks):
            results = [ImageResult(image_id=i, digest=content_digest(paths[i].read_bytes())) for i in chunk]
            write_shard(shard_dir, k, results)
        assert shard_path(shard_dir, 0).exists()
        done = list(range(len(chunks)))
        for threads in (1, 2, 8):
            secs = best_of(lambda t=threads: check_shard_images(shard_dir, done, paths.get, threads=t), repeat=3)
            per_1000 = 1000 * secs / len(ids)
            coco = per_1000 * COCO_IMAGES_WITH_PERSONS / 1000
            print(f"resume check, {threads} threads: {len(ids)} images ({len(ids) * mean_bytes / 1e9:.2f} GB) in "
                  f"{secs:.2f} s = {per_1000:.2f} s per 1000 images; COCO train2017 (64,115 images): {coco:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
