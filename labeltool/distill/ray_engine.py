"""``wbt distill --engine ray``: the same per-image work, scheduled by Ray Data on a local or remote cluster.

The images to label become a Ray dataset of pickled :class:`ImageTask` records; a pool of
actors (one CPU each) builds the teachers once per actor and runs
:meth:`Distiller.label_image`, exactly the function the local engine runs. Results stream
back to this process, which writes the shards as they complete, so ``--resume`` and the
final assembly are the engine-independent code of :mod:`labeltool.distill.pipeline` (a run
started locally can be finished on Ray and the reverse). Ray restarts an actor whose
process dies and retries its task; an image's result depends only on the image, so a retry
gives the same bytes.

Ray is an optional extra (``pip install -e '.[ray]'``), imported only here.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator

import numpy as np

from labeltool.distill.body import BodySource, ImageTask
from labeltool.distill.shards import ImageResult
from labeltool.distill.work import DistillConfig, Distiller
from labeltool.errors import UserError


def import_ray():
    """``ray`` with Ray Data, or a one-line :class:`UserError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray Data: pip install 'ray[data]>=2.40'") from None
    return ray


class RayLabeler:
    """A Ray Data actor: teachers built once in ``__init__``, one batch of pickled tasks per call."""

    def __init__(self, config: DistillConfig, body: BodySource):
        import cv2

        cv2.setNumThreads(1)
        self.distiller = Distiller(config, body)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(self.distiller.label_image(pickle.loads(t))) for t in batch["task"]]
        return {"image_id": batch["image_id"], "result": np.array(results, dtype=object)}


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` ('auto' = the one this machine belongs to), or start a local one."""
    ray = import_ray()
    if ray.is_initialized():
        return
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        raise UserError(f"--address {address}: cannot connect to a Ray cluster ({err})") from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error at once for an address nobody listens on (ray.init would retry for minutes)."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UserError(f"--address {address}: no Ray cluster answers there ({err.strerror or err})") from None


def cluster_cpus() -> int:
    """CPUs of the connected cluster (the default number of actors)."""
    ray = import_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_ray(
    tasks: Iterable[ImageTask], config: DistillConfig, body: BodySource, workers: int, address: str | None = None
) -> Iterator[ImageResult]:
    """Results of ``tasks`` (in completion order) from ``workers`` Ray actors; the engine argument of distill()."""
    ray = import_ray()
    connect(address)
    items = [{"image_id": t.image_id, "task": pickle.dumps(t)} for t in tasks]
    if not items:
        return
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # Ray Data gives its actors max_restarts=-1 and max_task_retries=-1: a dead actor is
    # restarted and its image retried.
    labelled = ds.map_batches(
        RayLabeler,
        fn_constructor_args=(config, body),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for row in labelled.iter_rows():
        yield pickle.loads(row["result"])
