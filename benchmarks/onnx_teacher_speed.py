"""Persons/s of distill's per-image work with an ONNX whole-body teacher against the MediaPipe teachers, same run.

Runs ``Distiller.label_image`` (decode, body from the GT, proposals, teachers, merge: what every
distill worker does, one thread, as the workers) over the 4 real COCO-WholeBody images
(12 labelled persons) ``--passes`` times for each teacher setup:

- ``mediapipe``: the default teachers (face=facemesh, hand=mediapipe, foot=mediapipe);
- ``wholebody=onnx``: the ONNX model alone for feet, face and hands;
- ``self-training``: ``wholebody=onnx:MODEL,hand=mediapipe,face=facemesh`` (an ensemble on face and hands).

The model is ``--model FILE`` (any rtmlib-convention whole-body ONNX), else a wbt student of
``--preset`` / ``--input-size`` (default m at 192x256, RTMPose-m's size) with random weights,
exported with ``wbt export --onnx``: the speed does not depend on the weights.

    .venv/bin/python benchmarks/onnx_teacher_speed.py --data ../shared/realdata
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def random_student_onnx(preset: str, input_size: tuple[int, int], out_dir: Path) -> Path:
    """A randomly initialised student exported in rtmlib's convention."""
    import torch

    from labeltool.student.export import export_onnx
    from labeltool.student.model import Student, StudentConfig

    torch.manual_seed(0)
    cfg = StudentConfig(preset=preset, input_size=input_size)
    ckpt = out_dir / "student.pt"
    torch.save({"config": cfg.to_dict(), "model": Student(cfg).state_dict()}, ckpt)
    onnx_path = out_dir / f"student-{preset}-{input_size[0]}x{input_size[1]}.onnx"
    export_onnx(str(ckpt), str(onnx_path), check=False)
    return onnx_path


def run_setup(teachers: str, tasks: list, passes: int) -> dict:
    from labeltool.distill.body import AnnotatedBody
    from labeltool.distill.teacher_choice import TeacherChoice
    from labeltool.distill.work import DistillConfig, Distiller

    t = time.perf_counter()
    distiller = Distiller(DistillConfig(TeacherChoice.parse(teachers)), AnnotatedBody())
    build = time.perf_counter() - t
    try:
        for task in tasks:  # warm-up pass
            distiller.label_image(task)
        persons, parts, start = 0, {}, time.perf_counter()
        for _ in range(passes):
            for task in tasks:
                result = distiller.label_image(task)
                assert result.error is None, result.error
                persons += len(task.ann_ids)
                for part, seconds in result.part_seconds.items():
                    parts[part] = parts.get(part, 0.0) + seconds
        wall = time.perf_counter() - start
    finally:
        distiller.close()
    return {"persons_per_s": persons / wall, "ms_per_person": 1000 * wall / persons, "build_s": build,
            "teacher_ms_per_person": {p: 1000 * s / persons for p, s in parts.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--model", type=Path, help="whole-body ONNX in rtmlib's convention (default: a random student)")
    parser.add_argument("--preset", default="m", help="student preset of the default model")
    parser.add_argument("--input-size", default="192x256", help="WxH of the default model")
    parser.add_argument("--passes", type=int, default=3, help="passes over the 4 images per setup")
    args = parser.parse_args()
    from labeltool.distill import inputs
    from labeltool.distill.plan import make_plan

    src = args.data / "coco_wholebody"
    inp = inputs.from_annotations(src / "test_coco_wholebody.json", src)  # GT body; its part labels are ignored
    plan = make_plan(inp, None, 64)
    tasks = [task for chunk in plan.chunks for task in plan.tasks_of(chunk)]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            w, h = (int(v) for v in args.input_size.split("x"))
            model = random_student_onnx(args.preset, (w, h), Path(tmp))
        setups = {
            "mediapipe": "",
            "wholebody=onnx": f"wholebody=onnx:{model}",
            "self-training": f"wholebody=onnx:{model},hand=mediapipe,face=facemesh",
        }
        results = {name: run_setup(text, tasks, args.passes) for name, text in setups.items()}
    persons = sum(len(t.ann_ids) for t in tasks)
    print(f"model {model.name}; {len(tasks)} images, {persons} persons x {args.passes} passes, one thread per setup")
    base = results["mediapipe"]["persons_per_s"]
    print(f"{'setup':16} {'persons/s':>9} {'vs mp':>6} {'ms/person':>9} {'build s':>7}  teacher ms per person")
    for name, r in results.items():
        split = ", ".join(f"{p} {ms:.1f}" for p, ms in sorted(r["teacher_ms_per_person"].items()))
        print(f"{name:16} {r['persons_per_s']:9.2f} {r['persons_per_s'] / base:6.2f} {r['ms_per_person']:9.1f} "
              f"{r['build_s']:7.2f}  {split}")  # fmt: skip


if __name__ == "__main__":
    main()
