# Semantic directions: SVM normals from labelled latents, conditional directions, PCA directions.


localrules:
    fit_direction,
    fit_pca,


rule fit_direction:
    input:
        unpack(get_direction_input),
    output:
        normal=DIRECTION,
        metrics=report(
            DIRECTION_METRICS,
            caption="../resources/report/direction.rst",
            category="Directions",
            labels={"direction": "{name}", "figure": "metrics"},
        ),
    log:
        "logs/fit_direction/{name}.log",
    benchmark:
        "benchmarks/fit_direction/{name}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=fit_direction_mem_mb,
        runtime=30,
    params:
        entry=get_direction,
        planted_of=get_planted_of,
        svm=config["direction_fitting"],
        visible_energy=config["visible_subspace"]["energy"],
        space=config["projection"]["space"],
    script:
        "../workflow_scripts/fit_direction.py"


rule visible_subspace:
    input:
        generator=get_generator_checkpoint(),
    output:
        subspace=VISIBLE_SUBSPACE,
        spectrum=report(
            "results/generator/visible_subspace.png",
            caption="../resources/report/visible_subspace.rst",
            category="Directions",
            labels={"figure": "visible subspace"},
        ),
    log:
        "logs/visible_subspace/visible_subspace.log",
    benchmark:
        "benchmarks/visible_subspace/visible_subspace.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        visible=config["visible_subspace"],
        w_avg_samples=config["projection"]["schedule"]["w_avg_samples"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/visible_subspace.py"


rule fit_pca:
    input:
        latents=get_pca_latents(),
    output:
        normals=get_pca_outputs(),
        info="results/directions/pca.json",
    log:
        "logs/fit_pca/fit_pca.log",
    benchmark:
        "benchmarks/fit_pca/fit_pca.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        components=PCA["components"],
        space=config["projection"]["space"],
    script:
        "../workflow_scripts/fit_pca.py"
