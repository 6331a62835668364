# Detect and align faces at the generator's resolution, one job per shard.


localrules:
    align_report,


rule align_shard:
    input:
        unpack(get_align_input),
    output:
        aligned=ALIGNED_SHARD,
    log:
        "logs/align_shard/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/align_shard/{dataset}/{shard}.tsv"
    # a job killed for memory (a shard of unusually large photos) runs again with twice the memory
    retries: 1
    group:
        "align"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=align_shard_mem_mb,
        runtime=60,
    params:
        kind=get_dataset_kind,
        landmark_source=get_landmark_source,
        root=get_dataset_root,
        align=get_align_params(),
    script:
        "../workflow_scripts/align_shard.py"


rule align_report:
    input:
        get_aligned_shards,
    output:
        preview=report(
            "results/aligned/{dataset}/preview.png",
            caption="../resources/report/aligned_preview.rst",
            category="Datasets",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "aligned faces"},
        ),
        rejects=report(
            "results/aligned/{dataset}/rejects.tsv",
            caption="../resources/report/rejects.rst",
            category="Datasets",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "rejects"},
        ),
    log:
        "logs/align_report/{dataset}.log",
    benchmark:
        "benchmarks/align_report/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        max_reject_share=config["align"]["max_reject_share"],
    script:
        "../workflow_scripts/align_report.py"
