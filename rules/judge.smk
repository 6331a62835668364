# Judging synthetic sets: dlib's ResNet as an FR model independent of the one that shaped the set, and identity
# leakage (each synthetic identity's closest real person) with the crops of the identities kept for training.


rule judge_synthetic:
    input:
        samples=rules.merge_samples.output.samples,
        manifest=rules.merge_crops.output.manifest,
        crops=get_crop_dirs,
        model=model_file("dlib_resnet_v1"),
        predictor=model_file("dlib68"),
    output:
        metrics=report(
            "results/synthetic/{run}/judge.json",
            caption="../resources/report/synthetic_judge.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "dlib judge metrics"},
        ),
        histogram=report(
            "results/synthetic/{run}/judge.png",
            caption="../resources/report/synthetic_judge.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "dlib judge histogram"},
        ),
    log:
        "logs/judge_synthetic/{run}.log",
    benchmark:
        "benchmarks/judge_synthetic/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=judge_synthetic_mem_mb,
        runtime=judge_synthetic_runtime,
    params:
        crops_dir=get_crops_dir,
        max_identities=get_judge_max_identities,
        metrics=config["metrics"],
    script:
        "../workflow_scripts/judge_synthetic.py"


rule check_leakage:
    input:
        samples=rules.merge_samples.output.samples,
        manifest=rules.merge_crops.output.manifest,
        embeddings=get_leakage_embeddings,
    output:
        table="results/synthetic/{run}/leakage.tsv",
        train="results/synthetic/{run}/train.tsv",
        summary=report(
            "results/synthetic/{run}/leakage.json",
            caption="../resources/report/synthetic_leakage.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "leakage summary"},
        ),
        histogram=report(
            "results/synthetic/{run}/leakage.png",
            caption="../resources/report/synthetic_leakage.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "leakage histogram"},
        ),
    log:
        "logs/check_leakage/{run}.log",
    benchmark:
        "benchmarks/check_leakage/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=check_leakage_mem_mb,
        runtime=30,
    params:
        datasets=get_leakage_datasets,
        leakage=get_leakage,
        embedder=get_synthetic_embedder_spec,
        metrics=config["metrics"],
    script:
        "../workflow_scripts/check_leakage.py"
