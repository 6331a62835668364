# Proposal for the lead engineer (not included by the Snakefile as is):
# 1. append the block below to rules/common.smk;
# 2. add `include: "rules/synthetic.smk"` to the Snakefile after rules/edit.smk;
# 3. in get_final_output(), add `targets += synthetic_targets()` before `return targets`.

# ---- synthetic identity datasets ------------------------------------------------------------

from facelatent.embeddings import parse_embedder_spec
from facelatent.synthetic.config import part_names

SYNTHETIC_RUNS = config["synthetic"]["runs"]


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
    return SYNTHETIC_RUNS[wildcards.run]


def get_synthetic_embedder_file(wildcards):
    """The FR weights file of a run; a fetched model's path makes Snakemake fetch it first."""
    spec = get_synthetic_run(wildcards)["embedder"]
    if isinstance(spec, str) and not Path(spec).suffix and ":" not in spec:
        name = {"facenet": "facenet_casia"}.get(spec, spec)
        return f"resources/models/{name}.safetensors"
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
    return inputs


def get_variations_input(wildcards):
    """References, generator, FR weights, and for DisCo each covariate's normal and metrics."""
    run = get_synthetic_run(wildcards)
    inputs = {
        "references": f"results/synthetic/{wildcards.run}/references.h5",
        "generator": get_generator_checkpoint(),
        "embedder": get_synthetic_embedder_file(wildcards),
    }
    if run["variations"]["algorithm"] == "disco":
        names = run["variations"]["covariates"]
        inputs["directions"] = [f"results/directions/{n}.npy" for n in names]
        inputs["metrics"] = [f"results/directions/{n}.json" for n in names]
    return inputs


def get_variation_parts(wildcards):
    """One variations file per block of identities (none when the run has no variations)."""
    run = get_synthetic_run(wildcards)
    if run["variations"]["algorithm"] == "none":
        return []
    parts = part_names(run["num_identities"], run["variations"]["identities_per_part"])
    return [f"results/synthetic/{wildcards.run}/variations/{p}.h5" for p in parts]


def synthetic_targets():
    """Every run's merged files, figures and Idiap export."""
    targets = []
    for run in SYNTHETIC_RUNS:
        root = f"results/synthetic/{run}"
        targets += [
            f"{root}/{name}"
            for name in (
                "samples.h5",
                "stats.h5",
                "crops.tsv",
                "histograms.png",
                "stats.png",
                "grid.png",
                "verification.json",
                "idiap/samples.h5",
            )
        ]
    return targets
