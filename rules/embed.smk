# Face-recognition embeddings of aligned datasets, with same-vs-different-subject verification metrics.


rule embed_dataset:
    input:
        aligned=get_aligned_shards,
        index=rules.index_dataset.output.index,
        model=get_embedder_model(),
    output:
        embeddings="results/embeddings/{dataset}.h5",
        metrics=report(
            "results/embeddings/{dataset}.verification.json",
            caption="../resources/report/verification.rst",
            category="Face recognition",
            labels={"dataset": "{dataset}", "figure": "verification metrics"},
        ),
        histogram=report(
            "results/embeddings/{dataset}.histogram.png",
            caption="../resources/report/verification.rst",
            category="Face recognition",
            labels={"dataset": "{dataset}", "figure": "score histogram"},
        ),
    log:
        "logs/embed_dataset/{dataset}.log",
    benchmark:
        "benchmarks/embed_dataset/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        embedder=config["embedding"]["model"],
        crop=config["embedding"]["crop"],
        metrics=config["metrics"],
    script:
        "../workflow_scripts/embed_dataset.py"
