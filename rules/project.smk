# Project aligned faces into W / W+ (GPU, resumable), then merge shards with the index labels.


localrules:
    merge_latents,


rule train_encoder:
    input:
        generator=get_generator_checkpoint(),
    output:
        ENCODER,
    log:
        "logs/train_encoder/train_encoder.log",
    benchmark:
        "benchmarks/train_encoder/train_encoder.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        encoder=config["encoder"],
        w_avg_samples=config["projection"]["schedule"]["w_avg_samples"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/train_encoder.py"


rule project_shard:
    input:
        unpack(get_projection_loss_models),
        aligned=rules.align_shard.output.aligned,
        generator=get_generator_checkpoint(),
        encoder=get_encoder_input,
    output:
        latents=LATENT_SHARD,
    log:
        "logs/project_shard/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/project_shard/{dataset}/{shard}.tsv"
    # a job killed for memory is resumed from its .partial file with twice the memory
    retries: 1
    group:
        "project"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=project_shard_mem_mb,
        runtime=720,
    params:
        projection=get_projection_params,
        generator=get_generator_params(),
    script:
        "../workflow_scripts/project_shard.py"


rule merge_latents:
    input:
        shards=get_latent_shards,
        aligned=get_aligned_shards,
        index=rules.index_dataset.output.index,
        generator=get_generator_checkpoint(),
    output:
        latents=LATENTS,
        grid=report(
            "results/latents/{dataset}/reconstructions.png",
            caption="../resources/report/reconstructions.rst",
            category="Projection",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "targets vs reconstructions"},
        ),
    log:
        "logs/merge_latents/{dataset}.log",
    benchmark:
        "benchmarks/merge_latents/{dataset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        generator=get_generator_params(),
    script:
        "../workflow_scripts/merge_latents.py"
