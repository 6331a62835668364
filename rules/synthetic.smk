# Synthetic identity datasets: references (Langevin / random / reject), variations in parallel parts
# (Dispersion / DisCo), merged samples and stats, ArcFace crops per part, figures, and the Idiap export.


localrules:
    merge_samples,
    plot_variation,
    merge_stats,
    merge_crops,
    plot_synthetic,
    export_synthetics,


rule create_references:
    input:
        unpack(get_references_input),
    output:
        references=REFERENCES,
    log:
        "logs/create_references/{run}.log",
    benchmark:
        "benchmarks/create_references/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=720,
    params:
        run=get_synthetic_run,
        generator=get_generator_params(),
    script:
        "../workflow_scripts/create_references.py"


rule create_variations:
    input:
        unpack(get_variations_input),
    output:
        variations=VARIATIONS,
    log:
        "logs/create_variations/{run}/{part}.log",
    benchmark:
        "benchmarks/create_variations/{run}/{part}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=720,
    params:
        run=get_synthetic_run,
        generator=get_generator_params(),
    script:
        "../workflow_scripts/create_variations.py"


rule merge_samples:
    input:
        references=rules.create_references.output.references,
        parts=get_variation_parts,
    output:
        samples="results/synthetic/{run}/samples.h5",
    log:
        "logs/merge_samples/{run}.log",
    benchmark:
        "benchmarks/merge_samples/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=merge_samples_mem_mb,
        runtime=30,
    script:
        "../workflow_scripts/merge_samples.py"


rule merge_stats:
    input:
        references=rules.create_references.output.references,
        parts=get_variation_parts,
    output:
        stats="results/synthetic/{run}/stats.h5",
    log:
        "logs/merge_stats/{run}.log",
    benchmark:
        "benchmarks/merge_stats/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/merge_stats.py"


rule render_crops:
    input:
        unpack(get_crops_input),
    output:
        crops=directory(CROP_PART),
        manifest=CROP_PART_MANIFEST,
    log:
        "logs/render_crops/{run}/{part}.log",
    benchmark:
        "benchmarks/render_crops/{run}/{part}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=render_crops_mem_mb,
        runtime=120,
    params:
        run=get_synthetic_run,
        generator=get_generator_params(),
    script:
        "../workflow_scripts/render_crops.py"


rule merge_crops:
    input:
        manifests=get_crop_manifests,
    output:
        manifest="results/synthetic/{run}/crops.tsv",
    log:
        "logs/merge_crops/{run}.log",
    benchmark:
        "benchmarks/merge_crops/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        # copies the part manifests line by line: 282 MB peak (the imports) at 83,200 rows as at 5,200
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/merge_crops.py"


rule plot_synthetic:
    input:
        samples=rules.merge_samples.output.samples,
        stats=rules.merge_stats.output.stats,
        crops=get_crop_dirs,
        manifest=rules.merge_crops.output.manifest,
    output:
        histograms=report(
            "results/synthetic/{run}/histograms.png",
            caption="../resources/report/synthetic_histograms.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "angle histograms"},
        ),
        stats=report(
            "results/synthetic/{run}/stats.png",
            caption="../resources/report/synthetic_stats.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "stats over iterations"},
        ),
        grid=report(
            "results/synthetic/{run}/grid.png",
            caption="../resources/report/synthetic_grid.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "identities x variations"},
        ),
        metrics=report(
            "results/synthetic/{run}/verification.json",
            caption="../resources/report/synthetic_verification.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "verification metrics"},
        ),
    log:
        "logs/plot_synthetic/{run}.log",
    benchmark:
        "benchmarks/plot_synthetic/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=plot_synthetic_mem_mb,
        runtime=10,
    params:
        run=get_synthetic_run,
        metrics=config["metrics"],
        crops_dir=get_crops_dir,
    script:
        "../workflow_scripts/plot_synthetic.py"


rule export_synthetics:
    input:
        samples=rules.merge_samples.output.samples,
        stats=rules.merge_stats.output.stats,
    output:
        samples="results/synthetic/{run}/idiap/samples.h5",
        reference_stats="results/synthetic/{run}/idiap/references/stats.h5",
        variation_stats="results/synthetic/{run}/idiap/stats.h5",
    log:
        "logs/export_synthetics/{run}.log",
    benchmark:
        "benchmarks/export_synthetics/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        # streams 4096-row blocks: 336 -> 374 MB peak from 5,200 to 83,200 512-d faces (~500 B per face of HDF5
        # group metadata), so about 650 MB at 650,000 faces
        mem_mb=2000,
        runtime=30,
    params:
        run=get_synthetic_run,
    script:
        "../workflow_scripts/export_synthetics.py"


rule measure_variation:
    input:
        unpack(get_variation_measure_input),
    output:
        table=VARIATION_PART,
    log:
        "logs/measure_variation/{run}/{part}.log",
    benchmark:
        "benchmarks/measure_variation/{run}/{part}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        # one part's embeddings (3 copies of 512-d float32) and 256 crops at a time
        mem_mb=measure_variation_mem_mb,
        runtime=120,
    params:
        crops_dir=get_crops_dir,
        identities_per_part=get_variation_identities,
    script:
        "../workflow_scripts/measure_variation.py"


rule plot_variation:
    input:
        parts=get_variation_tables,
        references=rules.create_references.output.references,
    output:
        faces="results/synthetic/{run}/variation.tsv",
        identities=report(
            "results/synthetic/{run}/variation_identities.tsv",
            caption="../resources/report/synthetic_variation_identities.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "variation per identity (table)"},
        ),
        figure=report(
            "results/synthetic/{run}/variation.png",
            caption="../resources/report/synthetic_variation.rst",
            category="Synthetic identities",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "intra-class variation and face gate"},
        ),
    log:
        "logs/plot_variation/{run}.log",
    benchmark:
        "benchmarks/plot_variation/{run}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=plot_variation_mem_mb,
        runtime=30,
    script:
        "../workflow_scripts/plot_variation.py"
