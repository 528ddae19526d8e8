"""One command, many processes: which shard a process does, on which device, when all are done.

afscope has no scheduler of its own. The launchers people already use start the processes and
say, in the environment, which one each is; this module only reads that:

- ``torchrun`` / ``accelerate launch`` set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. The ranks
  run together: each does its shard, they meet at a barrier (``torch.distributed``), and rank 0
  merges the shards into the final result.
- A Slurm job array (``sbatch --array=a-b[:s]``) sets ``SLURM_ARRAY_TASK_ID`` with
  ``SLURM_ARRAY_TASK_MIN``, ``_STEP``, ``_MAX`` and ``_COUNT``; task ``a + i*s`` does shard
  ``i`` of ``COUNT``. Tasks may not run at the same time, so there is no barrier: a separate merge
  step (``afscope extract merge``, ``afscope generate merge``) runs after the array.
- ``--shard i/n`` chooses the shard by hand. It wins over an environment that says nothing (or
  agrees); a flag that contradicts the launcher is a :class:`~afscope.errors.ConfigError`, since
  every rank would get the same flag and do the same work.

A shard is a fixed slice of the work (chunks ``k % n == i`` of a cache, prompts ``i::n``), each
shard's output is resumable on its own, and the merge only joins files, so a run that lost a
process is finished by running the same command again.

>>> launch = resolve(None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
>>> launch.shard, launch.collective
((1, 2), True)

This module is a low layer: it imports nothing of afscope but its errors.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

from afscope.errors import ConfigError

Launcher = Literal["single", "flag", "torchrun", "slurm_array"]

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
              "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")
TIMEOUT_VAR = "AFSCOPE_BARRIER_TIMEOUT_S"
DEFAULT_BARRIER_TIMEOUT_S = 24 * 3600
"""Ranks wait at the barrier for the slowest shard, which can be hours behind (a resumed rank whose
chunks were all done arrives at once); torchrun ends the others when a rank dies, so a long wait
only ever follows a hung rank."""

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based ``i``) or ``(i, n)`` -> ``(i, n)``; None (no shard) stays None."""
    if spec is None:
        return None
    m = _SHARD.match(spec) if isinstance(spec, str) else None
    i, n = (int(m.group(1)), int(m.group(2))) if m else (spec if isinstance(spec, tuple)
                                                          else (-1, 0))
    if not 0 <= i < n:
        raise ConfigError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def _check_shard(spec: str | None) -> str | None:
    parse_shard(spec)
    return spec


ShardSpec = Annotated[str | None, AfterValidator(_check_shard)]
"""The ``shard`` field of every shardable command's config: ``"i/n"`` or None, checked once here."""


@dataclass(frozen=True)
class Launch:
    """How this process was started: shard ``index`` of ``count``, and its node-local rank.

    ``launcher`` is ``"single"`` (one process: no shard), ``"flag"`` (``--shard i/n``),
    ``"torchrun"`` (also ``accelerate launch``) or ``"slurm_array"``.
    """

    launcher: Launcher = "single"
    index: int = 0
    count: int = 1
    local_rank: int = 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """``(i, n)`` for the shard flags of the commands; None for a single process."""
        return None if self.launcher == "single" else (self.index, self.count)

    @property
    def spec(self) -> str | None:
        """The shard as a ``--shard`` value, ``"i/n"`` (None for a single process)."""
        return None if self.shard is None else f"{self.index}/{self.count}"

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that merges and reports."""
        return self.index == 0

    @property
    def collective(self) -> bool:
        """All shards run now, together: barrier, then rank 0 merges (torchrun/accelerate)."""
        return self.launcher == "torchrun" and self.count > 1

    def device(self, requested: str | None, default: str = "cpu") -> str:
        """The torch device of this process.

        ``requested`` is the user's ``--device`` (None when not given). A launched process
        (torchrun, Slurm array) that was given none, or plain ``cuda``, gets ``cuda:LOCAL_RANK``
        when CUDA is available (Slurm gives each array task its own ``CUDA_VISIBLE_DEVICES``, so
        there it is ``cuda:0``); any other explicit device is kept as given.
        """
        launched = self.launcher in ("torchrun", "slurm_array")
        if requested not in (None, "cuda"):
            return str(requested)
        if not launched:
            return requested or default
        import torch

        if not torch.cuda.is_available():
            if requested == "cuda":
                raise ConfigError("--device cuda: CUDA is not available on this machine")
            return default
        n = torch.cuda.device_count()
        if self.local_rank >= n:
            raise ConfigError(f"LOCAL_RANK={self.local_rank} but only {n} CUDA device(s) are "
                              f"visible: start at most {n} processes per node, or give --device")
        return f"cuda:{self.local_rank}"

    def barrier(self) -> None:
        """Wait for every rank (a no-op unless :attr:`collective`); needs :func:`launched`."""
        if self.collective:
            import torch.distributed as dist

            dist.barrier()


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env[name]
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r}: expected an integer") from None


def _from_torchrun(env: Mapping[str, str]) -> Launch | None:
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return None
    missing = [v for v in ("RANK", "WORLD_SIZE") if v not in env]
    if missing:
        raise ConfigError(f"environment: {', '.join(missing)} missing while "
                          f"{'RANK' if 'RANK' in env else 'WORLD_SIZE'} is set (torchrun and "
                          "accelerate launch set RANK, WORLD_SIZE and LOCAL_RANK)")
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}: "
                          "expected 0 <= RANK < WORLD_SIZE")
    if world == 1:
        return Launch("single", 0, 1, local)
    return Launch("torchrun", rank, world, local)


def _from_slurm(env: Mapping[str, str]) -> Launch | None:
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    if "SLURM_ARRAY_TASK_COUNT" not in env:
        raise ConfigError("environment: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is "
                          "not; pass --shard i/n instead")
    task, count = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_COUNT")
    low = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
    step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
    high = _int(env, "SLURM_ARRAY_TASK_MAX") if "SLURM_ARRAY_TASK_MAX" in env else None
    offset = task - low
    regular = (count >= 1 and step >= 1 and offset >= 0 and offset % step == 0
               and offset // step < count
               and (high is None or high == low + (count - 1) * step))
    if not regular:
        raise ConfigError(
            f"Slurm array task {task} (min {low}, max {high}, step {step}, count {count}): the "
            "task ids are not one range, so they do not number the shards; submit "
            "--array=0-N[:step] (a range), or pass --shard i/n yourself")
    if count == 1:
        return Launch("single", 0, 1, 0)
    return Launch("slurm_array", offset // step, count, 0)


def from_env(env: Mapping[str, str] | None = None) -> Launch:
    """The :class:`Launch` the environment describes (``os.environ`` by default)."""
    env = os.environ if env is None else env
    torchrun, slurm = _from_torchrun(env), _from_slurm(env)
    if torchrun is not None and slurm is not None and torchrun.count > 1 and slurm.count > 1:
        raise ConfigError(
            f"both torchrun/accelerate (RANK={torchrun.index}, WORLD_SIZE={torchrun.count}) and "
            f"a Slurm array (task {slurm.index} of {slurm.count}) split this run; use one: "
            "an array of single-process tasks, or one torchrun job")
    if torchrun is not None and torchrun.count > 1:
        return torchrun
    if slurm is not None and slurm.count > 1:
        return slurm
    return torchrun or slurm or Launch()


def training_launch(env: Mapping[str, str] | None = None) -> Launch:
    """The :class:`Launch` of a training command: torchrun / accelerate ranks only.

    The ranks of one training run share every optimizer step (DDP through the HF Trainer, which
    joins the process group itself), so only ``RANK`` / ``WORLD_SIZE`` make one run of many
    processes. Slurm array tasks are separate jobs (e.g. a sweep of trainings, one per task) and
    never split one run: their variables are ignored here.
    """
    env = os.environ if env is None else env
    return _from_torchrun(env) or Launch()


def split_batch(batch_size: int, launch: Launch, field: str = "batch_size") -> int:
    """Examples per process per step: the global ``batch_size`` over ``launch.count`` processes.

    The global batch is what the config says whatever the number of processes, so a run on N
    processes takes the steps one process would; it must divide evenly.
    """
    if batch_size % launch.count:
        raise ConfigError(
            f"field {field!r}: {batch_size} is the global batch, split over WORLD_SIZE="
            f"{launch.count} processes, so it must be a multiple of {launch.count} (e.g. "
            f"{launch.count * max(1, round(batch_size / launch.count))})")
    return batch_size // launch.count


def _source(launch: Launch) -> str:
    if launch.launcher == "torchrun":
        return f"RANK={launch.index} and WORLD_SIZE={launch.count} (torchrun/accelerate)"
    return f"the Slurm array (task {launch.index} of {launch.count})"


def resolve(shard: str | None = None, env: Mapping[str, str] | None = None) -> Launch:
    """This process's :class:`Launch`: the ``--shard`` flag if given, else the environment.

    A flag that names another shard than a multi-process launcher is an error; one that agrees
    keeps the launcher (and so its barrier and merge).
    """
    launch = from_env(env)
    if shard is None:
        return launch
    i, n = parse_shard(shard)
    if launch.count > 1:
        if (i, n) != (launch.index, launch.count):
            raise ConfigError(
                f"--shard {i}/{n} clashes with {_source(launch)}, which makes this process shard "
                f"{launch.index}/{launch.count}: drop --shard and let the launcher split the "
                "work, or run without the launcher")
        return launch
    return Launch("flag", i, n, launch.local_rank)


def barrier_timeout(env: Mapping[str, str] | None = None) -> _dt.timedelta:
    env = os.environ if env is None else env
    seconds = _int(env, TIMEOUT_VAR) if TIMEOUT_VAR in env else DEFAULT_BARRIER_TIMEOUT_S
    if seconds <= 0:
        raise ConfigError(f"environment variable {TIMEOUT_VAR}={seconds}: expected seconds > 0")
    return _dt.timedelta(seconds=seconds)


@contextlib.contextmanager
def launched(shard: str | None = None, env: Mapping[str, str] | None = None) -> Iterator[Launch]:
    """:func:`resolve` the launch; under torchrun/accelerate also join the process group.

    The group is created here only when none exists (a script that already called
    ``init_process_group``, e.g. through ``accelerate.Accelerator``, keeps its own) and is
    destroyed on exit. It uses gloo: the only collective is a barrier, which moves no tensors, and
    gloo needs neither a GPU per rank nor NCCL's watchdog (which would end a long wait).
    """
    launch = resolve(shard, env)
    own = False
    if launch.collective:
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError("started by torchrun/accelerate, but this torch has no "
                              "torch.distributed")
        if dist.is_initialized():
            if (dist.get_rank(), dist.get_world_size()) != (launch.index, launch.count):
                raise ConfigError(
                    f"torch.distributed is initialized as rank {dist.get_rank()} of "
                    f"{dist.get_world_size()}, but the environment says {launch.spec}")
        else:
            dist.init_process_group(backend="gloo", rank=launch.index, world_size=launch.count,
                                    timeout=barrier_timeout(env))
            own = True
    try:
        yield launch
    finally:
        if own:
            import torch.distributed as dist

            dist.destroy_process_group()
