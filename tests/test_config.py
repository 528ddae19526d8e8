from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from afscope.cli.options import config_command
from afscope.config import build_config
from afscope.errors import ConfigError
from afscope.extract.config import ExtractConfig


@click.command()
@config_command(ExtractConfig)
def show(cfg: ExtractConfig) -> None:
    click.echo(cfg.model_dump_json())


def test_yaml_then_flags_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data: a.jsonl\nlayers: [3, -1]\npool: [max]\nchunk_size: 16\n")
    cfg = build_config(ExtractConfig, cfg_file, {"chunk_size": 8})
    assert cfg.layers == [3, -1] and cfg.pool == ["max"] and cfg.chunk_size == 8
    result = CliRunner().invoke(show, ["--config", str(cfg_file), "--layers", "0.5,2",
                                       "--pool", "mean,last", "--overwrite"])
    assert result.exit_code == 0, result.output
    out = ExtractConfig.model_validate_json(result.output)
    assert out.layers == [0.5, 2] and out.pool == ["mean", "last"] and out.overwrite
    assert out.data == Path("a.jsonl") and out.chunk_size == 16


def test_typo_and_bad_values_name_the_field(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data: a.jsonl\nlayerz: [3]\n")
    with pytest.raises(ConfigError, match="layerz.*unknown key"):
        build_config(ExtractConfig, cfg_file)
    with pytest.raises(ConfigError, match="'pool"):
        build_config(ExtractConfig, None, {"data": "a", "pool": ["median"]})
    with pytest.raises(ConfigError, match="shard"):
        build_config(ExtractConfig, None, {"data": "a", "shard": "4/4"})
    with pytest.raises(ConfigError, match="data"):
        build_config(ExtractConfig, None, {})
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        build_config(ExtractConfig, tmp_path / "bad.yaml")


def test_shipped_configs_validate():
    root = Path(__file__).resolve().parents[1]
    cfg = build_config(ExtractConfig, root / "configs" / "extract_benchmark.yaml")
    assert cfg.model == "gemma-3-270m" and cfg.layers == [6, 12, -1] and cfg.skip_first == 1
    from afscope.explain.config import ExplainScalingConfig

    sc = build_config(ExplainScalingConfig, root / "configs" / "explain_features.yaml")
    assert sc.projection == "lens" and sc.sizes == [32, 128, 512] and sc.max_steps == 96
