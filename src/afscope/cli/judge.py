"""``afscope judge run``: label generated responses (comply/refuse/partial, AF, alignment and
coherence scores) with the offline rules and an LLM judge; resumable."""

from __future__ import annotations

from typing import Any

import click

from afscope.cli import console
from afscope.cli.options import config_command, quiet_unless_main
from afscope.judge.config import JudgeRunConfig


@click.group("judge")
def command() -> None:
    """Judge responses: rules (offline) and an LLM judge (seed 003's alignment/coherence)."""


def _judge_config(cfg: JudgeRunConfig, launch: Any) -> JudgeRunConfig:
    """``cfg`` for this process of a launch: its shard, and for a local (transformers) LLM judge
    the rank's GPU unless the judge's ``device`` was given."""
    update: dict[str, Any] = {"shard": launch.spec}
    llm = cfg.llm
    if cfg.uses_llm and llm.backend == "transformers" and "device" not in llm.model_fields_set:
        update["llm"] = llm.model_copy(update={"device": launch.device(None)})
    return cfg.model_copy(update=update)


@command.command("run")
@config_command(JudgeRunConfig)
def run(cfg: JudgeRunConfig) -> None:
    """Judge the rows of --data (JSONL: id, prompt, response) into --out; rerun to resume.

    Shards: --shard i/n, torchrun / accelerate launch ranks or Slurm array tasks each judge their
    share; the same command as one process (rank 0 under torchrun) takes them in and finishes.
    """
    from afscope.distributed import launched
    from afscope.judge.run import run_judge

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = _judge_config(cfg, launch)
        out = run_judge(mine)
        if launch.collective:
            launch.barrier()  # every rank's judged rows are on disk
            if not launch.is_main:
                return
            out = run_judge(mine.model_copy(update={"shard": None}))
    if mine.shard is not None and not launch.collective:
        console.print(f"shard {launch.spec} done: {cfg.out} (when all shards are done, run the "
                      "same command once as one process to finish)", highlight=False)
        return
    s, a = out["stats"], out["agreement"]
    kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
    rate = "n/a" if a["behaviour_agreement"] is None else f"{a['behaviour_agreement']:.1%}"
    console.print(
        f"judged {s['done']} rows ({s['skipped']} already done, {s['parse_failures']} parse "
        f"failures, {s['backend_errors']} backend errors); judge vs rules on {a['n']} rows: "
        f"agreement {rate}, kappa {kappa}\n{cfg.out}", highlight=False)
