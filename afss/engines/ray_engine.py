"""The Ray engine: a large pool labelled, refined or predicted across many GPUs and machines.

The images still to do become a Ray dataset (one row per image: its record, its file path and, for
refine, its given labels); ``map_batches`` runs them through a fixed pool of actors, each of which
builds its teacher or student **once** (`afss.engines.base.TeacherJob.setup`) and then reads and
labels batch after batch; ``num_gpus`` per actor gives each its own GPU. Results come back in input
order (``preserve_order``) as the journal's own JSON lines, and the driver journals every batch as it
arrives, so a run killed anywhere is continued by the same command: only the images that are not in
the journal go out again, and none is written twice. For a deterministic teacher the output is
identical to the local engine's.

Ray is an optional extra (``pip install 'afss[ray]'``, Apache-2.0). Without ``address`` a local Ray
is started on this machine's cores; with one (``auto``, ``HOST:6379``, ``ray://HOST:10001``) the run
joins that cluster, and every worker must see the image files under the same paths (a shared file
system) and have afss installed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from afss.engines.base import TeacherJob, load_rgb_file
from afss.errors import AfssError
from afss.types import ImageLabels, LabelSet

__all__ = ["RayEngine"]

log = logging.getLogger(__name__)

INSTALL_HINT = "--engine ray needs Ray, an optional extra: pip install 'afss[ray]' (or pip install 'ray[data]')"


def worker_afss_error(error: BaseException) -> AfssError | None:
    """The one-line `AfssError` a worker raised (e.g. a teacher that failed on every image), found
    inside the exceptions Ray wraps it in; as Ray delivers it, its text is a worker's traceback."""
    from ray.exceptions import RayError

    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, AfssError) and not isinstance(e, RayError):
            return AfssError(str(e))
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise AfssError(INSTALL_HINT) from e
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, in one line, for an address nothing listens on (Ray itself retries for a minute)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise AfssError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as e:
        raise AfssError(f"--ray-address {address}: cannot reach the Ray cluster ({e.strerror or e}); is `ray start "
                        "--head` running there, and the port open?") from e


class _Worker:
    """One Ray actor: builds the job's model once, then reads and processes batch after batch."""

    def __init__(self, job: TeacherJob) -> None:
        job.setup()
        self.job = job

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from afss.io.coco import entries_to_images, entry_json

        records = entries_to_images(list(batch["record"]), where="<ray batch>")
        priors = {}
        for prior in batch["prior"]:
            if prior:
                im = entries_to_images([prior], where="<ray batch>")[0]
                priors[im.file_name] = im
        loaded = [load_rgb_file(path, im) for path, im in zip(batch["path"], records, strict=True)]
        results = self.job(records, loaded, priors)
        return {"result": [entry_json(im) for im in results]}


class RayEngine:
    """Run jobs on Ray Data (see the module docstring).

    Args:
        address: a Ray cluster to join; ``None`` starts a local Ray on this machine.
        num_workers: actors (default: one per GPU with ``gpus_per_worker``, else one per CPU core).
        gpus_per_worker: GPUs each actor holds (0: CPU teachers, e.g. the photometric one; 1: one
            VLM teacher or student per GPU).
        cpus_per_worker: CPU cores each actor holds.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_workers: int | None = None,
                 gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0) -> None:
        if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                        or not 1 <= num_workers <= 10_000):
            raise AfssError(f"--num-workers must be a whole number in [1, 10000], got {num_workers!r}")
        if not 0 <= gpus_per_worker <= 64 or not 0 < cpus_per_worker <= 256:
            raise AfssError(f"--gpus-per-worker must be in [0, 64] and cpus per worker in (0, 256], got "
                            f"{gpus_per_worker}, {cpus_per_worker}")
        self.address, self.num_workers = address, num_workers
        self.gpus_per_worker, self.cpus_per_worker = float(gpus_per_worker), float(cpus_per_worker)
        self.workers = 0

    def start(self) -> Any:
        """Connect to (or start) Ray; returns the module. Fails in one line, before any work."""
        ray = _import_ray()
        if self.address is not None:
            _check_reachable(self.address)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if self.address is None:
                kwargs["num_cpus"] = os.cpu_count() or 1
                # a cluster of this process alone, on this machine: no token (Ray would write it to ~/.ray)
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise AfssError(f"Ray: cannot start or join {self.address or 'a local cluster'}: "
                                f"{str(e).splitlines()[0][:200]}") from e
        for name in ("ray", "ray.data"):  # Ray Data's INFO lines would drown afss's own progress
            logging.getLogger(name).setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        resources = ray.cluster_resources()
        if self.num_workers is not None:
            self.workers = self.num_workers
        elif self.gpus_per_worker > 0:
            self.workers = max(1, int(resources.get("GPU", 0) // self.gpus_per_worker))
        else:
            self.workers = max(1, int(resources.get("CPU", 1) // self.cpus_per_worker))
        if self.gpus_per_worker > resources.get("GPU", 0):
            raise AfssError(f"--gpus-per-worker {self.gpus_per_worker:g}: the Ray cluster has "
                            f"{resources.get('GPU', 0):g} GPUs")
        return ray

    def run(self, images: LabelSet, todo: Sequence[ImageLabels], job: Any, *,
            batch_size: int) -> Iterator[list[ImageLabels]]:
        from afss.io.coco import entries_to_images, entry_json

        if not isinstance(job, TeacherJob):
            raise AfssError("the Ray engine runs teacher jobs (label, refine, predict) only")
        job.check_portable()
        ray = self.start()
        if not todo:
            return
        rows = []
        for im in todo:
            prior = job.prior(im.file_name)
            rows.append({"record": entry_json(im), "path": os.path.abspath(images.image_path(im)),
                         "prior": entry_json(prior) if prior is not None else ""})
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch_size, 4 * self.workers * 8)))
        out = ds.map_batches(_Worker, fn_constructor_args=(job,), batch_size=batch_size, concurrency=self.workers,
                             num_gpus=self.gpus_per_worker or None, num_cpus=self.cpus_per_worker,
                             batch_format="numpy", zero_copy_batch=True)
        t0, n = time.perf_counter(), 0
        try:
            for batch in out.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
                results = entries_to_images(list(batch["result"]), where="<ray results>")
                n += len(results)
                log.debug("ray: %d images, %.1f img/s on %d workers", n, n / max(time.perf_counter() - t0, 1e-9),
                          self.workers)
                yield results
        except Exception as e:
            original = worker_afss_error(e)
            if original is None:
                raise
            raise original from None
