# Action-unit classifier on CK+ latents (Lightning), evaluated on unseen subjects.


rule train_au_classifier:
    input:
        latents=rules.merge_latents.output.latents,
    output:
        model=AU_MODEL,
        metrics=report(
            "results/au/{dataset}/metrics.json",
            caption="../resources/report/au_metrics.rst",
            category="Action units",
            labels={"dataset": "{dataset}", "figure": "metrics"},
        ),
        per_au=report(
            "results/au/{dataset}/per_au.tsv",
            caption="../resources/report/au_metrics.rst",
            category="Action units",
            labels={"dataset": "{dataset}", "figure": "per-AU table"},
        ),
        roc=report(
            "results/au/{dataset}/roc.png",
            caption="../resources/report/au_curves.rst",
            category="Action units",
            labels={"dataset": "{dataset}", "figure": "ROC"},
        ),
        pr=report(
            "results/au/{dataset}/pr.png",
            caption="../resources/report/au_curves.rst",
            category="Action units",
            labels={"dataset": "{dataset}", "figure": "precision-recall"},
        ),
    log:
        "logs/train_au_classifier/{dataset}.log",
    benchmark:
        "benchmarks/train_au_classifier/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        au=config["au"],
    script:
        "../workflow_scripts/train_au_classifier.py"


rule predict_aus:
    input:
        model=get_au_model,
        latents=rules.merge_latents.output.latents,
    output:
        "results/au/predictions/{dataset}.tsv",
    log:
        "logs/predict_aus/{dataset}.log",
    benchmark:
        "benchmarks/predict_aus/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/predict_aus.py"


rule predict_synthetic_aus:
    input:
        model=get_au_model,
        samples=rules.merge_samples.output.samples,
    output:
        aus=report(
            "results/synthetic/{run}/aus.tsv",
            caption="../resources/report/synthetic_aus.rst",
            category="Synthetic identities",
            labels={"run": "{run}", "figure": "AU probabilities"},
        ),
    log:
        "logs/predict_synthetic_aus/{run}.log",
    benchmark:
        "benchmarks/predict_synthetic_aus/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/predict_synthetic_aus.py"
