# The browser latent editor: `snakemake --cores 1 editor` builds what it shows (the generator, the fitted and
# PCA directions) and writes and logs the command that starts it; the server itself is interactive, so no job runs it.


localrules:
    editor,


rule editor:
    input:
        generator=get_generator_checkpoint(),
        directions=get_editor_directions(),
    output:
        command=EDITOR_COMMAND,
    log:
        "logs/editor/editor.log",
    benchmark:
        "benchmarks/editor/editor.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        results=get_editor_results,
        configfile=get_configfile(),
    script:
        "../workflow_scripts/editor.py"
