"""`wbt distill` end to end: plan the shards, run the work on an engine, assemble the outputs.

:func:`distill` checks the options and holds the output directory's lock; ``_distill``
orchestrates: plan (:mod:`~labeltool.distill.plan`), label the missing shards (``_label``),
assemble the outputs and gather the statistics in one pass over the shards (``_assemble``),
and write summary.json from them (:mod:`~labeltool.distill.summary`).

The local engine is a process pool whose workers build their teachers once (pool
initializer) and run :meth:`Distiller.label_image`; with one worker the work runs in this
process. Tasks are generated lazily in image-id order and results come back in that
order, so each shard is written as soon as its last image is done.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import orjson

from labeltool import __version__
from labeltool.distill.assemble import Outputs, assemble
from labeltool.distill.body import BodySource, ImageTask
from labeltool.distill.inputs import DistillInput
from labeltool.distill.native_log import NATIVE_LOG, native_stderr_to
from labeltool.distill.plan import Plan, make_plan
from labeltool.distill.shards import (
    DIGESTS_KEY,
    RUN_FILE,
    SHARD_DIR,
    ImageResult,
    check_input_digests,
    check_run,
    check_shard_images,
    shard_path,
    write_shard,
)
from labeltool.distill.summary import RunStats, build_summary, read_run_stats
from labeltool.distill.work import DistillConfig, Distiller
from labeltool.errors import UserError
from labeltool.io.atomic import RunLock, check_output_not_input, write_bytes_atomic
from labeltool.io.jsonfile import read_json
from labeltool.teachers.base import Teacher
from labeltool.versions import check_same_stack, installed_versions

OUTPUT_FILES = ("wholebody133.json", "halpe136.json", "labels.parquet", "errors.jsonl", "summary.json")
DEFAULT_SHARD_SIZE = 64

# An engine runs the per-image work: (tasks, config, body source, workers) -> results, in any order.
Engine = Callable[[Iterable[ImageTask], DistillConfig, BodySource, int], Iterator[ImageResult]]


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------ local engine

_WORKER: Distiller | None = None


def _init_worker(config: DistillConfig, body: BodySource) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    _WORKER = Distiller(config, body)


def _work(task: ImageTask) -> ImageResult:
    return _WORKER.label_image(task)


def run_local(
    tasks: Iterable[ImageTask],
    config: DistillConfig,
    body: BodySource,
    workers: int,
    teachers: Sequence[Teacher] | None = None,
) -> Iterator[ImageResult]:
    """Results of ``tasks`` in order: in this process for one worker, else a spawn pool (teachers built once per worker).

    ``teachers``: built teachers to run in this process (one worker only).
    """
    if workers <= 1 or teachers is not None:
        if workers > 1:
            raise ValueError("built teachers run in this process: workers must be 1")
        with Distiller(config, body, teachers) as distiller:
            for task in tasks:
                yield distiller.label_image(task)
        return
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(config, body))
    try:
        yield from pool.imap(_work, tasks, chunksize=1)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def write_shards(
    plan: Plan,
    pending: list[int],
    results: Iterable[ImageResult],
    shard_dir: Path,
    progress: Callable[[ImageResult], None] | None = None,
) -> None:
    """Collect the ``results`` of the ``pending`` shards' images (in any order) and write each shard once complete.

    A shard's results are written sorted by image id, so its content does not depend on the
    order an engine returns them in.
    """
    shard_of = {image_id: k for k in pending for image_id in plan.chunks[k]}
    waiting: dict[int, dict[int, ImageResult]] = {}
    for result in results:
        k = shard_of.get(result.image_id)
        if k is None or result.image_id in waiting.get(k, {}):
            raise RuntimeError(f"engine returned image {result.image_id}, which is not awaited")
        got = waiting.setdefault(k, {})
        got[result.image_id] = result
        if progress is not None:
            progress(result)
        if len(got) == len(plan.chunks[k]):
            write_shard(shard_dir, k, [got[i] for i in plan.chunks[k]])
            del waiting[k]
            for image_id in plan.chunks[k]:
                del shard_of[image_id]
    if shard_of:
        raise RuntimeError(f"engine stopped before returning {len(shard_of)} images")


class Progress:
    """tqdm bar over images with persons/s; prints nothing when disabled."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.start = time.perf_counter()
        self.persons = 0
        self.bar = tqdm(total=total, unit="img", desc="distill", disable=not enabled, dynamic_ncols=True)

    def __call__(self, result: ImageResult) -> None:
        self.persons += result.num_persons
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.persons / elapsed:.2f} persons/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------ orchestration


def distill(
    inp: DistillInput,
    out_dir: str | os.PathLike,
    config: DistillConfig,
    workers: int = 1,
    limit: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    layout: str = "both",
    overwrite: bool = False,
    progress: bool = True,
    engine: Engine = run_local,
    teachers: Sequence[Teacher] | None = None,
) -> dict:
    """Label ``inp`` into ``out_dir``; resumes from the shards a previous run left. Returns the summary.

    ``teachers``: already built teachers (named by ``config.teachers``) to run in this
    process with the local engine and one worker; by default each worker builds its own.
    """
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    if shard_size < 1:
        raise UserError(f"--shard-size {shard_size}: must be at least 1")
    if teachers is not None:
        if workers != 1 or engine is not run_local:
            raise ValueError("built teachers run in this process: the local engine with workers=1")
        engine = functools.partial(run_local, teachers=teachers)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out exists and is not a directory")
    inputs = {f"--{key}": inp.identity[key]["path"] for key in ("ann", "boxes") if key in inp.identity}
    check_output_not_input(out_dir, {**inputs, "--images": inp.images_dir}, (*OUTPUT_FILES, SHARD_DIR, NATIVE_LOG))
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out_dir)
    try:
        return _distill(inp, out_dir, config, workers=workers, limit=limit, shard_size=shard_size, layout=layout,
                        overwrite=overwrite, progress=progress, engine=engine)  # fmt: skip
    finally:
        lock.release()


def _distill(inp: DistillInput, out_dir: Path, config: DistillConfig, *, workers: int, limit: int | None,
             shard_size: int, layout: str, overwrite: bool, progress: bool, engine: Engine) -> dict:
    """Plan, label the missing shards, assemble the outputs, write the summary."""
    for name in OUTPUT_FILES:  # temp files a killed run left (never renamed, never read)
        for stale in out_dir.glob(f".{name}.*tmp"):
            stale.unlink()
    shard_dir = out_dir / SHARD_DIR
    plan = make_plan(inp, limit, shard_size)
    if not overwrite:
        _check_stack(shard_dir)
    digests = input_digests(inp)
    check_input_digests(shard_dir, digests, overwrite)
    check_run(shard_dir, {**_run_record(inp, config, plan, limit, shard_size), DIGESTS_KEY: digests}, overwrite)
    pending = [k for k in range(len(plan.chunks)) if not shard_path(shard_dir, k).exists()]
    waiting = set(pending)
    resumed = check_shard_images(shard_dir, [k for k in range(len(plan.chunks)) if k not in waiting], plan.path_of)
    wall = _label(plan, pending, inp, config, workers=workers, engine=engine, out_dir=out_dir, progress=progress)
    outputs = Outputs(out_dir, wholebody=layout in ("133", "both"), halpe=layout in ("136", "both"))
    stats = _assemble(inp, config, plan, pending, outputs, resumed)
    stats.wall_seconds = wall
    layouts = (("wholebody133.json", outputs.wholebody), ("halpe136.json", outputs.halpe))
    files = [p for p, on in layouts if on]
    summary = build_summary(inp, config, plan, stats, [*files, "labels.parquet", "errors.jsonl"], workers)
    write_bytes_atomic(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n", out_dir / "summary.json")
    for name, on in layouts:  # a previous run's other --layout would sit beside this run's outputs as if current
        if not on:
            (out_dir / name).unlink(missing_ok=True)
    return summary


def input_digests(inp: DistillInput) -> dict[str, dict]:
    """sha256 of the input files the labels depend on (annotations, boxes), for run.json's ``input_digests``.

    The images are checked per shard instead (:func:`~labeltool.distill.shards.check_shard_images`).
    """
    from labeltool.digests import file_digest

    return {
        f"--{key}": {"path": inp.identity[key]["path"], "sha256": file_digest(inp.identity[key]["path"])}
        for key in ("ann", "boxes")
        if key in inp.identity
    }


def _run_record(inp: DistillInput, config: DistillConfig, plan: Plan, limit: int | None, shard_size: int) -> dict:
    """What the shards are made from (shards/run.json): a resumed run must match it."""
    return {
        "input": inp.identity,
        "teachers": config.teachers.as_dict(file_names=True),  # model files by name; "models" has their digests
        "models": config.teachers.describe(body=inp.body.needs_teacher),  # a changed model file is another run
        "rules": config.rules.as_dict(),
        "limit": limit,
        "shard_size": shard_size,
        "images_to_label": plan.num_images,
        "wbt_version": __version__,
        "versions": installed_versions(),  # checked apart, by _check_stack, to name the package
    }


def _check_stack(shard_dir: Path) -> None:
    """Shards made with other library versions are not resumed: one line naming each package."""
    path = shard_dir / RUN_FILE
    if path.is_file():
        recorded = read_json(path)
        check_same_stack(recorded.get("versions") if isinstance(recorded, dict) else None, path)


def _label(plan: Plan, pending: list[int], inp: DistillInput, config: DistillConfig, *, workers: int, engine: Engine,
           out_dir: Path, progress: bool) -> float:
    """Run the ``pending`` shards' tasks on ``engine`` and write their shards; returns the wall time."""
    start = time.perf_counter()
    with native_stderr_to(out_dir / NATIVE_LOG):
        bar = Progress(sum(len(plan.chunks[k]) for k in pending), progress)
        try:
            tasks = (task for k in pending for task in plan.tasks_of(plan.chunks[k]))
            results = engine(tasks, config, inp.body, workers)
            try:
                write_shards(plan, pending, results, out_dir / SHARD_DIR, bar)
            finally:  # on an error (a full disk) too: free the teachers / the pool now, not at interpreter exit
                if hasattr(results, "close"):
                    results.close()
        finally:
            bar.close()
    return time.perf_counter() - start


def _assemble(
    inp: DistillInput, config: DistillConfig, plan: Plan, done_now: list[int], outputs: Outputs, known: dict
) -> RunStats:
    """The output files and errors.jsonl from the shards, in one pass (footers, then rows); returns the run's
    statistics. ``known``: the resumed shards' footers, read by the resume check."""
    start = time.perf_counter()
    shard_dir = outputs.out_dir / SHARD_DIR
    stats = read_run_stats(plan, shard_dir, done_now, known)
    stats.counts, images, stats.errors = assemble(
        inp.dataset,
        plan.chunks,
        plan.keep_image_ids,
        shard_dir,
        config.teachers.sources(),
        outputs,
        stats.image_info,
        inp.extra,
        inp.extra_names,
    )
    stats.images_in_output = len(images)
    _write_errors(outputs.out_dir / "errors.jsonl", stats.errors)
    stats.assemble_seconds = time.perf_counter() - start
    return stats


def _write_errors(path: Path, errors: list[dict]) -> None:
    write_bytes_atomic(b"".join(orjson.dumps(e) + b"\n" for e in errors), path)
