"""Accounting and summary.json: what a run did, counted once, then written as one document.

:func:`read_run_stats` reads every shard's footer once (image sizes, errors, timing: the
shards of this invocation and those a killed run left alike); the assembly adds the
per-person counts while it streams the rows; :func:`build_summary` only formats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labeltool import __version__
from labeltool.distill.assemble import Counts, part_summary
from labeltool.distill.plan import Plan
from labeltool.distill.shards import read_shard_meta, shard_path
from labeltool.versions import installed_versions

TIMED_PARTS = ("body", "face", "hand", "foot")  # listed first in the per-teacher timing; others follow


@dataclass
class Timing:
    """Sums over shards of what the workers measured."""

    images: int = 0
    persons: int = 0
    teacher_seconds: float = 0.0
    work_seconds: float = 0.0

    def add(self, t: dict) -> None:
        self.images += t["images"]
        self.persons += t["persons"]
        self.teacher_seconds += t["teacher_seconds"]
        self.work_seconds += t["work_seconds"]


@dataclass
class RunStats:
    """Everything summary.json reports, gathered with one read of each shard."""

    shards: int
    shards_done_now: int
    image_info: dict[int, dict]  # image id -> {id, height, width, error} from the shards
    all_shards: Timing = field(default_factory=Timing)
    this_run: Timing = field(default_factory=Timing)  # the shards labelled by this invocation
    part_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMED_PARTS, 0.0))
    wall_seconds: float = 0.0  # labelling, this invocation
    assemble_seconds: float = 0.0
    counts: Counts = field(default_factory=Counts)  # filled by the assembly
    images_in_output: int = 0
    errors: list[dict] = field(default_factory=list)


def read_run_stats(plan: Plan, shard_dir: Path, done_now: list[int], known: dict | None = None) -> RunStats:
    """Image sizes / errors and timing of every shard of ``plan`` (footers only, each read once;
    ``known``: footers already read, by shard, as the resume check did)."""
    done = set(done_now)
    known = known or {}
    stats = RunStats(shards=len(plan.chunks), shards_done_now=len(done_now), image_info={})
    for k in range(len(plan.chunks)):
        meta = known[k] if k in known else read_shard_meta(shard_path(shard_dir, k))
        for im in meta.images:
            stats.image_info[im["id"]] = im
        stats.all_shards.add(meta.timing)
        if k in done:
            stats.this_run.add(meta.timing)
        for part, seconds in meta.timing.get("part_seconds", {}).items():
            stats.part_seconds[part] = stats.part_seconds.get(part, 0.0) + seconds
    return stats


def build_summary(inp, config, plan: Plan, stats: RunStats, output_files: list[str], workers: int) -> dict:
    """summary.json of a run (``inp``: DistillInput, ``config``: DistillConfig)."""
    counts, sources = stats.counts, config.teachers.sources()
    now, total, wall = stats.this_run, stats.all_shards, stats.wall_seconds
    per_person = total.persons or None
    return {
        "wbt_version": __version__,
        "versions": installed_versions(),  # the libraries behind the pixels and numbers (labeltool.versions)
        "input": inp.identity,
        "dataset": inp.describe(),
        "outputs": output_files,
        "images": {
            "in_output": stats.images_in_output,
            "labelled": plan.num_images - len(stats.errors),
            "failed": len(stats.errors),
        },
        "persons": {
            "in_output": counts.persons,
            "labelled": counts.distilled,
            "carried_through_crowd": counts.crowd,
            "carried_through_no_body_keypoints": counts.no_body,
            "in_failed_images": counts.failed_image,
        },
        "parts": part_summary(counts),
        "points_by_source": {sources[k]: v for k, v in sorted(counts.sources.items())},
        "sources": sources,
        "models": config.teachers.describe(body=inp.body.needs_teacher),
        "ensembles": {p: [s.source for s in specs] for p, specs in config.teachers.fillers().items() if len(specs) > 1},
        "body_from": inp.body.description,
        "small_toe": _small_toe_note(config),
        "halpe_head": "no offline teacher predicts the top of the head: Halpe 'head' stays unlabelled",
        "rules": config.rules.as_dict(),
        "run": {
            "workers": workers,
            "shards": stats.shards,
            "shards_done_now": stats.shards_done_now,
            "shards_resumed": stats.shards - stats.shards_done_now,
            "images_done_now": now.images,
            "persons_done_now": now.persons,
            "wall_seconds": round(wall, 3),
            "assemble_seconds": round(stats.assemble_seconds, 3),
            "images_per_second": round(now.images / wall, 3) if wall > 0 and now.images else None,
            "persons_per_second": round(now.persons / wall, 3) if wall > 0 and now.persons else None,
            "teacher_seconds_per_person": round(total.teacher_seconds / per_person, 4) if per_person else None,
            "teacher_seconds_per_person_by_teacher": {
                part: round(v / per_person, 4) for part, v in stats.part_seconds.items() if v and per_person
            },
            "work_seconds_per_image": round(total.work_seconds / total.images, 4) if total.images else None,
        },
    }


def _small_toe_note(config) -> str:
    foot = config.teachers.spec("foot")
    whole = [s.source for s in config.teachers.fillers()["foot"] if s.part != "foot"]
    if whole:
        return f"the small toe is predicted by the whole-body model ({', '.join(whole)})" + (
            f"; the foot teacher's is ESTIMATED (source '{foot.source}:small_toe_estimated')"
            if foot.backend != "none" and config.teachers.small_toe == "estimate" else "")
    if foot.backend != "none" and config.teachers.small_toe == "estimate":
        return (
            "no offline model predicts the small toe: it is ESTIMATED from the foot's 3D pose and foot proportions "
            f"(source '{foot.source}:small_toe_estimated', half the foot's confidence)"
        )
    return "no offline model predicts the small toe: left_small_toe / right_small_toe are left unlabelled"
