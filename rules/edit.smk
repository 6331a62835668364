# Edit grids: source latents moved along each direction, rendered by the generator.


rule render_edits:
    input:
        direction="results/directions/{name}.npy",
        latents=get_edit_sources(),
        generator=get_generator_checkpoint(),
    output:
        report(
            "results/edits/{name}.png",
            caption="../resources/report/edits.rst",
            category="Directions",
            labels={"direction": "{name}", "figure": "edit grid"},
        ),
    log:
        "logs/render_edits/{name}.log",
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        edits=config["edits"],
    script:
        "../workflow_scripts/render_edits.py"
