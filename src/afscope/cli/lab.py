"""``afscope lab``: organism, context ablation and steering on one model -> behaviour.json."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.lab.config import LabConfig


@click.command("lab")
@config_command(LabConfig)
@click.pass_context
def command(ctx: click.Context, cfg: LabConfig) -> None:
    """Train an AF organism and compare its compliance gap with the base model's, ablate the
    monitoring cue, sweep a steering vector -> OUT/behaviour.json and the HTML report (whose
    path is printed last; a run dir that also holds a study's results.json gets both)."""
    from afscope.lab import BEHAVIOUR_FILE, run_lab
    from afscope.report import write_report
    from afscope.runs import default_run_dir

    if cfg.out is None:
        cfg = cfg.model_copy(update={"out": default_run_dir("lab")})
    doc = run_lab(cfg)
    if not ctx.obj.get("quiet"):
        for line in summary_lines(doc):
            console.print(line, highlight=False, markup=False)
        console.print(str(cfg.out / BEHAVIOUR_FILE), highlight=False, markup=False)
    click.echo(str(write_report(cfg.out)))


def _ci(x: dict | None) -> str:
    return "n/a" if x is None else f"{x['value']:+.2f} [{x['lo']:+.2f}, {x['hi']:+.2f}]"


def summary_lines(doc: dict) -> list[str]:
    """One line per result of a behaviour.json document."""
    lines = []
    org = doc.get("organism")
    if org:
        t = org["train"]
        lines.append(f"organism: {t['steps']} steps, loss {t['first_loss']:.3f} -> "
                     f"{t['last_loss']:.3f}")
        for m in org["models"]:
            lines.append(f"  compliance gap ({m['name']}): {_ci(m['gap'])}  n={m['n_units']}")
        lines.append(f"  organism - base: {_ci(org['gap_difference'])}")
    ctx = doc.get("context_ablation")
    if ctx:
        rate = "n/a" if ctx["changed_rate"] is None else f"{ctx['changed_rate']:.0%}"
        lines.append(f"context ablation ({ctx['target']}): {ctx['n']} pairs, changed {rate}"
                     + (f"  ({ctx['warning']})" if ctx["warning"] else ""))
    st = doc.get("steering")
    if st:
        for c in st["conditions"]:
            rates = " ".join(f"{k} {c[k]:.2f}" for k in ("comply", "refuse", "partial", "af")
                             if c[k] is not None)
            lines.append(f"steering {c['name']}: n={c['n']} {rates}")
    return lines
