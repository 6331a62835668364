# Config validation, shared tables, wildcard constraints and input functions. No rules here.
import json
import math
from pathlib import Path

from snakemake.utils import validate

from facelatent.align.sources import DETECTORS, landmark_source
from facelatent.config import check_config, loss_terms, projection_for
from facelatent.errors import ConfigError

check_config(config, workflow.source_path("../config/schema.yaml"))


validate(config, schema="../config/schema.yaml")


MODEL_PINS = json.loads(
    Path(workflow.source_path("../resources/model_pins.json")).read_text()
)
MODEL_NAMES = sorted(MODEL_PINS["models"])
# a model's file format: safetensors (converted), or the file as it ships (dlib's .dat)
MODEL_FORMATS = {
    name: spec.get("format", "safetensors")
    for name, spec in MODEL_PINS["models"].items()
}
DEMO_PHOTOS = sorted(MODEL_PINS["demo_photos"])

# Each output path pattern is written once. The ones input functions need are constants (MODEL here,
# the others in their stage's section below), and the rule that makes the file names the constant as
# its output. Rules read another rule's output as `rules.<name>.output.<key>`; so do the target lists,
# which run only from the Snakefile's `rule all`, after every include.
MODEL = "resources/models/{model}.{model_format}"


def model_file(name):
    """The fetched weights of a pinned model (`fetch_model` makes it)."""
    return MODEL.format(model=name, model_format=MODEL_FORMATS[name])


wildcard_constraints:
    model="|".join(MODEL_NAMES),
    model_format="|".join(sorted(set(MODEL_FORMATS.values()))),
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
        "ffhq_manifest": f"{root}/ffhq-dataset-v2.json",
    }


def get_final_output(fr_loop=True):
    """Every target the implemented stages can build for this config (fr_loop=False: all but the FR loop)."""
    # dlib's .dat files (100 MB) are fetched when a rule asks for them, not by the demo
    targets = [
        model_file(name) for name in MODEL_NAMES if MODEL_FORMATS[name] == "safetensors"
    ]
    targets += expand(rules.fetch_demo_photo.output.photo, photo=DEMO_PHOTOS)
    targets.append(rules.sample_grid.output.grid)
    if config["demo"]["enabled"]:
        targets.append(get_demo_outputs()["manifest"])
    targets += expand(rules.align_report.output.preview, dataset=DATASETS)
    for name in projected_datasets():
        targets += expand(
            [rules.merge_latents.output.latents, rules.merge_latents.output.grid],
            dataset=name,
        )
    targets += direction_targets()
    targets += embedding_targets()
    targets += synthetic_targets()
    targets += judge_targets()
    if config["au"]["dataset"]:
        targets += expand(
            rules.train_au_classifier.output, dataset=config["au"]["dataset"]
        )
        targets += expand(rules.predict_synthetic_aus.output.aus, run=SYNTHETIC_RUNS)
    if fr_loop:
        targets += fr_targets()
    targets += generated_targets()
    targets.append(rules.editor.output.command)
    return targets


# ---- datasets, shards, latents ----------------------------------------------------------

DATASETS = config["datasets"]
DOWNLOADED_SHARD = "results/downloads/{dataset}/{shard}.json"
ALIGNED_SHARD = "results/aligned/{dataset}/{shard}.h5"
LATENT_SHARD = "results/latents/{dataset}/{shard}.h5"
LATENTS = "results/latents/{dataset}.h5"


wildcard_constraints:
    dataset="|".join(DATASETS) if DATASETS else "NO_DATASET",
    shard=r"\d\d\d+",


def get_dataset(wildcards):
    return DATASETS[wildcards.dataset]


def is_demo_path(path):
    """True when a path lies under the demo root, so it is made by make_demo_data."""
    root = Path(get_demo_root())
    return config["demo"]["enabled"] and (
        Path(path) == root or root in Path(path).parents
    )


def get_index_input(wildcards):
    """The demo manifest for demo datasets, and the FFHQ JSON manifest for ffhq datasets."""
    ds = get_dataset(wildcards)
    inputs = {}
    if ds["kind"] == "ffhq":
        inputs["manifest"] = ds["manifest"]
    if is_demo_path(ds["root"]) or is_demo_path(ds.get("manifest") or ds["root"]):
        inputs["demo"] = get_demo_outputs()["manifest"]
    return inputs


def get_shards(dataset):
    """Shard ids from the index checkpoint's shard manifest (read after the checkpoint ran)."""
    from facelatent.datasets import read_shard_manifest

    return read_shard_manifest(
        checkpoints.index_dataset.get(dataset=dataset).output.shards
    )


def get_download_list(wildcards):
    """The shard's download list in the index checkpoint's `downloads` folder (asking for it runs the checkpoint)."""
    folder = checkpoints.index_dataset.get(dataset=wildcards.dataset).output.downloads
    return str(Path(folder) / f"{wildcards.shard}.jsonl")


def get_shard_rows(wildcards):
    """The shard's rows file in the index checkpoint's `rows` folder (asking for it runs the checkpoint): a shard job
    reads it, never the whole index."""
    folder = checkpoints.index_dataset.get(dataset=wildcards.dataset).output.rows
    return str(Path(folder) / f"{wildcards.shard}.tsv")


def get_landmark_source(wildcards):
    """Where align_shard takes this dataset's landmarks from (landmarks68, manifest68, mtcnn, dlib68 or none)."""
    ds = get_dataset(wildcards)
    return landmark_source(ds["kind"], ds["options"], config["align"]["landmarks"])


def get_align_input(wildcards):
    """The shard's rows (+ its downloads for FFHQ, + the detector's weights where faces are detected)."""
    ds = get_dataset(wildcards)
    inputs = {"rows": get_shard_rows(wildcards)}
    if ds["kind"] == "ffhq":
        inputs["downloaded"] = DOWNLOADED_SHARD.format(
            dataset=wildcards.dataset, shard=wildcards.shard
        )
    source = get_landmark_source(wildcards)
    if source in DETECTORS:
        # each detector is named after its pinned model (mtcnn, dlib68)
        inputs[source] = model_file(source)
    return inputs


def get_dataset_kind(wildcards):
    return get_dataset(wildcards)["kind"]


def get_images_per_shard(wildcards):
    return get_dataset(wildcards)["images_per_shard"]


def get_dataset_root(wildcards):
    return get_dataset(wildcards)["root"]


def get_dataset_options(wildcards):
    return get_dataset(wildcards)["options"]


def get_aligned_shards(wildcards):
    return expand(
        ALIGNED_SHARD, dataset=wildcards.dataset, shard=get_shards(wildcards.dataset)
    )


def get_latent_shards(wildcards):
    return expand(
        LATENT_SHARD, dataset=wildcards.dataset, shard=get_shards(wildcards.dataset)
    )


# align_shard holds its shard's crops twice at the end (the list of crops and the stacked array it writes), plus a
# fixed part: torch, the detector (dlib's predictor is 100 MB), and one decoded photo with the FFHQ procedure's float
# copies (a 4000 x 3000 in-the-wild photo: ~0.6 GB). The rehearsal (bench/scale.py) measures it at 64 px.
ALIGN_BASE_MB = 1500
ALIGN_COPIES = 2.5


def align_shard_mem_mb(wildcards, attempt):
    """align_shard's memory: the fixed part and `images_per_shard` crops at the generator's resolution, held twice
    (with margin); a retry after a kill asks for twice as much."""
    resolution = config["generator"]["resolution"]
    crops = get_images_per_shard(wildcards) * 3 * resolution**2
    return attempt * (ALIGN_BASE_MB + math.ceil(ALIGN_COPIES * crops / 1e6))


def get_align_params():
    return {**config["align"], "output_size": config["generator"]["resolution"]}


def get_projection_params(wildcards):
    """The projection section, with the dataset's own `projection:` overrides merged deeply on top."""
    return projection_for(config, wildcards.dataset)


# project_shard's peak RSS on the CPU (bench/projection_memory.py, this 2-core machine: 2 Adam steps in a fresh process
# at two micro-batch sizes): (fixed MB, MB per image of the micro-batch) by generator family and resolution, for losses
# with a feature network (lpips_vgg16: VGG16 at 256 px; facenet is of the same size) and for pixel losses. StyleGAN rows
# are the config-f widths (per-image activations dominate), the DCGAN row the demo's network. A resolution between
# rows takes the next larger row; beyond the last, the per-image part grows with the pixels. On CUDA the activations
# live in GPU memory, so the host stays below these figures. StyleGAN rows measured at 8ad624b (frozen-weight convs
# and bias + leaky ReLU keep less for backward: 1024 px lpips at micro-batch 1 and 2, 4546 / 8008 -> 2812 / 4483 MB).
PROJECT_SHARD_MB = {
    "dcgan": {"features": {64: (454, 19)}, "pixels": {64: (367, 4)}},
    "stylegan": {
        "features": {64: (511, 205), 256: (1138, 383), 1024: (1141, 1671)},
        "pixels": {64: (321, 323), 256: (880, 310), 1024: (515, 2015)},
    },
}
PROJECT_SHARD_MARGIN = 1.25
# what a Snakemake script job adds to the bare projection (the script preamble imports snakemake; h5py, the shard):
# the demo's FFHQ shard measured 515 MB against 395 MB for the same projection in a bare process
SCRIPT_JOB_MB = 300


def project_shard_mem_mb(wildcards, attempt):
    """project_shard's memory from the generator, resolution, loss and the micro-batch the job uses on the CPU (the
    larger case; facelatent/projection/config.py `micro_batch_for`); a retry after a kill asks for twice as much.
    """
    from facelatent.projection.config import micro_batch_for

    projection = get_projection_params(wildcards)
    resolution = config["generator"]["resolution"]
    # the job's own chunking: a shard smaller than the micro-batch is padded up to it
    micro = micro_batch_for(
        projection["batch_size"],
        projection["schedule"]["micro_batch"],
        "cpu",
        resolution,
    )
    family = "dcgan" if config["generator"]["kind"] == "dcgan" else "stylegan"
    features = {"lpips_vgg16", "facenet"} & set(loss_terms(projection["loss"]))
    table = PROJECT_SHARD_MB[family]["features" if features else "pixels"]
    row = next((r for r in sorted(table) if r >= resolution), max(table))
    fixed, per_image = table[row]
    per_image *= max(1.0, (resolution / row) ** 2)
    return math.ceil(
        attempt * PROJECT_SHARD_MARGIN * (SCRIPT_JOB_MB + fixed + micro * per_image)
    )


ENCODER = "results/generator/encoder.pt"


def get_projection_loss_models(wildcards):
    """The feature networks this dataset's projection loss reads: `vgg16` (lpips_vgg16), `facenet`."""
    projection = get_projection_params(wildcards)
    terms = loss_terms(projection["loss"])
    models = {}
    if "lpips_vgg16" in terms and projection["vgg16_path"]:
        models["vgg16"] = projection["vgg16_path"]
    if "facenet" in terms:
        models["facenet"] = model_file("facenet_casia")
    return models


def get_encoder_input(wildcards):
    """The encoder checkpoint when this dataset's projection starts from it, else nothing."""
    return ENCODER if get_projection_params(wildcards)["init"] == "encoder" else []


def projected_datasets():
    return [name for name, ds in DATASETS.items() if ds["project"]]


# ---- directions and edits -----------------------------------------------------------------

DIRECTIONS = config["directions"]
PCA = config["pca"]
VISIBLE_SUBSPACE = "results/generator/visible_subspace.h5"
DIRECTION = "results/directions/{name}.npy"
DIRECTION_METRICS = "results/directions/{name}.json"


# `name`: a fitted direction (fit_direction), never a PCA one (fit_pca writes pca_{k}.npy);
# `edit`: any direction with an edit grid, PCA ones included.
wildcard_constraints:
    name=r"(?!pca_\d+\b)[A-Za-z0-9_\-]+",
    edit=r"[A-Za-z0-9_\-]+",
    k=r"\d+",


def get_direction(wildcards):
    """The config entry of a direction; a name missing from the config gets a clear message."""
    if wildcards.name not in DIRECTIONS:
        known = ", ".join(sorted(DIRECTIONS)) or "none"
        raise ValueError(
            f"direction '{wildcards.name}' is not in the config's `directions:` (known: {known})"
        )
    return DIRECTIONS[wildcards.name]


def get_direction_input(wildcards):
    """Latents of the direction's dataset, or the primal and condition normals of a conditional one."""
    entry = get_direction(wildcards)
    if entry.get("conditional"):
        cond = entry["conditional"]
        inputs = {
            "primal": DIRECTION.format(name=cond["primal"]),
            "conditions": expand(DIRECTION, name=cond["given"]),
            # the primal's dataset and generator hash go into the conditional's metrics
            "primal_metrics": DIRECTION_METRICS.format(name=cond["primal"]),
        }
        if config["demo"]["enabled"] and all(planted_of(entry).values()):
            inputs["planted"] = get_demo_outputs()["ground_truth"]
        return inputs
    if entry["source"] == "generated":
        # true latents, not projections: the visible subspace (a remedy for projection noise) is not applied
        return {"attributes": GENERATED_ATTRIBUTES}
    inputs = {"latents": LATENTS.format(dataset=entry["dataset"])}
    if config["visible_subspace"]["energy"] < 1:
        inputs["visible"] = VISIBLE_SUBSPACE
    if entry.get("planted") and config["demo"]["enabled"]:
        inputs["planted"] = get_demo_outputs()["ground_truth"]
    return inputs


def planted_of(entry):
    """Planted demo direction of a conditional entry's primal and of each given direction (None: none)."""
    cond = entry["conditional"]
    names = [cond["primal"], *cond["given"]]
    return {n: DIRECTIONS.get(n, {}).get("planted") for n in names}


def get_planted_of(wildcards):
    """Planted demo direction of each direction a conditional entry names ({} for a plain entry)."""
    entry = get_direction(wildcards)
    return planted_of(entry) if entry.get("conditional") else {}


def get_pca_outputs():
    return expand(DIRECTION, name=[f"pca_{k}" for k in range(PCA["components"])])


def get_pca_latents():
    return LATENTS.format(dataset=PCA["dataset"])


def get_edit_sources():
    """The edit grids' rows: the first latents of `edits.dataset`, or of the generated samples when it is empty."""
    if not config["edits"]["dataset"]:
        return GENERATED_ATTRIBUTES
    return LATENTS.format(dataset=config["edits"]["dataset"])


def get_edit_direction(wildcards):
    """The normal an edit grid moves along: a fitted direction's or a PCA one's."""
    return DIRECTION.format(name=wildcards.edit)


def direction_targets():
    """Every direction's normal and edit grid, the PCA ones included."""
    names = [*DIRECTIONS, *(f"pca_{k}" for k in range(PCA["components"]))]
    targets = expand(rules.fit_direction.output.normal, name=DIRECTIONS)
    targets += rules.fit_pca.output.normals
    targets += expand(rules.render_edits.output.grid, edit=names)
    return targets


# ---- the browser editor ---------------------------------------------------------------------

EDITOR_COMMAND = "results/editor/serve.txt"


def get_editor_directions():
    """The directions the editor offers as sliders: every fitted normal and the PCA ones."""
    return expand(rules.fit_direction.output.normal, name=DIRECTIONS) + list(
        rules.fit_pca.output.normals
    )


def get_editor_results(wildcards, output):
    """The results folder the editor serves: the one its command file lies in (results/editor/serve.txt)."""
    return str(Path(output.command).parents[1])


def get_configfile():
    """The config file `facelatent serve` should read: the one given with --configfile, else the workflow's."""
    given = list(workflow.overwrite_configfiles or [])
    return str(given[-1]) if given else "config/config.yaml"


# ---- generated samples scored by attribute predictors; directions' edits measured -------------

from facelatent.attributes.config import shard_names

GENERATED = config["generated"]
GENERATED_SHARD = "results/generated/latents/{gshard}.h5"
GENERATED_SCORES = "results/generated/scores/{gshard}.h5"
GENERATED_ATTRIBUTES = "results/generated/attributes.h5"
EVALUATION_TABLE = "results/evaluation/{name}.tsv"
EVALUATION_SUMMARY = "results/evaluation/{name}.json"
GENERATED_SHARDS = shard_names(GENERATED["samples"], GENERATED["samples_per_shard"])


wildcard_constraints:
    gshard=r"\d\d\d+",


def get_generated_shards(pattern):
    """One file per generated shard (the shard count follows from the config alone: no checkpoint)."""
    return expand(pattern, gshard=GENERATED_SHARDS)


def predictor_needs():
    """What the configured predictors run first: mtcnn and/or dlib68 (predictor_table's `needs`)."""
    if not GENERATED["predictors"]:
        return set()
    from facelatent.attributes.predictors import predictor_table

    table = predictor_table()
    return {table[name].needs for name in GENERATED["predictors"]}


def get_predictor_models(wildcards):
    """The detector weights the predictors need; dlib's 68 points start from MTCNN's box, so dlib68 brings mtcnn."""
    needs = predictor_needs()
    models = {}
    if needs & {"mtcnn", "dlib68"}:
        models["mtcnn"] = model_file("mtcnn")
    if "dlib68" in needs:
        models["dlib68"] = model_file("dlib68")
    return models


def num_ws_bound():
    """The most style inputs a generator of the configured kind and resolution has (NVlabs configs)."""
    kind, resolution = config["generator"]["kind"], config["generator"]["resolution"]
    if kind == "dcgan":
        return 1
    if kind == "stylegan2":
        return 2 * int(math.log2(resolution)) - 2
    return 16  # StyleGAN3: 14 layers + 2 at every resolution


def latent_row_bytes():
    """Bytes of one drawn sample as stored: w [num_ws, w_dim] and z (z_dim = w_dim for every backend) float32."""
    return 4 * config["generator"]["w_dim"] * (num_ws_bound() + 1)


# Memory and time of the generated route, measured on this 2-core CPU with the 64 px demo DCGAN (benchmark max_rss;
# README, Generated directions). sample_latents: the imports and the generator, then the shard's z and w held about 3
# times (the draw, the mapped copy, the writer's). predict_attributes: the imports, the generator, MTCNN and dlib's
# 100 MB predictor, one batch of renders with the detectors' float copies (PREDICT_BYTES_PER_VALUE per pixel value),
# and the shard's scores. evaluate_direction: the same plus the FR model. Bases have room for a CUDA context.
SAMPLE_BASE_MB = 1000
SAMPLE_COPIES = 3
PREDICT_BASE_MB = 1500
PREDICT_BYTES_PER_VALUE = 64
PREDICT_SECONDS_PER_SAMPLE = 0.07
EVALUATE_BASE_MB = 2500
MERGE_ATTRIBUTES_MB = 1500
PLOT_ATTRIBUTES_BASE_MB = 1500


def batch_bytes():
    """One batch of renders: generated.batch_size x 3 x resolution^2 values."""
    return GENERATED["batch_size"] * 3 * config["generator"]["resolution"] ** 2


def sample_latents_mem_mb(wildcards):
    """A fixed part and the shard's latents (samples_per_shard rows of z and w), held SAMPLE_COPIES times."""
    rows = min(GENERATED["samples_per_shard"], max(GENERATED["samples"], 1))
    return SAMPLE_BASE_MB + math.ceil(SAMPLE_COPIES * rows * latent_row_bytes() / 2**20)


def predict_attributes_mem_mb(wildcards, attempt):
    """A fixed part and one batch of renders with the detectors' working copies; a retry doubles it."""
    return attempt * (
        PREDICT_BASE_MB + math.ceil(batch_bytes() * PREDICT_BYTES_PER_VALUE / 2**20)
    )


def predict_attributes_runtime(wildcards):
    """Minutes: the CPU rate per sample (renders + predictors) with 2x margin, and 10 minutes to start."""
    rows = min(GENERATED["samples_per_shard"], max(GENERATED["samples"], 1))
    return 10 + math.ceil(2 * rows * PREDICT_SECONDS_PER_SAMPLE / 60)


def merge_attributes_mem_mb():
    """Imports, one 64 MiB block of latents (facelatent/attributes/scoring.py MERGE_BLOCK_BYTES) twice, and one
    shard's ids at a time: flat in the sample count."""
    return MERGE_ATTRIBUTES_MB


def plot_attributes_mem_mb():
    """A fixed part and every score (float64) twice: the frame and one sorted column."""
    scores = max(GENERATED["samples"], 1) * len(GENERATED["predictors"]) * 8 * 2
    return PLOT_ATTRIBUTES_BASE_MB + math.ceil(scores / 2**20)


def evaluate_direction_mem_mb():
    """A fixed part (generator, detectors, FR model) and one batch of renders with the detectors' copies."""
    return EVALUATE_BASE_MB + math.ceil(batch_bytes() * PREDICT_BYTES_PER_VALUE / 2**20)


def evaluate_direction_runtime():
    """Minutes: each held-out sample is rendered, scored and embedded once per strength (FaceNet on the CPU: about
    0.3 s a face), with 2x margin, and 10 minutes to start."""
    faces = GENERATED["evaluation"]["samples"] * len(
        GENERATED["evaluation"]["strengths"]
    )
    return 10 + math.ceil(2 * faces * (PREDICT_SECONDS_PER_SAMPLE + 0.3) / 60)


def get_direction_target(wildcards):
    """The predictor a direction should move: its `target`, else a generated direction's label.score, else None."""
    entry = get_direction(wildcards)
    if entry.get("target"):
        return entry["target"]
    if entry.get("source") == "generated" and not entry.get("conditional"):
        return entry["label"]["score"]
    return None


# fit_direction on generated samples holds the chosen rows (2 x ratio x samples) flattened as float64, about 3 times
# (the rows, a cross-validation fold's copy, the SVM's own), plus liblinear's 16-byte node per value.
FIT_BASE_MB = 2000
FIT_BYTES_PER_VALUE = 3 * 8 + 16


def fit_direction_mem_mb(wildcards):
    """2 GB for a projected or conditional direction; for a generated one, its chosen rows as the SVM holds them
    (500,000 samples at ratio 0.02 in W+ of 14 x 512: 20,000 x 7,168 values, about 5.3 GB).
    """
    entry = get_direction(wildcards)
    if entry.get("conditional") or entry.get("source") != "generated":
        return FIT_BASE_MB
    rows = 2 * int(entry["label"]["ratio"] * GENERATED["samples"])
    width = config["generator"]["w_dim"] * (
        num_ws_bound() if config["projection"]["space"] == "w+" else 1
    )
    return FIT_BASE_MB + math.ceil(rows * width * FIT_BYTES_PER_VALUE / 2**20)


def direction_source(entry):
    if entry.get("conditional"):
        return "conditional"
    return entry.get("source", "projected")


def get_direction_sources():
    """Each direction's route (projected, generated or conditional), for the comparison table."""
    return {name: direction_source(entry) for name, entry in DIRECTIONS.items()}


def evaluating():
    """Directions are measured when predictors are configured and held-out samples asked for."""
    return bool(
        GENERATED["predictors"]
        and GENERATED["evaluation"]["samples"] > 0
        and DIRECTIONS
    )


def generated_targets():
    """The merged scores' figure (when samples are drawn) and every direction's measured edit with the comparison."""
    targets = []
    if GENERATED["samples"] > 0:
        targets.append(rules.plot_attributes.output.figure)
    if evaluating():
        targets += expand(rules.evaluate_direction.output.figure, name=DIRECTIONS)
        targets += list(rules.compare_directions.output)
    return targets


# ---- action units ---------------------------------------------------------------------------

AU_MODEL = "results/au/{dataset}/model.ckpt"


def get_au_model(wildcards):
    """The AU classifier's checkpoint; with `au.dataset: null` there is none to predict with."""
    if config["au"]["dataset"] is None:
        raise ConfigError(
            "config key 'au.dataset' is null (no AU classifier), so no AUs can be predicted: "
            "name the CK+ dataset to train it on"
        )
    return AU_MODEL.format(dataset=config["au"]["dataset"])


# ---- face-recognition embeddings ------------------------------------------------------------


def get_embedder_model():
    """The fetched FaceNet for the built-in model name; a user checkpoint path otherwise."""
    model = config["embedding"]["model"]
    if model in ("facenet_casia", "facenet"):
        return model_file("facenet_casia")
    return model.split(":", 1)[-1]


EMBEDDING_SHARD = "results/embeddings/{dataset}/{shard}.h5"
# embed_shard: torch, CUDA and the FR weights, plus one batch of faces in flight at the generator's resolution
# (uint8 as read, float32, the crop and its antialiased resize), EMBED_BYTES_PER_VALUE per pixel and channel.
# Measured on the CPU with FaceNet: 0.5 GB fixed and 10.7 bytes per value (1024 px, batches of 8 and 32).
# embed_dataset: torch, CUDA and matplotlib, plus per face its 512-d float32 embedding (read back whole for the
# metrics, sorted by subject), id, subject and index row. Measured on the CPU: 0.6 GB fixed and 3.5 KiB per face
# (20,000 and 100,000 faces). The fixed parts leave room for a CUDA context; the slopes have 1.5x and 2.3x margin.
EMBED_BASE_MB = 2000
EMBED_BYTES_PER_VALUE = 16
EMBED_MERGE_BASE_MB = 2000
EMBED_MERGE_BYTES_PER_FACE = 8192


def get_embedding_shards(wildcards):
    return expand(
        EMBEDDING_SHARD, dataset=wildcards.dataset, shard=get_shards(wildcards.dataset)
    )


def embed_shard_mem_mb():
    """embed_shard's memory: a fixed part and one batch of `embedding.batch_size` faces at the generator's resolution."""
    resolution = config["generator"]["resolution"]
    batch = config["embedding"]["batch_size"]
    return EMBED_BASE_MB + math.ceil(
        batch * 3 * resolution**2 * EMBED_BYTES_PER_VALUE / 2**20
    )


def embed_merge_mem_mb(wildcards, input):
    """embed_dataset's memory: a fixed part and the dataset's embeddings, ids and subjects, for at most
    shards x images_per_shard faces (the shard count is the index checkpoint's; no file is read here).
    """
    faces = len(input.shards) * get_images_per_shard(wildcards)
    return EMBED_MERGE_BASE_MB + math.ceil(faces * EMBED_MERGE_BYTES_PER_FACE / 2**20)


def embedding_targets():
    return expand(
        rules.embed_dataset.output.metrics, dataset=config["embedding"]["datasets"]
    )


# ---- synthetic identity datasets ------------------------------------------------------------

from facelatent.embeddings.spec import parse_embedder_spec
from facelatent.synthetic.config import part_names

SYNTHETIC_RUNS = config["synthetic"]["runs"]
REFERENCES = "results/synthetic/{run}/references.h5"
VARIATIONS = "results/synthetic/{run}/variations/{part}.h5"


wildcard_constraints:
    run="|".join(SYNTHETIC_RUNS) if SYNTHETIC_RUNS else "NO_RUN",
    part=r"\d\d\d+",


def get_synthetic_run(wildcards):
    """The config entry of a synthetic run (schema defaults filled in)."""
    if wildcards.run not in SYNTHETIC_RUNS:
        known = ", ".join(sorted(SYNTHETIC_RUNS)) or "none"
        raise ValueError(
            f"synthetic run '{wildcards.run}' is not in the config's `synthetic.runs:` (known: {known})"
        )
    # judge, leakage and the variation measures act after generation: kept out, their settings never rerun a
    # generation job
    return {
        k: v
        for k, v in SYNTHETIC_RUNS[wildcards.run].items()
        if k not in ("judge", "leakage", "variation")
    }


def get_synthetic_embedder_file(wildcards):
    """The FR weights file of a run; a fetched model's path makes Snakemake fetch it first."""
    spec = get_synthetic_run(wildcards)["embedder"]
    if isinstance(spec, str) and not Path(spec).suffix and ":" not in spec:
        name = {"facenet": "facenet_casia"}.get(spec, spec)
        return model_file(name)
    return str(parse_embedder_spec(spec).path)


def get_references_input(wildcards):
    """Generator and FR weights, plus the obstacle embeddings file when the run names one."""
    run = get_synthetic_run(wildcards)
    inputs = {
        "generator": get_generator_checkpoint(),
        "embedder": get_synthetic_embedder_file(wildcards),
    }
    if run["references"]["obstacles"]:
        inputs["obstacles"] = run["references"]["obstacles"]
    if run["references"]["face_gate"]["enabled"]:
        inputs["mtcnn"] = model_file("mtcnn")
    return inputs


def get_variations_input(wildcards):
    """References, generator, FR weights, and for DisCo each covariate's normal and metrics."""
    run = get_synthetic_run(wildcards)
    inputs = {
        "references": REFERENCES.format(run=wildcards.run),
        "generator": get_generator_checkpoint(),
        "embedder": get_synthetic_embedder_file(wildcards),
    }
    if run["variations"]["algorithm"] == "disco":
        names = run["variations"]["covariates"]
        inputs["directions"] = expand(DIRECTION, name=names)
        inputs["metrics"] = expand(DIRECTION_METRICS, name=names)
    return inputs


def get_variation_parts(wildcards):
    """One variations file per block of identities (none when the run has no variations)."""
    run = get_synthetic_run(wildcards)
    if run["variations"]["algorithm"] == "none":
        return []
    parts = part_names(run["num_identities"], run["variations"]["identities_per_part"])
    return expand(VARIATIONS, run=wildcards.run, part=parts)


CROPS = "results/synthetic/{run}/crops"
# Memory of the synthetic jobs that grow with the run, from its config alone (faces = num_identities x
# (num_augmentations + 1)). Measured with resource.getrusage (ru_maxrss) on generated runs of 512-d w and
# 512-d embeddings with 64 augmentations: 80, 320 and 1280 identities (5,200, 20,800 and 83,200 faces).
# merge_samples: 290 MB fixed (imports, the references) plus one 65,536-row block of a 512-d column, held
# twice (read and gathered, 260 MB), and 400 bytes per face (identity, label, row keys; with 4,096-row blocks
# 299 -> 323 MB from 20,800 to 83,200 faces). Base and slope have 1.8x and 2.5x margin.
MERGE_SAMPLES_BASE_MB = 1000
MERGE_SAMPLES_BYTES_PER_FACE = 1024
# plot_synthetic: 515 MB fixed (torch, matplotlib) with metrics.impostor exact, 12 bytes more per sampled pair
# with `sample` (705 vs 589 MB at 20,800 faces, 10M pairs), and 2.6-3.7 KB per face, 1.3-1.8 copies of a 512-d
# float32 embedding (sample: 705 -> 862 MB from 20,800 to 83,200 faces; exact: 532 -> 589 MB from 5,200 to
# 20,800). The FR model's width is not in the config: 512 is the widest we load (FaceNet, ArcFace, AdaFace);
# a wider one fails the first try and a retry (`--retries 1`) doubles the whole. The full-size rehearsal
# (bench/scale.py, 650,000 faces, 10M sampled pairs) peaked at 4376 MB, over the 4203 MB that 2 copies gave:
# 6.2 KB per face from 83,200 to 650,000 faces, so 3 copies (5,512 MB there, 1.26x).
SYNTHETIC_EMBEDDING_WIDTH = 512
PLOT_BASE_MB = 800
PLOT_COPIES_PER_EMBEDDING = 3
PLOT_BYTES_PER_FACE = 1024
PLOT_BYTES_PER_SAMPLED_PAIR = 24
# render_crops (per part): 636 MB fixed with a 64 px, 512-d stand-in generator in batches of 500, and 1.1 KB per
# face of the part (642 -> 658 MB from 5,200 to 20,800 faces); the fixed part keeps the former 4000 MB for a
# 1024 px StyleGAN's activations (not measured here; a retry doubles it), the slope counts 3 copies of each W.
CROPS_BASE_MB = 4000
CROPS_COPIES_PER_W = 3
CROPS_BYTES_PER_FACE = 512
CROP_PART = "results/synthetic/{run}/crops/{part}"
CROP_PART_MANIFEST = "results/synthetic/{run}/crops/{part}.tsv"


def crop_parts(wildcards):
    """render_crops' parts: the variation parts, or one part ('000', every reference) without variations."""
    run = get_synthetic_run(wildcards)
    if run["variations"]["algorithm"] == "none":
        return part_names(1, 1)
    return part_names(run["num_identities"], run["variations"]["identities_per_part"])


def get_crops_input(wildcards):
    """A crop part's references, variations (none without variations), generator and FR weights."""
    run = get_synthetic_run(wildcards)
    parts = crop_parts(wildcards)
    if wildcards.part not in parts:
        raise ValueError(
            f"synthetic run '{wildcards.run}' has no crop part '{wildcards.part}' (parts: {', '.join(parts)})"
        )
    inputs = {
        "references": REFERENCES.format(run=wildcards.run),
        "generator": get_generator_checkpoint(),
        "embedder": get_synthetic_embedder_file(wildcards),
    }
    if run["variations"]["algorithm"] != "none":
        inputs["variations"] = VARIATIONS.format(run=wildcards.run, part=wildcards.part)
    return inputs


def get_crop_manifests(wildcards):
    return expand(CROP_PART_MANIFEST, run=wildcards.run, part=crop_parts(wildcards))


def get_crop_dirs(wildcards):
    return expand(CROP_PART, run=wildcards.run, part=crop_parts(wildcards))


def get_crops_dir(wildcards):
    """The folder the merged crops.tsv's paths are relative to (it holds one folder per part)."""
    return CROPS.format(run=wildcards.run)


VARIATION_PART = "results/synthetic/{run}/variation/{part}.tsv"


def get_variation_measure_input(wildcards):
    """A crop part's PNGs and manifest, its embeddings (references, variations) and the MTCNN weights."""
    inputs = get_crops_input(wildcards)
    del inputs["generator"], inputs["embedder"]
    inputs["crops"] = CROP_PART.format(run=wildcards.run, part=wildcards.part)
    inputs["manifest"] = CROP_PART_MANIFEST.format(
        run=wildcards.run, part=wildcards.part
    )
    inputs["mtcnn"] = model_file("mtcnn")
    return inputs


def get_variation_tables(wildcards):
    return expand(VARIATION_PART, run=wildcards.run, part=crop_parts(wildcards))


def measure_variation_mem_mb(wildcards):
    """Imports + MTCNN (~600 MB) and three float32 copies of a part's 512-d embeddings."""
    run = get_synthetic_run(wildcards)
    faces = run["variations"]["identities_per_part"] * (
        run["variations"]["dispersion"]["num_augmentations"] + 1
    )
    return 1000 + 3 * faces * SYNTHETIC_EMBEDDING_WIDTH * 4 // 1_000_000


def plot_variation_mem_mb(wildcards):
    """One part table in pandas (~200 B per face) plus 20 B of deviations per face of the run."""
    run = get_synthetic_run(wildcards)
    part = run["variations"]["identities_per_part"] * (
        run["variations"]["dispersion"]["num_augmentations"] + 1
    )
    return 1000 + (200 * part + 20 * synthetic_faces(wildcards)) // 1_000_000


def synthetic_faces(wildcards):
    """A run's face count from its config alone: num_identities x (num_augmentations + 1)."""
    run = get_synthetic_run(wildcards)
    augmentations = (
        0
        if run["variations"]["algorithm"] == "none"
        else run["variations"]["dispersion"]["num_augmentations"]
    )
    return run["num_identities"] * (augmentations + 1)


def part_faces(wildcards):
    """The most faces one crop part holds: identities_per_part x (num_augmentations + 1), or every reference."""
    run = get_synthetic_run(wildcards)
    if run["variations"]["algorithm"] == "none":
        return run["num_identities"]
    per_part = min(run["num_identities"], run["variations"]["identities_per_part"])
    return per_part * (run["variations"]["dispersion"]["num_augmentations"] + 1)


def merge_samples_mem_mb(wildcards):
    """merge_samples' memory: a fixed part, one block of rows, and every face's identity, label and row keys."""
    return MERGE_SAMPLES_BASE_MB + math.ceil(
        synthetic_faces(wildcards) * MERGE_SAMPLES_BYTES_PER_FACE / 2**20
    )


def plot_synthetic_mem_mb(wildcards, attempt):
    """plot_synthetic's memory: a fixed part, every face's float32 embedding (SYNTHETIC_EMBEDDING_WIDTH wide, in
    PLOT_COPIES_PER_EMBEDDING copies) with its identity and label, and the impostor sample where there is one;
    a retry multiplies it (a wider FR model)."""
    per_face = (
        SYNTHETIC_EMBEDDING_WIDTH * 4 * PLOT_COPIES_PER_EMBEDDING + PLOT_BYTES_PER_FACE
    )
    metrics = config["metrics"]
    sampled = metrics["impostor_sample"] if metrics["impostor"] == "sample" else 0
    data = synthetic_faces(wildcards) * per_face + sampled * PLOT_BYTES_PER_SAMPLED_PAIR
    return attempt * (PLOT_BASE_MB + math.ceil(data / 2**20))


def render_crops_mem_mb(wildcards, attempt):
    """render_crops' memory per part: a fixed part (a retry doubles it) and the part's W rows, generator.w_dim
    float32 each, with their sort copies."""
    w_bytes = (
        config["generator"]["w_dim"] * 4 * CROPS_COPIES_PER_W + CROPS_BYTES_PER_FACE
    )
    return attempt * CROPS_BASE_MB + math.ceil(part_faces(wildcards) * w_bytes / 2**20)


def synthetic_targets():
    """Every run's merged files, figures and Idiap export."""
    outputs = [
        rules.merge_samples.output.samples,
        rules.merge_stats.output.stats,
        rules.merge_crops.output.manifest,
        *rules.plot_synthetic.output,
        *rules.plot_variation.output,
        rules.export_synthetics.output.samples,
    ]
    targets = []
    for run in SYNTHETIC_RUNS:
        targets += expand(outputs, run=run)
    return targets


# ---- face recognition trained on the sets, evaluated the field's way ---------------------------------

from types import SimpleNamespace

from facelatent.fr.plan import held_out_counts, model_rows

FR = config["fr"]
FR_TRAINING_SETS = FR["training_sets"]
FR_BENCHMARKS = FR["benchmarks"]
FR_MODEL_ROWS = model_rows(FR_TRAINING_SETS, FR["evaluate_untrained"])
FR_BACKBONE = "results/fr/models/{trainset}/backbone.safetensors"
FR_INITIAL = "results/fr/models/{trainset}/initial.safetensors"
FR_EVALUATION = "results/fr/evaluation/{frmodel}.tsv"
FR_BENCHMARK_BIN = "results/fr/benchmarks/{benchmark}.bin"


wildcard_constraints:
    trainset="|".join(FR_TRAINING_SETS) if FR_TRAINING_SETS else "NO_TRAINSET",
    frmodel="|".join(FR_MODEL_ROWS) if FR_MODEL_ROWS else "NO_FRMODEL",
    benchmark="|".join(FR_BENCHMARKS) if FR_BENCHMARKS else "NO_BENCHMARK",


# train_fr's host memory by backbone (the model, its optimiser state, the loader's prefetched batches). Measured
# (the benchmark files' max_rss): tiny on the demo 838-854 MB. The IResNets' figures are not measured on their real
# sets: 43.6 M parameters of IResNet-50 with SGD state are 0.5 GB, workers hold batches of 256 x 112 px (10 MB each).
FR_TRAIN_MB = {
    "tiny": 2000,
    "iresnet18": 8000,
    "iresnet34": 8000,
    "iresnet50": 8000,
    "iresnet100": 12000,
}
# evaluate_fr holds one benchmark decoded (about 20 x its JPEG bytes: lfw.bin's 12,000 crops are 450 MB) with
# its embeddings, plus the model and torch.
FR_EVALUATE_BASE_MB = 1500
FR_EVALUATE_DECODED_PER_BYTE = 20


def fr_train_mem_mb(wildcards, attempt):
    return FR_TRAIN_MB[FR["training"]["arch"]] * attempt


def fr_evaluate_mem_mb(wildcards, input, attempt):
    sizes = [
        Path(p).stat().st_size
        for p in input
        if Path(p).is_file() and not p.endswith(".safetensors")
    ]
    largest = max(sizes, default=0)
    return (
        FR_EVALUATE_BASE_MB + FR_EVALUATE_DECODED_PER_BYTE * largest // 2**20
    ) * attempt


def get_training_set(wildcards):
    return FR_TRAINING_SETS[wildcards.trainset]


def get_train_fr_input(wildcards):
    """A synthetic run's crops (the manifest of the identities its leakage check keeps, and every part folder), or
    an aligned dataset's shards and index."""
    entry = get_training_set(wildcards)
    if "synthetic_run" in entry:
        run = SimpleNamespace(run=entry["synthetic_run"])
        return {
            "manifest": rules.check_leakage.output.train.format(run=run.run),
            "crops": get_crop_dirs(run),
        }
    return {
        "shards": expand(
            ALIGNED_SHARD, dataset=entry["dataset"], shard=get_shards(entry["dataset"])
        ),
        "index": rules.index_dataset.output.index.format(dataset=entry["dataset"]),
    }


def get_train_set(wildcards):
    """train_fr's data as its job reads it; an aligned set leaves out the subjects its benchmarks hold out."""
    entry = get_training_set(wildcards)
    files = get_train_fr_input(wildcards)
    if "synthetic_run" in entry:
        return {
            "kind": "crops",
            "manifest": files["manifest"],
            "root": CROPS.format(run=entry["synthetic_run"]),
        }
    return {
        "kind": "aligned",
        "shards": files["shards"],
        "index": files["index"],
        "held_out": held_out_counts(FR_BENCHMARKS, entry["dataset"]),
    }


def get_benchmark(wildcards):
    return FR_BENCHMARKS[wildcards.benchmark]


def get_benchmark_data(wildcards):
    entry = get_benchmark(wildcards)
    return {
        "shards": expand(
            ALIGNED_SHARD, dataset=entry["dataset"], shard=get_shards(entry["dataset"])
        ),
        "index": rules.index_dataset.output.index.format(dataset=entry["dataset"]),
    }


def benchmark_files():
    """Every benchmark's files as evaluate_fr reads them: a made .bin, a user's .bin, or a pair list and folder."""
    files = {}
    for name, entry in FR_BENCHMARKS.items():
        if "dataset" in entry:
            files[name] = {"bin": FR_BENCHMARK_BIN.format(benchmark=name)}
        elif "bin" in entry:
            files[name] = {"bin": entry["bin"]}
        else:
            files[name] = {
                "pairs": entry["pairs"],
                "root": entry["root"],
                "pattern": entry["pattern"],
            }
    return files


def get_evaluate_fr_input(wildcards):
    """The model's backbone (the first training set's initial one for the untrained row) and every benchmark."""
    if wildcards.frmodel == "untrained":
        weights = FR_INITIAL.format(trainset=next(iter(FR_TRAINING_SETS)))
    else:
        weights = FR_BACKBONE.format(trainset=wildcards.frmodel)
    inputs = {"weights": weights}
    for name, files in benchmark_files().items():
        inputs[f"{name}_data"] = files.get("bin") or files["pairs"]
    return inputs


def fr_targets():
    """The comparison table and figure when any training set is configured."""
    if not FR_TRAINING_SETS:
        return []
    return list(rules.compare_fr.output)


# ---- judging synthetic sets: dlib's ResNet, identity leakage ---------------------------------

# judge_synthetic: the imports (torch, matplotlib), dlib's two models (22 + 100 MB) and one block of crops, plus
# per face its 128-d dlib descriptor and the run's FR embedding (SYNTHETIC_EMBEDDING_WIDTH wide) in a few copies.
# Measured on the demo (40 faces, benchmark max_rss): 373-475 MB; the base keeps room for a CUDA-free torch import
# spike and a larger block, the per-face part counts 3 copies.
JUDGE_BASE_MB = 1500
JUDGE_BYTES_PER_FACE = 3 * 4 * (128 + SYNTHETIC_EMBEDDING_WIDTH) + 1024
# check_leakage: the imports and the real embeddings (the files' bytes, mostly float32 rows), held about 3 times:
# concatenated, sorted by subject for the real pair histograms, and the files' own read. Demo (172 real images): 331 MB.
LEAKAGE_BASE_MB = 1500
LEAKAGE_COPIES = 3


# dlib's ResNet with its landmarks and chip: 0.16 s of CPU per crop on this machine (demo crops, one thread)
JUDGE_SECONDS_PER_CROP = 0.16
JUDGE_RUNTIME_MARGIN = 2


def get_judge_max_identities(wildcards):
    return SYNTHETIC_RUNS[wildcards.run]["judge"]["max_identities"]


def judged_faces(wildcards):
    """The faces judge_synthetic embeds: every face of the run, or those of its first `judge.max_identities`."""
    faces = synthetic_faces(wildcards)
    cap = get_judge_max_identities(wildcards)
    run = get_synthetic_run(wildcards)
    if cap is None or cap >= run["num_identities"]:
        return faces
    return faces // run["num_identities"] * cap


def judge_synthetic_mem_mb(wildcards):
    """judge_synthetic's memory: a fixed part and, per face of the run, its descriptors and bookkeeping."""
    return JUDGE_BASE_MB + math.ceil(
        synthetic_faces(wildcards) * JUDGE_BYTES_PER_FACE / 2**20
    )


def judge_synthetic_runtime(wildcards):
    """judge_synthetic's minutes: dlib's rate per judged crop, with margin, and 10 minutes for the pair metrics."""
    return 10 + math.ceil(
        JUDGE_RUNTIME_MARGIN * judged_faces(wildcards) * JUDGE_SECONDS_PER_CROP / 60
    )


def get_leakage(wildcards):
    """The run's `leakage:` settings (schema defaults filled in)."""
    return SYNTHETIC_RUNS[wildcards.run]["leakage"]


def get_leakage_datasets(wildcards):
    """The real datasets a run's identities are compared with: its `leakage.datasets`, else `embedding.datasets`."""
    names = get_leakage(wildcards)["datasets"] or config["embedding"]["datasets"]
    if not names:
        raise ConfigError(
            f"config key 'synthetic.runs.{wildcards.run}.leakage.datasets' is empty and so is "
            "'embedding.datasets': name a real dataset to check identity leakage against"
        )
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ConfigError(
            f"config key 'synthetic.runs.{wildcards.run}.leakage.datasets': dataset '{unknown[0]}' is not in `datasets:`"
        )
    return names


def get_synthetic_embedder_spec(wildcards):
    """The run's FR model spec as configured (leakage compares it with the real embeddings' spec)."""
    return get_synthetic_run(wildcards)["embedder"]


def get_leakage_embeddings(wildcards):
    return [
        rules.embed_dataset.output.embeddings.format(dataset=name)
        for name in get_leakage_datasets(wildcards)
    ]


def check_leakage_mem_mb(wildcards, input):
    """check_leakage's memory: a fixed part and the real embeddings files' rows (their size bounds the rows)."""
    real_bytes = sum(
        Path(p).stat().st_size for p in input.embeddings if Path(p).exists()
    )
    return LEAKAGE_BASE_MB + math.ceil(LEAKAGE_COPIES * real_bytes / 2**20)


def judge_targets():
    """Every run's dlib judge and leakage check (when some real dataset is embedded)."""
    targets = []
    for run in SYNTHETIC_RUNS:
        targets += expand(rules.judge_synthetic.output, run=run)
        if (
            SYNTHETIC_RUNS[run]["leakage"]["datasets"]
            or config["embedding"]["datasets"]
        ):
            targets += expand(rules.check_leakage.output, run=run)
    return targets


def get_variation_identities(wildcards):
    """variation.identities_per_part of the run (None = every identity of the part)."""
    return SYNTHETIC_RUNS[wildcards.run]["variation"]["identities_per_part"]
