# InterFaceGAN's own route: latents drawn through the mapping (per shard, GPU), rendered and scored by offline
# attribute predictors, merged; then every direction's edit measured on held-out samples, and all compared.


localrules:
    compare_directions,


rule sample_latents:
    input:
        generator=get_generator_checkpoint(),
    output:
        latents=GENERATED_SHARD,
    log:
        "logs/sample_latents/{gshard}.log",
    benchmark:
        "benchmarks/sample_latents/{gshard}.tsv"
    group:
        "generated"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=sample_latents_mem_mb,
        runtime=30,
    params:
        generated=config["generated"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/sample_latents.py"


rule predict_attributes:
    input:
        unpack(get_predictor_models),
        latents=rules.sample_latents.output.latents,
        generator=get_generator_checkpoint(),
    output:
        scores=GENERATED_SCORES,
    log:
        "logs/predict_attributes/{gshard}.log",
    benchmark:
        "benchmarks/predict_attributes/{gshard}.tsv"
    # a job killed for memory resumes from its .partial file with twice the memory
    retries: 1
    group:
        "generated"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=predict_attributes_mem_mb,
        runtime=predict_attributes_runtime,
    params:
        generated=config["generated"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/predict_attributes.py"


rule merge_attributes:
    input:
        latents=get_generated_shards(GENERATED_SHARD),
        scores=get_generated_shards(GENERATED_SCORES),
    output:
        attributes=GENERATED_ATTRIBUTES,
    log:
        "logs/merge_attributes/merge_attributes.log",
    benchmark:
        "benchmarks/merge_attributes/merge_attributes.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=merge_attributes_mem_mb(),
        runtime=120,
    params:
        predictors=config["generated"]["predictors"],
    script:
        "../workflow_scripts/merge_attributes.py"


rule plot_attributes:
    input:
        attributes=rules.merge_attributes.output.attributes,
        generator=get_generator_checkpoint(),
    output:
        figure=report(
            "results/generated/attributes.png",
            caption="../resources/report/generated_attributes.rst",
            category="Generated samples",
            labels={"figure": "predicted scores"},
        ),
    log:
        "logs/plot_attributes/plot_attributes.log",
    benchmark:
        "benchmarks/plot_attributes/plot_attributes.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=plot_attributes_mem_mb(),
        runtime=20,
    params:
        predictors=config["generated"]["predictors"],
        ends=config["generated"]["ends"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/plot_attributes.py"


rule evaluate_direction:
    input:
        unpack(get_predictor_models),
        direction=DIRECTION,
        generator=get_generator_checkpoint(),
        embedder=get_embedder_model(),
    output:
        table=EVALUATION_TABLE,
        summary=EVALUATION_SUMMARY,
        figure=report(
            "results/evaluation/{name}.png",
            caption="../resources/report/evaluation.rst",
            category="Directions",
            labels={"direction": "{name}", "figure": "measured edit"},
        ),
    log:
        "logs/evaluate_direction/{name}.log",
    benchmark:
        "benchmarks/evaluate_direction/{name}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=evaluate_direction_mem_mb(),
        runtime=evaluate_direction_runtime(),
    params:
        target=get_direction_target,
        generated=config["generated"],
        generator=get_generator_params(),
        embedder=config["embedding"]["model"],
        crop=config["embedding"]["crop"],
    script:
        "../workflow_scripts/evaluate_direction.py"


rule compare_directions:
    input:
        summaries=expand(EVALUATION_SUMMARY, name=DIRECTIONS),
    output:
        table=report(
            "results/evaluation/directions.tsv",
            caption="../resources/report/evaluation_table.rst",
            category="Directions",
            labels={"direction": "all", "figure": "response and drift table"},
        ),
        figure=report(
            "results/evaluation/entanglement.png",
            caption="../resources/report/entanglement.rst",
            category="Directions",
            labels={"direction": "all", "figure": "entanglement matrix"},
        ),
    log:
        "logs/compare_directions/compare_directions.log",
    benchmark:
        "benchmarks/compare_directions/compare_directions.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        sources=get_direction_sources(),
    script:
        "../workflow_scripts/compare_directions.py"
