"""Which OpenCV call gives different pixels between two installs, for the same input?

The teachers' labels moved when pip resolved OpenCV 5.1 instead of 4.12 (issue 19). This script
runs each cv2 call wbt makes on pixels (imdecode, cvtColor, warpAffine as the teachers' crops use
it, resize) on every image in ../shared/realdata and stores the outputs; run it once per
environment, then compare the two dumps:

    /work/venvs/cv412/bin/python benchmarks/cv2_pixels.py dump /tmp/px412
    python benchmarks/cv2_pixels.py dump /tmp/px51
    python benchmarks/cv2_pixels.py compare /tmp/px412 /tmp/px51

It prints, per call, how many outputs differ, the share of differing bytes and the largest
difference. ``python benchmarks/cv2_pixels.py speed`` prints what the exact warp costs per crop
against ``cv2.warpAffine``. ``labeltool.teachers.crops.warp`` is dumped too: it is what the teachers see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def _images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _crop_cases(h: int, w: int) -> list[tuple[str, np.ndarray, int]]:
    """Crops like the teachers': small boxes scaled up, large ones down, turned and not."""
    from labeltool.teachers.crops import crop_matrix

    rng = np.random.default_rng(0)
    cases = []
    for i in range(12):
        center = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
        side = float(rng.choice([24.3, 57.1, 130.7, 0.6 * min(h, w)]))
        angle = float(rng.choice([0.0, 0.3, -1.1]))
        out = int(rng.choice([192, 224, 256]))
        cases.append((f"crop{i}_s{side:.0f}_a{angle:+.1f}_o{out}", crop_matrix(center, side, out, angle), out))
    return cases


def dump(out: Path, root: Path) -> None:
    import cv2

    from labeltool.teachers.crops import warp

    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for path in _images(root):
        key = path.relative_to(root).as_posix().replace("/", "__")
        data = np.fromfile(str(path), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        arrays[f"imdecode|{key}"] = bgr
        # The same decoded pixels into every later call, so each call is judged on its own.
        bgr = _reference_decode(path, bgr)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        arrays[f"cvtColor_BGR2RGB|{key}"] = rgb
        h, w = rgb.shape[:2]
        for name, m, size in _crop_cases(h, w):
            arrays[f"warpAffine_linear|{key}|{name}"] = cv2.warpAffine(
                rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
            )
            arrays[f"warpAffine_nearest|{key}|{name}"] = cv2.warpAffine(
                rgb, m, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
            )
            arrays[f"crops.warp|{key}|{name}"] = warp(rgb, m, size)
        arrays[f"resize_linear|{key}"] = cv2.resize(rgb, (w // 3 + 1, h // 3 + 1), interpolation=cv2.INTER_LINEAR)
        arrays[f"resize_area|{key}"] = cv2.resize(rgb, (w // 3 + 1, h // 3 + 1), interpolation=cv2.INTER_AREA)
    np.savez_compressed(out / "pixels.npz", **{k.replace("|", "@"): v for k, v in arrays.items()})
    (out / "versions.txt").write_text(f"cv2 {cv2.__version__} numpy {np.__version__}\n")
    print(f"{len(arrays)} outputs from {len(_images(root))} images -> {out} (cv2 {cv2.__version__})")


def _reference_decode(path: Path, bgr: np.ndarray) -> np.ndarray:
    """Pixels independent of the installed cv2's decoder: PIL's when it reads the file, else cv2's."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1])
    except Exception:  # noqa: BLE001 - a reference only; fall back to the decode under test
        return bgr


def compare(a: Path, b: Path) -> int:
    da, db = np.load(a / "pixels.npz"), np.load(b / "pixels.npz")
    print(f"A: {(a / 'versions.txt').read_text().strip()}   B: {(b / 'versions.txt').read_text().strip()}")
    calls: dict[str, list[tuple[int, int, int]]] = {}
    for key in sorted(set(da.files) & set(db.files)):
        call = key.split("@")[0]
        x, y = da[key].astype(np.int16), db[key].astype(np.int16)
        if x.shape != y.shape:
            calls.setdefault(call, []).append((1, x.size, 255))
            continue
        diff = np.abs(x - y)
        calls.setdefault(call, []).append((int(diff.any()), int((diff > 0).sum()), int(diff.max(initial=0))))
    print(f"{'call':<22} {'outputs differing':>18} {'bytes differing':>16} {'max |diff|':>11}")
    for call, rows in calls.items():
        n_diff = sum(r[0] for r in rows)
        nbytes = sum(r[1] for r in rows)
        total = sum(da[k].size for k in da.files if k.split("@")[0] == call)
        print(f"{call:<22} {n_diff:>8} of {len(rows):<7} {100.0 * nbytes / max(total, 1):>15.3f}% {max(r[2] for r in rows):>11}")
    return 0


def speed(root: Path, repeats: int = 20) -> int:
    """Median time per crop of the teachers' warp (exact, numpy) and of ``cv2.warpAffine``, and their ratio."""
    import time

    import cv2

    from labeltool.images import read_rgb
    from labeltool.topdown import warp_bilinear

    image = read_rgb(_images(root / "coco_wholebody")[0])
    h, w = image.shape[:2]
    for name, m, size in _crop_cases(h, w)[:4]:
        times = {}
        for label, fn in (("warp_bilinear", lambda m=m, size=size: warp_bilinear(image, m, (size, size))),
                          ("cv2.warpAffine", lambda m=m, size=size: cv2.warpAffine(image, m, (size, size),
                                                                                   flags=cv2.INTER_LINEAR))):  # fmt: skip
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            times[label] = float(np.median(runs)) * 1e3
        print(f"{name:<28} warp_bilinear {times['warp_bilinear']:6.2f} ms  cv2.warpAffine {times['cv2.warpAffine']:6.2f} ms"
              f"  ratio {times['warp_bilinear'] / times['cv2.warpAffine']:5.1f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--data", type=Path, default=REALDATA)
    sp = sub.add_parser("speed", help="time per crop: the exact warp vs cv2.warpAffine")
    sp.add_argument("--data", type=Path, default=REALDATA)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        if not args.data.is_dir():
            print(f"no real data at {args.data}", file=sys.stderr)
            return 2
        dump(args.out, args.data)
        return 0
    if args.cmd == "speed":
        return speed(args.data)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
