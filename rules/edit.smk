# Edit grids: source latents moved along each direction (fitted or PCA), rendered by the generator.


rule render_edits:
    input:
        direction=get_edit_direction,
        latents=get_edit_sources(),
        generator=get_generator_checkpoint(),
    output:
        grid=report(
            "results/edits/{edit}.png",
            caption="../resources/report/edits.rst",
            category="Directions",
            labels={"direction": "{edit}", "figure": "edit grid"},
        ),
    log:
        "logs/render_edits/{edit}.log",
    benchmark:
        "benchmarks/render_edits/{edit}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        n_sources=config["edits"]["n_sources"],
        distances=config["edits"]["distances"],
        mode=config["edits"]["mode"],
        generator=get_generator_params(),
    script:
        "../workflow_scripts/render_edits.py"
