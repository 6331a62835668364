"""Config validation against `config/schema.yaml`, with defaults filled and one-line errors."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import jsonschema
import yaml

from facelatent.errors import ConfigError


def _with_defaults(validator_class):
    """A validator that also fills `default` values into the instance (as Snakemake's validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, MutableMapping):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])  # two datasets must not share one `{}`
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def key_path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """Dotted location of a validation error, e.g. `generator.truncation_psi` (under `prefix` when given)."""
    return ".".join([*filter(None, [prefix]), *map(str, error.absolute_path)]) or "<top level>"


def describe_error(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """One line that names the key and says what is wrong with it."""
    where = key_path(error, prefix)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        prefix = f"{where}." if where != "<top level>" else ""
        return f"unknown config key '{prefix}{extra[0] if extra else '?'}' (allowed here: {', '.join(allowed)})"
    return f"config key '{where}': {error.message}"


def _first_error(validator: jsonschema.protocols.Validator, instance: object, prefix: str = "") -> str | None:
    """The one-line message of the shallowest error (keys prefixed with `prefix`), or None."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), key_path(e)))
    return describe_error(errors[0], prefix) if errors else None


def without_defaults(schema: object) -> object:
    """A copy of a schema with every `default` removed (validating with it fills nothing in)."""
    if isinstance(schema, Mapping):
        return {k: without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [without_defaults(v) for v in schema]
    return schema


def check_projection_overrides(config: Mapping, schema: Mapping) -> None:
    """Each `datasets.<name>.projection` takes the `projection:` keys and types, with no defaults filled in."""
    validator = jsonschema.Draft202012Validator(without_defaults(schema["properties"]["projection"]))
    for name, ds in config.get("datasets", {}).items():
        message = _first_error(validator, ds.get("projection", {}), f"datasets.{name}.projection")
        if message:
            raise ConfigError(message)


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """`base` with `override` on top, key by key: nested mappings merge, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def loss_terms(loss: str | Mapping[str, float]) -> set[str]:
    """The term names of `projection.loss`: a name, or the keys of a {name: weight} mapping."""
    return {loss} if isinstance(loss, str) else set(loss)


def projection_for(config: Mapping, dataset: str) -> dict:
    """The `projection:` section with `datasets.<dataset>.projection` merged deeply on top; a dataset's `loss`
    replaces the global one whole (a {name: weight} mapping is one choice of terms, not a set of overrides)."""
    override = config["datasets"][dataset].get("projection", {})
    merged = deep_merge(config["projection"], override)
    if "loss" in override:
        merged["loss"] = override["loss"]
    return merged


def check_config(config: MutableMapping, schema_path: str | Path) -> MutableMapping:
    """Validate in place (filling defaults), then check that the DAG can be built; raise ConfigError naming the key."""
    schema = load_schema(schema_path)
    message = _first_error(_with_defaults(jsonschema.Draft202012Validator)(schema), config)
    if message:
        raise ConfigError(message)
    check_projection_overrides(config, schema)
    check_buildable(config)
    return config


# ---- values that pass the schema but leave the DAG unbuildable --------------------------------


def _need_projected(config: Mapping, key: str, name: object, why: str) -> None:
    """`name` (the value of config key `key`) must be a dataset with `project: true`."""
    datasets = config["datasets"]
    if not name:
        raise ConfigError(
            f"config key '{key}' is empty but {why}: name a projected dataset "
            f"(known: {', '.join(sorted(datasets)) or 'none'})"
        )
    if name not in datasets:
        raise ConfigError(
            f"config key '{key}': dataset '{name}' is not in `datasets:` "
            f"(known: {', '.join(sorted(datasets)) or 'none'})"
        )
    if not datasets[name]["project"]:
        raise ConfigError(f"config key '{key}': dataset '{name}' has project: false, so it has no latents")


def _check_datasets(config: Mapping) -> None:
    for name, ds in config["datasets"].items():
        if ds["kind"] == "ffhq" and not ds["manifest"]:
            raise ConfigError(
                f"config key 'datasets.{name}.manifest' is null but kind ffhq needs the ffhq-dataset-v2.json manifest"
            )


def _check_generated_direction(config: Mapping, name: str, entry: Mapping) -> None:
    """A direction fitted on generated samples ranks them by a configured predictor's score, with no dataset."""
    generated, label = config["generated"], entry["label"]
    where = f"directions.{name}"
    if generated["samples"] <= 0:
        raise ConfigError(f"config key '{where}.source' is generated but generated.samples is 0: draw some samples")
    if label.get("score") not in generated["predictors"]:
        raise ConfigError(
            f"config key '{where}.label.score': '{label.get('score')}' is not one of generated.predictors "
            f"({', '.join(generated['predictors']) or 'none'})"
        )
    for key in ("column", "au"):
        if label.get(key) is not None:
            raise ConfigError(f"config key '{where}.label.{key}': a generated direction is ranked by label.score only")
    for key in ("positive", "negative", "where"):
        if label.get(key):
            raise ConfigError(f"config key '{where}.label.{key}': a generated direction is ranked by label.score only")
    if entry["dataset"]:
        raise ConfigError(f"config key '{where}.dataset': a generated direction has no dataset (its samples are drawn)")


def _check_direction_target(config: Mapping, name: str, entry: Mapping) -> None:
    predictors = config["generated"]["predictors"]
    if entry.get("target") is not None and entry["target"] not in predictors:
        raise ConfigError(
            f"config key 'directions.{name}.target': '{entry['target']}' is not one of generated.predictors "
            f"({', '.join(predictors) or 'none'})"
        )


def _check_directions(config: Mapping) -> None:
    directions = config["directions"]
    for name, entry in directions.items():
        cond = entry["conditional"]
        _check_direction_target(config, name, entry)
        if not cond and entry["source"] == "generated":
            _check_generated_direction(config, name, entry)
            continue
        if entry["label"].get("score") is not None:
            raise ConfigError(
                f"config key 'directions.{name}.label.score': only a direction with source generated has one"
            )
        if not cond:
            _need_projected(
                config, f"directions.{name}.dataset", entry["dataset"], "the direction is fitted on latents"
            )
            continue
        for key, other in [("primal", cond["primal"]), *((f"given.{i}", g) for i, g in enumerate(cond["given"]))]:
            if other not in directions or other == name:
                raise ConfigError(
                    f"config key 'directions.{name}.conditional.{key}': '{other}' is not another "
                    f"direction of `directions:` (known: {', '.join(sorted(directions))})"
                )


def _check_consumers(config: Mapping) -> None:
    """Sections that read another section's datasets or directions."""
    if config["pca"]["components"] > 0:
        _need_projected(config, "pca.dataset", config["pca"]["dataset"], "pca.components > 0")
    generated_rows = not config["edits"]["dataset"] and config["generated"]["samples"] > 0  # the grids' rows
    if (config["directions"] or config["pca"]["components"] > 0) and not generated_rows:
        _need_projected(config, "edits.dataset", config["edits"]["dataset"], "directions are configured (edit grids)")
    au = config["au"]["dataset"]
    if au is not None:
        _need_projected(config, "au.dataset", au, "the AU classifier trains on CK+ latents")
        if config["datasets"][au]["kind"] != "ckplus":
            raise ConfigError(
                f"config key 'au.dataset': dataset '{au}' is of kind "
                f"{config['datasets'][au]['kind']}, the AU classifier needs a ckplus dataset"
            )
    for i, name in enumerate(config["embedding"]["datasets"]):
        if name not in config["datasets"]:
            raise ConfigError(f"config key 'embedding.datasets.{i}': dataset '{name}' is not in `datasets:`")


def _check_synthetic(config: Mapping) -> None:
    for run, entry in config["synthetic"]["runs"].items():
        variations = entry["variations"]
        if variations["algorithm"] != "disco":
            continue
        for i, name in enumerate(variations["covariates"]):
            if name not in config["directions"]:
                raise ConfigError(
                    f"config key 'synthetic.runs.{run}.variations.covariates.{i}': direction '{name}' "
                    "is not in `directions:`"
                )


def _check_fr(config: Mapping) -> None:
    """Every FR training set and made benchmark names a configured synthetic run or dataset."""
    fr = config.get("fr", {})
    for name, entry in fr.get("training_sets", {}).items():
        run, dataset = entry.get("synthetic_run"), entry.get("dataset")
        if run is not None and run not in config["synthetic"]["runs"]:
            raise ConfigError(
                f"config key 'fr.training_sets.{name}.synthetic_run': run '{run}' is not in `synthetic.runs:`"
            )
        if dataset is not None and dataset not in config["datasets"]:
            raise ConfigError(
                f"config key 'fr.training_sets.{name}.dataset': dataset '{dataset}' is not in `datasets:`"
            )
    for name, entry in fr.get("benchmarks", {}).items():
        dataset = entry.get("dataset")
        if dataset is not None and dataset not in config["datasets"]:
            raise ConfigError(f"config key 'fr.benchmarks.{name}.dataset': dataset '{dataset}' is not in `datasets:`")


def _check_generated(config: Mapping) -> None:
    """`generated.predictors` are shipped predictors; samples need predictors to rank them."""
    generated = config["generated"]
    names = generated["predictors"]
    if names:
        from facelatent.attributes.predictors import predictor_table  # only configs that score images need it

        known = predictor_table()
        for i, name in enumerate(names):
            if name not in known:
                raise ConfigError(
                    f"config key 'generated.predictors.{i}': '{name}' is not a predictor (known: {', '.join(known)})"
                )
        if len(set(names)) != len(names):
            raise ConfigError(f"config key 'generated.predictors': a predictor is named twice ({', '.join(names)})")
    elif generated["samples"] > 0:
        raise ConfigError(
            "config key 'generated.predictors' is empty but generated.samples > 0: name the scores to predict"
        )
    if names and generated["evaluation"]["samples"] > 0 and 0 not in generated["evaluation"]["strengths"]:
        raise ConfigError(
            "config key 'generated.evaluation.strengths': 0 (the unedited image every change is measured from) "
            f"is not among {generated['evaluation']['strengths']}"
        )


def check_split(fractions: tuple[float, ...]) -> tuple[float, float, float]:
    """`au.split`: three shares (train, val, test), each > 0, summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"au.split must be three shares (train, val, test), each > 0, summing to 1; got {list(fractions)}"
        )
    return values


def check_buildable(config: Mapping) -> None:
    """One-line ConfigError for values the schema allows but no rule can build (run after validation)."""
    if config.get("au", {}).get("dataset"):
        check_split(config["au"]["split"])  # before any job, not when training starts
    _check_datasets(config)
    _check_generated(config)
    _check_directions(config)
    _check_consumers(config)
    _check_synthetic(config)
    _check_fr(config)
