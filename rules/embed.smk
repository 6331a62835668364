# Face-recognition embeddings of aligned datasets, one job per shard, then a merge with same-vs-different-subject
# verification metrics.


rule embed_shard:
    input:
        aligned=rules.align_shard.output.aligned,
        model=get_embedder_model(),
    output:
        embeddings=EMBEDDING_SHARD,
    log:
        "logs/embed_shard/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/embed_shard/{dataset}/{shard}.tsv"
    group:
        "embed"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=embed_shard_mem_mb(),
        runtime=60,
    params:
        embedder=config["embedding"]["model"],
        crop=config["embedding"]["crop"],
        batch_size=config["embedding"]["batch_size"],
    script:
        "../workflow_scripts/embed_shard.py"


rule embed_dataset:
    input:
        shards=get_embedding_shards,
        index=rules.index_dataset.output.index,
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
        mem_mb=embed_merge_mem_mb,
        runtime=60,
    params:
        embedder=config["embedding"]["model"],
        crop=config["embedding"]["crop"],
        metrics=config["metrics"],
    script:
        "../workflow_scripts/embed_dataset.py"
