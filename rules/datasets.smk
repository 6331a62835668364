# Index datasets (a checkpoint: it decides the shard count) and download FFHQ shards. The checkpoint streams the
# FFHQ manifest once and writes one rows file and one download list per shard; each shard job reads only its own.


localrules:
    index_dataset,


checkpoint index_dataset:
    input:
        unpack(get_index_input),
    output:
        index="results/index/{dataset}.tsv",
        shards="results/index/{dataset}.shards.tsv",
        rows=directory("results/index/{dataset}/rows"),
        downloads=directory("results/index/{dataset}/downloads"),
    log:
        "logs/index_dataset/{dataset}.log",
    benchmark:
        "benchmarks/index_dataset/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        kind=get_dataset_kind,
        root=get_dataset_root,
        options=get_dataset_options,
        images_per_shard=get_images_per_shard,
    script:
        "../workflow_scripts/index_dataset.py"


rule download_shard:
    input:
        download_list=get_download_list,
    output:
        downloaded=DOWNLOADED_SHARD,
    log:
        "logs/download_shard/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/download_shard/{dataset}/{shard}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 4
    resources:
        mem_mb=1000,
        runtime=120,
    params:
        root=get_dataset_root,
    script:
        "../workflow_scripts/download_shard.py"
