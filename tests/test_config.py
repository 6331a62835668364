"""Config validation: defaults are filled, a wrong key gets a one-line error naming it."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from facelatent.config import check_config
from facelatent.errors import ConfigError


@pytest.fixture(scope="module")
def schema(repo_root):
    return repo_root / "config" / "schema.yaml"


@pytest.fixture()
def demo_config(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config, schema):
    check_config(demo_config, schema)


def test_defaults_are_filled(schema):
    config = check_config({}, schema)
    assert config["generator"]["checkpoint"].endswith("dcgan_digiface64.safetensors")
    assert config["demo"]["enabled"] is True


def test_every_schema_property_has_description_and_default(schema):
    def walk(node, where):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{name} has no description"
            assert "default" in sub, f"{where}.{name} has no default"
            walk(sub, f"{where}.{name}")
            if "additionalProperties" in sub and isinstance(sub["additionalProperties"], dict):
                walk(sub["additionalProperties"], f"{where}.{name}.*")

    walk(yaml.safe_load(schema.read_text()), "config")


def test_unknown_key_is_named(demo_config, schema):
    bad = copy.deepcopy(demo_config)
    bad["generator"]["trunaction_psi"] = 0.7
    with pytest.raises(ConfigError) as info:
        check_config(bad, schema)
    message = str(info.value)
    assert "generator.trunaction_psi" in message and "\n" not in message


def test_wrong_type_is_named(demo_config, schema):
    bad = copy.deepcopy(demo_config)
    bad["generator"]["resolution"] = "sixty-four"
    with pytest.raises(ConfigError, match="generator.resolution"):
        check_config(bad, schema)


def test_snakemake_stops_on_a_wrong_key(repo_root, tmp_path, demo_config):
    bad = copy.deepcopy(demo_config)
    bad["demo"]["sed"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown config key 'demo.sed'" in proc.stdout + proc.stderr


@pytest.mark.parametrize("example", ["ffhq_stylegan2.yaml", "ffhq256_stylegan2.yaml", "stylegan3_t.yaml"])
def test_examples_are_valid_and_marked(repo_root, schema, example):
    text = (repo_root / "config" / "examples" / example).read_text()
    assert "<PATH/TO/" in text, "placeholders must be clearly marked"
    check_config(yaml.safe_load(text), schema)


def test_example_dry_run_lists_the_pipeline(repo_root, tmp_path):
    """The real-data example builds a DAG once its placeholders point at files."""
    text = (repo_root / "config" / "examples" / "ffhq_stylegan2.yaml").read_text()
    (tmp_path / "G.pkl").touch()
    (tmp_path / "vgg16.pt").touch()
    (tmp_path / "backbone.pth").touch()
    manifest = tmp_path / "ffhq-dataset-v2.json"
    manifest.write_text("{}")
    text = (text.replace("<PATH/TO/stylegan2-ffhq-config-f.pkl>", str(tmp_path / "G.pkl"))
            .replace("<PATH/TO/ffhq-dataset-v2.json>", str(manifest))
            .replace("<PATH/TO/vgg16.pt>", str(tmp_path / "vgg16.pt"))
            .replace("<PATH/TO/arcface_torch/backbone.pth>", str(tmp_path / "backbone.pth")))
    text = text.replace("<PATH/TO/", str(tmp_path) + "/").replace(">", "")
    config = tmp_path / "real.yaml"
    config.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config),
                           "--directory", str(tmp_path / "work"), "-s", str(repo_root / "Snakefile")],
                          cwd=repo_root, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "index_dataset" in out


def test_config_readme_documents_every_key(repo_root, schema):
    from facelatent.config_docs import key_table

    readme = (repo_root / "config" / "README.md").read_text()
    assert key_table(schema) in readme, "config/README.md is stale: regenerate with python -m facelatent.config_docs config/schema.yaml config/README.md"
