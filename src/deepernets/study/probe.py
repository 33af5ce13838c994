"""The speed probe: a few timed training steps of a run's setup, alone, or as N jobs at once (`jobs: N`)."""

import contextlib
import functools
import multiprocessing
import signal
import statistics
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from deepernets.config import RunConfig
from deepernets.errors import UserError

BARRIER_TIMEOUT_S = 600  # the probe jobs load their data before timing: a job that never arrives has failed


@dataclass
class Probe:
    images_per_s: float  # training speed measured over a few real steps
    split_images: int  # the whole training split: a larger subset is all of it
    test_images: int
    low_res_images_per_s: float | None = None  # the same at `low_res` pixels, where the run has any


def probe(config: RunConfig, ready: Callable[[], object] = lambda: None) -> Probe:
    """Time a few training steps of the run's model on its data; `ready` is called just before the timing starts."""
    from deepernets.train.setup import build_local_parts
    from deepernets.train.speed import measure_speed

    fixed = config.replace(lr=0.01)  # `lr: auto` needs no range test just to time a few steps
    parts, precision = build_local_parts(fixed)
    ready()
    # 4 warm-up steps: the first ones of a process run slow (measured: 341 against 450 img/s after 2 only). 30 timed
    # steps, not 10: with 10, the main job's probe misjudged a 12-minute study by +9% and -12% on one AMD EPYC
    speed = measure_speed(parts, fixed, precision, steps=30, warmup=4)
    low_res_speed = None
    if config.low_res:  # the first epochs' smaller batches, through the model as training builds it (for full size)
        parts.train_batches.set_epoch(0, size=config.low_res)
        low_res_speed = measure_speed(parts, fixed, precision, steps=30, warmup=4)
    return Probe(speed, len(parts.dataset.train_labels), parts.test_count, low_res_speed)


def cached(probe: Callable[[RunConfig], Probe]) -> Callable[[RunConfig], Probe]:
    """The probe, run once for all the runs that train alike (a subset changes how long, not how fast)."""
    probes: dict[tuple, Probe] = {}

    def probe_once(c: RunConfig) -> Probe:
        key = (c.model, c.dataset, c.image_size, c.low_res, c.test_subset, c.batch_size, c.precision,
               str(c.model_options))  # fmt: skip
        if key not in probes:
            probes[key] = probe(c)
        return probes[key]

    return probe_once


def threads_per_job(jobs: int) -> int:
    """Each of `jobs` jobs gets an equal share of the threads torch would use here, at least one."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def jobs_description(jobs: int) -> str:
    """ "2 jobs at once, 1 CPU thread each": how a study of `jobs` jobs trains here."""
    threads = threads_per_job(jobs)
    return f"{jobs} jobs at once, {threads} CPU thread{'s' * (threads > 1)} each"


@contextlib.contextmanager
def probing(jobs: int) -> Iterator[Callable[[RunConfig], Probe]]:
    """The probe as `jobs` jobs train: in `jobs` processes at once, each on its share of the threads, timing together;
    their speeds averaged. Jobs slow each other down (they share caches and memory bandwidth), so a probe alone would
    promise more than they give. Each configuration is probed once (see `cached`); the processes start at the first
    probe, so a study that needs none (no budget, or one already sized) starts none. The caller has loaded the data
    (runner.check_setup), so that the jobs find it on disk instead of each downloading it."""
    if jobs == 1:
        yield cached(probe)
        return
    with contextlib.ExitStack() as stack:

        @functools.cache
        def pool() -> tuple[ProcessPoolExecutor, threading.Barrier]:
            context = multiprocessing.get_context("spawn")  # forking a process with torch's threads is unsafe
            barrier = context.Barrier(jobs, timeout=BARRIER_TIMEOUT_S)
            executor = ProcessPoolExecutor(
                jobs, context, initializer=_start_probe_job, initargs=(threads_per_job(jobs), barrier)
            )
            return stack.enter_context(executor), barrier

        def probe_together(config: RunConfig) -> Probe:
            executor, barrier = pool()
            barrier.reset()  # a barrier broken by an earlier failure would fail every probe after it
            futures = [executor.submit(_probe_when_all_are_ready, config) for _ in range(jobs)]
            errors = [e for e in (f.exception() for f in futures) if e is not None]
            if errors:  # the job that failed first, not the others that it left waiting at the barrier
                error = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
                if isinstance(error, BrokenProcessPool):
                    raise UserError(f"a probe job ended unexpectedly ({error}): run the study with fewer --jobs")
                raise error
            probes = [f.result() for f in futures]
            speed = statistics.mean(p.images_per_s for p in probes)
            low_res_speed = statistics.mean(p.low_res_images_per_s for p in probes) if config.low_res else None
            return Probe(speed, probes[0].split_images, probes[0].test_images, low_res_speed)

        yield cached(probe_together)


_start_together: threading.Barrier | None = None  # in a probe job's process: the barrier all of them time from


def _start_probe_job(threads: int, start_together: threading.Barrier) -> None:
    global _start_together
    import torch

    from deepernets.train.cpu_speed import keep_freed_memory_mapped

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it shuts the pool down
    keep_freed_memory_mapped()  # as the deepernets command does in every job
    torch.set_num_threads(threads)
    _start_together = start_together


def _probe_when_all_are_ready(config: RunConfig) -> Probe:
    try:
        return probe(config, ready=_start_together.wait)
    except BaseException:
        _start_together.abort()  # the other jobs waiting to time with this one fail at once instead of hanging
        raise
