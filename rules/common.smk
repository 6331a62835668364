# Config validation, shared tables, wildcard constraints and input functions. No rules here.
import json
from pathlib import Path

from snakemake.utils import validate

from facelatent.config import check_config

check_config(config, workflow.source_path("../config/schema.yaml"))


validate(config, schema="../config/schema.yaml")


MODEL_PINS = json.loads(
    Path(workflow.source_path("../resources/model_pins.json")).read_text()
)
MODEL_NAMES = sorted(MODEL_PINS["models"])
DEMO_PHOTOS = sorted(MODEL_PINS["demo_photos"])


wildcard_constraints:
    model="|".join(MODEL_NAMES),
    photo="|".join(p.replace(".", r"\.") for p in DEMO_PHOTOS),


def get_generator_checkpoint():
    """The generator checkpoint; a fetched model's path makes Snakemake fetch it first."""
    return config["generator"]["checkpoint"]


def get_generator_params():
    """Generator settings passed to every rule that runs the generator."""
    return config["generator"]


def get_demo_root():
    return config["demo"]["root"]


def get_demo_outputs():
    """Files `make_demo_data` writes; datasets under the demo root depend on them."""
    root = get_demo_root()
    return {
        "manifest": f"{root}/MANIFEST.json",
        "ground_truth": f"{root}/ground_truth/directions.npz",
    }


def get_final_output():
    """Every target the implemented stages can build for this config."""
    targets = [f"resources/models/{name}.safetensors" for name in MODEL_NAMES]
    targets += [f"resources/demo_photos/{photo}" for photo in DEMO_PHOTOS]
    targets.append("results/samples/faces_grid.png")
    if config["demo"]["enabled"]:
        targets.append(get_demo_outputs()["manifest"])
    return targets
