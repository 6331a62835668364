# Semantic directions: SVM normals from labelled latents, conditional directions, PCA directions.


localrules:
    fit_direction,
    fit_pca,


rule fit_direction:
    input:
        unpack(get_direction_input),
    output:
        normal="results/directions/{name}.npy",
        metrics=report(
            "results/directions/{name}.json",
            caption="../resources/report/direction.rst",
            category="Directions",
            labels={"direction": "{name}", "figure": "metrics"},
        ),
    log:
        "logs/fit_direction/{name}.log",
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        direction=get_direction_params,
    script:
        "../workflow_scripts/fit_direction.py"


rule fit_pca:
    input:
        latents=f"results/latents/{PCA['dataset']}.h5",
    output:
        normals=get_pca_outputs(),
        info="results/directions/pca.json",
    log:
        "logs/fit_pca/fit_pca.log",
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
