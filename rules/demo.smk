# The embedded demo: fixture datasets with planted labels, and a sample grid of the generator.


localrules:
    make_demo_data,


rule make_demo_data:
    input:
        generator=model_file("dcgan_digiface64"),
        mtcnn=model_file("mtcnn"),
    output:
        **get_demo_outputs(),
    log:
        "logs/make_demo_data/make_demo_data.log",
    benchmark:
        "benchmarks/make_demo_data/make_demo_data.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=config["demo"]["seed"],
        sizes=config["demo"]["sizes"],
    script:
        "../workflow_scripts/make_demo_data.py"


rule sample_grid:
    input:
        generator=get_generator_checkpoint(),
    output:
        grid=report(
            "results/samples/faces_grid.png",
            caption="../resources/report/faces_grid.rst",
            category="Generator",
            labels={"figure": "sample grid"},
        ),
    log:
        "logs/sample_grid/sample_grid.log",
    benchmark:
        "benchmarks/sample_grid/sample_grid.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rows=4,
        cols=4,
        seed=config["demo"]["seed"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/sample_grid.py"
