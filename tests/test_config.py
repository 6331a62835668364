"""Config validation: defaults are filled, a wrong key gets a one-line error naming it."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
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


def schema_properties(node: dict, where: str = "config"):
    """(dotted key, property schema, parent schema) of every property, per-kind `allOf` branches included."""
    for name, sub in node.get("properties", {}).items():
        yield f"{where}.{name}", sub, node
        yield from schema_properties(sub, f"{where}.{name}")
        if isinstance(sub.get("additionalProperties"), dict):
            yield from schema_properties(sub["additionalProperties"], f"{where}.{name}.*")
    for branch in node.get("allOf", []):
        yield from schema_properties(branch["then"], f"{where}[kind={branch['if']['properties']['kind']['const']}]")


# objects whose keys are listed elsewhere: a dataset's projection overrides are checked in code against the
# `projection:` keys (without their defaults), its options by the branch of its kind (every kind has one)
TYPED_ELSEWHERE = {"config.datasets.*.projection", "config.datasets.*.options"}


def test_every_schema_property_has_type_description_and_default(schema):
    """A required key needs no default (a filled-in default would hide its absence), nor does one of the keys
    that a oneOf tells apart (fr.training_sets: synthetic_run or dataset)."""
    for key, sub, parent in schema_properties(yaml.safe_load(schema.read_text())):
        assert "type" in sub, f"{key} has no type"
        assert "description" in sub, f"{key} has no description"
        required = parent.get("required", []) + [k for branch in parent.get("oneOf", []) for k in branch["required"]]
        assert "default" in sub or key.rsplit(".", 1)[-1] in required, f"{key} has no default"


def test_no_schema_object_takes_arbitrary_keys(schema):
    """Every object property lists its keys (additionalProperties: false) or types its values."""
    for key, sub, _ in schema_properties(yaml.safe_load(schema.read_text())):
        types = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        if "object" not in types or key in TYPED_ELSEWHERE:
            continue
        extra = sub.get("additionalProperties", True)
        assert extra is False or isinstance(extra, dict) and "type" in extra, f"{key} takes any key"


def test_no_schema_description_is_cut(schema):
    """An unquoted comma in a YAML flow mapping cuts a description and makes a junk key of the rest."""
    for key, sub, _ in schema_properties(yaml.safe_load(schema.read_text())):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.rsplit(".", 1)[-1]), f"{key} is not an identifier"
        assert str(sub["description"]).rstrip().endswith("."), f"{key}: description is cut: {sub['description']!r}"


def schema_section(schema_dict: dict, *path: str) -> dict:
    node = schema_dict
    for name in path:
        node = node["additionalProperties"] if name == "*" else node["properties"][name]
    return node


def dataclass_defaults(cls) -> dict:
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
    }


def schema_defaults(node: dict) -> dict:
    return {name: sub.get("default") for name, sub in node["properties"].items()}


RUN = ("synthetic", "runs", "*")
# schema section (`*`: any entry of a mapping) -> the dataclass built from it, as module:name
CONFIG_DATACLASSES = {
    ("generator",): "facelatent.generators:GeneratorSettings",
    ("demo", "sizes"): "facelatent.demo_data:DemoSizes",
    ("align",): "facelatent.align.job:AlignConfig",
    ("projection",): "facelatent.projection.config:ProjectionConfig",
    ("projection", "schedule"): "facelatent.projection.project:Schedule",
    ("projection", "refine"): "facelatent.projection.refine:RefineConfig",
    ("encoder",): "facelatent.projection.encoder:EncoderConfig",
    ("visible_subspace",): "facelatent.directions.visible:VisibleConfig",
    ("directions", "*", "label"): "facelatent.directions.svm:LabelRule",
    ("direction_fitting",): "facelatent.directions.svm:SVMConfig",
    ("generated",): "facelatent.attributes.config:GeneratedConfig",
    ("generated", "evaluation"): "facelatent.attributes.config:EvaluationConfig",
    ("metrics",): "facelatent.embeddings.verification:MetricsConfig",
    ("au",): "facelatent.au.config:AUConfig",
    ("fr", "training"): "facelatent.fr.config:FRTrainConfig",
    RUN: "facelatent.synthetic.config:RunConfig",
    (*RUN, "references"): "facelatent.synthetic.config:ReferencesConfig",
    (*RUN, "references", "langevin"): "facelatent.synthetic.config:LangevinConfig",
    (*RUN, "references", "face_gate"): "facelatent.synthetic.config:FaceGateConfig",
    (*RUN, "variations"): "facelatent.synthetic.config:VariationsConfig",
    (*RUN, "variations", "dispersion"): "facelatent.synthetic.config:DispersionConfig",
    (*RUN, "leakage"): "facelatent.judge.leakage:LeakageConfig",
}


def config_dataclass(section: tuple[str, ...]) -> type:
    import importlib

    module, name = CONFIG_DATACLASSES[section].split(":")
    return getattr(importlib.import_module(module), name)


# dataclass fields that are not keys of their section: the schema key whose default they share, or None
# with the reason they have a default of their own
FIELDS_FROM_ELSEWHERE = {
    ("AlignConfig", "output_size"): None,  # the workflow passes generator.resolution; 1024 = NVlabs' FFHQ size
    ("SVMConfig", "max_iter"): None,  # a solver bound, not a config key
    ("LangevinConfig", "ict"): (*RUN, "references", "ict"),  # the job copies references.ict
    ("DispersionConfig", "ict"): (*RUN, "references", "ict"),
}
# section keys that no dataclass field takes: they choose the rule's inputs, not the stage's settings
# judge, leakage, variation: rules judge_synthetic, check_leakage and measure_variation, after generation
KEYS_ONLY_IN_THE_WORKFLOW = {("au", "dataset"), (*RUN, "judge"), (*RUN, "leakage"), (*RUN, "variation")}
# dataclasses named like a config, or built from a mapping, that no config section builds
NOT_FROM_CONFIG = {
    "MTCNNConfig": "detector settings; their defaults are mtcnn==1.0.0's",
    "CKPlusTrees": "the trees found under a CK+ root; no defaults",
    "Predictor": "an attribute predictor's table entry, read off its function's docstring",
    "EditorSettings": "`facelatent serve`'s command-line options, not a config section",
}


@pytest.mark.parametrize("section", list(CONFIG_DATACLASSES), ids=".".join)
def test_config_dataclasses_default_to_the_schema(schema, section):
    """Each field of a config dataclass defaults to its key's schema default: the schema is the one home."""
    s = yaml.safe_load(schema.read_text())
    cls = config_dataclass(section)
    node = schema_section(s, *section)
    fields = dataclass_defaults(cls)
    keys = schema_defaults(node)
    for name, default in fields.items():
        if (cls.__name__, name) in FIELDS_FROM_ELSEWHERE:
            source = FIELDS_FROM_ELSEWHERE[cls.__name__, name]
            if source is not None:
                *parent, key = source
                assert default == schema_defaults(schema_section(s, *parent))[key], f"{cls.__name__}.{name}"
            continue
        assert name in keys, f"{cls.__name__}.{name} is not a key of {'.'.join(section)}"
        if (*section, name) in CONFIG_DATACLASSES:  # a nested section: its dataclass, or the mapping it is built from
            assert keys[name] == {} and default in (config_dataclass((*section, name))(), {}), f"{cls.__name__}.{name}"
        else:
            assert default == keys[name] and isinstance(default, bool) == isinstance(keys[name], bool), (
                f"{cls.__name__}.{name}: {default!r} != schema {keys[name]!r}"
            )
    missing = {k for k in keys if k not in fields and (*section, k) not in KEYS_ONLY_IN_THE_WORKFLOW}
    assert not missing, f"{cls.__name__} has no field for {sorted(missing)}"


def package_dataclasses(repo_root) -> tuple[set[str], dict[str, set[str]]]:
    """The names of the package's dataclasses, and those called with `**mapping` (or through synthetic's
    `_build`) anywhere in the package or the rule scripts, with the files that do it."""
    import ast

    files = [*(repo_root / "facelatent").rglob("*.py"), *(repo_root / "workflow_scripts").glob("*.py")]
    trees = {path: ast.parse(path.read_text()) for path in files}
    names = {
        node.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
    }
    built: dict[str, set[str]] = {}

    def visit(node, cls_name, path):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call):
                func = child.func.id if isinstance(child.func, ast.Name) else getattr(child.func, "attr", "")
                name = None
                if func == "_build" and child.args and isinstance(child.args[0], ast.Name):
                    name = child.args[0].id
                elif any(k.arg is None for k in child.keywords):
                    name = func
                name = cls_name if name == "cls" else name
                if name in names:
                    built.setdefault(name, set()).add(str(path.relative_to(repo_root)))
            visit(child, child.name if isinstance(child, ast.ClassDef) else cls_name, path)

    for path, tree in trees.items():
        visit(tree, None, path)
    return names, built


def test_every_config_dataclass_is_compared_with_the_schema(repo_root):
    """A dataclass built from a mapping (`Cls(**config[...])`, `Cls(**snakemake.params.x)`), or named like a
    config, is in the table above, so its defaults cannot drift from the schema's."""
    compared = {target.split(":")[1] for target in CONFIG_DATACLASSES.values()}
    names, built = package_dataclasses(repo_root)
    assert {"AlignConfig", "ProjectionConfig", "LangevinConfig", "RunConfig"} <= set(built)  # the scan works
    unlisted = {name: sorted(where) for name, where in built.items() if name not in compared | set(NOT_FROM_CONFIG)}
    assert not unlisted, f"dataclasses built from config mappings but not compared with the schema: {unlisted}"
    named = {name for name in names if name.endswith(("Config", "Settings", "Sizes", "Rule", "Schedule"))}
    assert named - compared - set(NOT_FROM_CONFIG) == set(), "config-like dataclasses missing from the table"


# the workflow fills these itself: FFHQ's manifest is the dataset's `manifest` key, it downloads after indexing, and
# its index job always takes the URLs (for the per-shard download lists)
WORKFLOW_OPTIONS = {("ffhq", "manifest"): None, ("ffhq", "missing"): "download", ("ffhq", "urls"): None}


def test_dataset_options_match_the_indexers(schema):
    from facelatent.datasets import INDEXERS

    dataset = schema_section(yaml.safe_load(schema.read_text()), "datasets", "*")
    branches = {b["if"]["properties"]["kind"]["const"]: b["then"]["properties"]["options"] for b in dataset["allOf"]}
    assert sorted(branches) == sorted(INDEXERS) == sorted(dataset["properties"]["kind"]["enum"])
    for kind, indexer in INDEXERS.items():
        params = list(inspect.signature(indexer).parameters.values())[1:]  # after root
        expected = {p.name: p.default for p in params if (kind, p.name) not in WORKFLOW_OPTIONS}
        expected.update({name: v for (k, name), v in WORKFLOW_OPTIONS.items() if k == kind and v is not None})
        got = schema_defaults(branches[kind])
        assert set(got) == set(expected), kind
        for name, default in expected.items():
            assert got[name] == (list(default) if isinstance(default, tuple) else default), f"{kind}.{name}"


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
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown config key 'demo.sed'" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "example",
    [
        "ffhq_stylegan2.yaml",
        "ffhq256_stylegan2.yaml",
        "stylegan3_t.yaml",
        "synthetic_fr_iresnet50.yaml",
        "generated_500k.yaml",
    ],
)
def test_examples_are_valid_and_marked(repo_root, schema, example):
    text = (repo_root / "config" / "examples" / example).read_text()
    assert "<PATH/TO/" in text, "placeholders must be clearly marked"
    check_config(yaml.safe_load(text), schema)


@pytest.mark.parametrize(
    "example, expected",
    [
        ("ffhq_stylegan2.yaml", ["index_dataset"]),
        ("synthetic_fr_iresnet50.yaml", ["create_references", "train_fr"]),
        # 500,000 samples: one sampling and one scoring job per shard of 10,000, every direction measured
        (
            "generated_500k.yaml",
            ["sample_latents  50", "predict_attributes  50", "merge_attributes  1", "evaluate_direction  5"],
        ),
    ],
)
def test_example_dry_run_lists_the_pipeline(repo_root, tmp_path, example, expected):
    """The real-data examples build a DAG once their placeholders point at files."""
    text = (repo_root / "config" / "examples" / example).read_text()
    (tmp_path / "G.pkl").touch()
    (tmp_path / "vgg16.pt").touch()
    (tmp_path / "backbone.pth").touch()
    manifest = tmp_path / "ffhq-dataset-v2.json"
    manifest.write_text("{}")
    text = (
        text.replace("<PATH/TO/stylegan2-ffhq-config-f.pkl>", str(tmp_path / "G.pkl"))
        .replace("<PATH/TO/ffhq-dataset-v2.json>", str(manifest))
        .replace("<PATH/TO/vgg16.pt>", str(tmp_path / "vgg16.pt"))
        .replace("<PATH/TO/arcface_torch/backbone.pth>", str(tmp_path / "backbone.pth"))
    )
    text = text.replace("<PATH/TO/", str(tmp_path) + "/").replace(">", "")
    for name in ["G.pkl", "stylegan2-ffhq-256x256.pkl"] + [f"faces_webface_112x112/{b}.bin" for b in BENCHMARK_BINS]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    config = tmp_path / "real.yaml"
    config.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--configfile",
            str(config),
            "--directory",
            str(tmp_path / "work"),
            "-s",
            str(repo_root / "Snakefile"),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for rule in expected:  # a rule name, or a rule and its job count as the job stats table prints them
        assert re.search(r"\s+".join(map(re.escape, rule.split())) + r"\b", out), out[-3000:]


BENCHMARK_BINS = ["lfw", "cfp_fp", "agedb_30", "calfw", "cplfw"]


def test_config_readme_documents_every_key(repo_root, schema):
    from facelatent.config_docs import key_table

    readme = (repo_root / "config" / "README.md").read_text()
    assert key_table(schema) in readme, (
        "config/README.md is stale: regenerate with "
        "python -m facelatent.config_docs config/schema.yaml config/README.md"
    )


# ---- unknown keys at any depth ------------------------------------------------------------------------


def set_key(config: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = config
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return config


@pytest.mark.parametrize(
    "key",
    [
        "projection.schedule.w_avg_sample",
        "datasets.ckplus.projection.stesp",
        "datasets.ckplus.projection.refine.iteration",
        "datasets.ckplus.projection.schedule.w_avg_sample",
        "datasets.ckplus.options.frame",
        "datasets.multipie.options.frames",  # a CK+ option on a Multi-PIE dataset
        "datasets.ffhq.options.manifest",  # the dataset's own key, not an indexer option
        "datasets.photos.options.extension",
        "demo.sizes.ffhq",
    ],
)
def test_unknown_nested_key_is_named(demo_config, schema, key):
    with pytest.raises(ConfigError) as info:
        check_config(set_key(copy.deepcopy(demo_config), key, 1), schema)
    assert str(info.value).startswith(f"unknown config key '{key}' (allowed here: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("datasets.ckplus.projection.steps", "many"),
        ("datasets.ckplus.projection.refine.cg_iterations", 0),
        ("datasets.ckplus.options.frames", "peaks"),
        ("projection.schedule.noise_init", "zeros"),
        ("demo.sizes.folder", "yes"),
        ("directions.smile_given_happy.conditional.given", []),
        ("synthetic.runs.demo.embedder", {"path": "x.pth"}),
    ],
)
def test_nested_wrong_value_is_named(demo_config, schema, key, value):
    with pytest.raises(ConfigError, match=re.escape(f"config key '{key}'")):
        check_config(set_key(copy.deepcopy(demo_config), key, value), schema)


def test_projection_overrides_get_no_defaults(demo_config, schema):
    """An override holds only what the user wrote: a filled-in default would override the global value."""
    config = check_config(copy.deepcopy(demo_config), schema)
    assert config["datasets"]["photos"]["projection"] == {"refine": {"iterations": 0}, "batch_size": 16}
    assert config["datasets"]["ffhq"]["projection"] == {}


def test_datasets_do_not_share_filled_in_defaults(demo_config, schema):
    config = check_config(copy.deepcopy(demo_config), schema)
    assert config["datasets"]["photos"]["options"] == {"extensions": [".jpg", ".jpeg", ".png", ".bmp", ".webp"]}
    assert config["datasets"]["ffhq"]["options"]["missing"] == "download"
    assert config["datasets"]["ffhq"]["options"] is not config["datasets"]["photos"]["options"]


def test_projection_overrides_merge_deeply(demo_config, schema):
    """photos overrides refine.iterations only: the global refine.cg_iterations and schedule stay."""
    from facelatent.config import projection_for

    config = check_config(copy.deepcopy(demo_config), schema)
    merged = projection_for(config, "photos")
    assert merged["refine"]["iterations"] == 0 and merged["refine"]["cg_iterations"] == 14
    assert merged["batch_size"] == 16 and merged["schedule"]["w_avg_samples"] == 2000
    assert projection_for(config, "ckplus")["refine"] == config["projection"]["refine"]
    assert config["projection"]["refine"]["iterations"] == 8  # the global section is not modified


def test_deep_merge_replaces_non_mappings():
    from facelatent.config import deep_merge

    base = {"a": {"b": 1, "c": [1, 2]}, "loss": {"mse": 1.0}}
    assert deep_merge(base, {"a": {"c": [3]}, "loss": "l1"}) == {"a": {"b": 1, "c": [3]}, "loss": "l1"}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "loss": {"mse": 1.0}}


def test_a_datasets_loss_mapping_replaces_the_global_one():
    """A per-dataset {name: weight} loss is the dataset's whole choice of terms: no global term leaks in."""
    from facelatent.config import projection_for

    config = {
        "projection": {"loss": {"lpips_vgg16": 1.0, "facenet": 0.1}, "refine": {"iterations": 0, "cg_iterations": 14}},
        "datasets": {"ck": {"projection": {"loss": {"mse": 1.0}, "refine": {"iterations": 8}}}},
    }
    merged = projection_for(config, "ck")
    assert merged["loss"] == {"mse": 1.0}
    assert merged["refine"] == {"iterations": 8, "cg_iterations": 14}


# ---- values that leave the DAG unbuildable -------------------------------------------------------------


UNBUILDABLE = [
    ("edits.dataset", "celeba", "config key 'edits.dataset': dataset 'celeba' is not in `datasets:`"),
    ("pca.dataset", "", "config key 'pca.dataset' is empty"),
    ("datasets.ffhq.manifest", None, "config key 'datasets.ffhq.manifest' is null"),
    ("directions.smile.dataset", "celeba", "config key 'directions.smile.dataset': dataset 'celeba' is not in"),
    ("directions.smile.dataset", "", "config key 'directions.smile.dataset' is empty"),
    (
        "datasets.multipie.project",
        False,
        "config key 'directions.smile.dataset': dataset 'multipie' has project: false",
    ),
    (
        "directions.smile_given_happy.conditional.primal",
        "smiles",
        "config key 'directions.smile_given_happy.conditional.primal': 'smiles' is not another direction",
    ),
    ("au.dataset", "multipie", "config key 'au.dataset': dataset 'multipie' is of kind multipie"),
    ("au.dataset", "ck", "config key 'au.dataset': dataset 'ck' is not in `datasets:`"),
    ("embedding.datasets", ["multipie", "mpie"], "config key 'embedding.datasets.1': dataset 'mpie' is not in"),
    ("au.split", [0.5, 0.5, 0.5], "au.split must be three shares (train, val, test), each > 0, summing to 1"),
    (
        "fr.training_sets.synthetic_wide.synthetic_run",
        "wider",
        "config key 'fr.training_sets.synthetic_wide.synthetic_run': run 'wider' is not in `synthetic.runs:`",
    ),
    ("fr.training_sets.real_ckplus.dataset", "ck", "config key 'fr.training_sets.real_ckplus.dataset': dataset 'ck'"),
    ("fr.benchmarks.ckplus_heldout.dataset", "ck", "config key 'fr.benchmarks.ckplus_heldout.dataset': dataset 'ck'"),
]


@pytest.mark.parametrize("key, value, message", UNBUILDABLE)
def test_unbuildable_value_is_named(demo_config, schema, key, value, message):
    with pytest.raises(ConfigError) as info:
        check_config(set_key(copy.deepcopy(demo_config), key, value), schema)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_disco_covariate_must_be_a_direction(demo_config, schema):
    bad = copy.deepcopy(demo_config)
    bad["synthetic"]["runs"]["demo"]["variations"].update(algorithm="disco", covariates=["yaw", "age"])
    with pytest.raises(
        ConfigError, match=r"^config key 'synthetic.runs.demo.variations.covariates.1': direction 'age'"
    ):
        check_config(bad, schema)


def test_empty_edit_dataset_takes_generated_samples_or_is_named(demo_config, schema):
    """The edit grids' rows: the edit dataset's latents, else the first generated samples, else a named error."""
    config = set_key(copy.deepcopy(demo_config), "edits.dataset", "")
    check_config(copy.deepcopy(config), schema)  # the demo draws 2,000 samples
    config["directions"] = {name: e for name, e in config["directions"].items() if e.get("source") != "generated"}
    config["generated"]["samples"] = 0
    with pytest.raises(ConfigError, match=r"^config key 'edits\.dataset' is empty but directions are configured"):
        check_config(config, schema)


def test_no_directions_need_no_edit_dataset(demo_config, schema):
    config = copy.deepcopy(demo_config)
    config.update(directions={}, pca={"components": 0}, edits={"dataset": ""}, au={"dataset": None})
    for run in config["synthetic"]["runs"].values():  # DisCo's covariates are directions
        run["variations"].update(algorithm="dispersion", covariates=[], covariate_scaling={})
    check_config(config, schema)


def dry_run(repo_root, tmp_path, overrides: dict, *targets: str) -> subprocess.CompletedProcess:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", str(path)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pca": {"dataset": ""}}, "config key 'pca.dataset' is empty"),
        ({"datasets": {"ffhq": {"manifest": None}}}, "config key 'datasets.ffhq.manifest' is null"),
        ({"projection": {"schedule": {"w_avg_sample": 10}}}, "unknown config key 'projection.schedule.w_avg_sample'"),
    ],
)
def test_snakemake_names_the_unbuildable_key(repo_root, tmp_path, overrides, message):
    """One line naming the key, before any job and instead of a MissingInputException for results/latents/.h5."""
    proc = dry_run(repo_root, tmp_path, overrides)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert any(line.startswith(message) for line in out.splitlines()), out[-2000:]
    assert "MissingInputException" not in out


def test_predict_aus_without_au_dataset_names_the_key(repo_root, tmp_path):
    proc = dry_run(repo_root, tmp_path, {"au": {"dataset": None}}, "results/au/predictions/ckplus.tsv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ConfigError: config key 'au.dataset' is null" in out and "results/au/None" not in out, out[-2000:]


def test_filled_in_schedule_keeps_micro_batch_at_batch_size(demo_config, schema):
    """The schema fills `micro_batch: null`; projection still runs on chunks of batch_size (batch invariance)."""
    from facelatent.config import projection_for
    from facelatent.projection.job import ProjectionConfig, schedule_kwargs

    config = check_config(copy.deepcopy(demo_config), schema)
    assert config["projection"]["schedule"]["micro_batch"] is None
    assert schedule_kwargs(ProjectionConfig(**projection_for(config, "photos")))["micro_batch"] == 16
    custom = ProjectionConfig(batch_size=16, schedule={"micro_batch": 4})
    assert schedule_kwargs(custom)["micro_batch"] == 4
    # null on the CPU from 256 px up: one image at a time (faster and smaller there); a set value always wins
    default = ProjectionConfig(batch_size=8)
    assert [schedule_kwargs(default, "cpu", r)["micro_batch"] for r in (64, 128, 256, 1024)] == [8, 8, 1, 1]
    assert [schedule_kwargs(default, "cuda", r)["micro_batch"] for r in (64, 1024)] == [8, 8]
    assert schedule_kwargs(custom, "cpu", 1024)["micro_batch"] == 4
