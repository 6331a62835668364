# Face recognition trained on each configured set with one recipe, evaluated by the 10-fold verification
# protocol on every benchmark, and compared in one table (rows: training sets; columns: benchmarks, average).


localrules:
    compare_fr,


rule make_benchmark_bin:
    input:
        unpack(get_benchmark_data),
    output:
        bin=FR_BENCHMARK_BIN,
        summary="results/fr/benchmarks/{benchmark}.json",
    log:
        "logs/make_benchmark_bin/{benchmark}.log",
    benchmark:
        "benchmarks/make_benchmark_bin/{benchmark}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        entry=get_benchmark,
    script:
        "../workflow_scripts/make_benchmark_bin.py"


rule train_fr:
    input:
        unpack(get_train_fr_input),
    output:
        backbone=FR_BACKBONE,
        initial=FR_INITIAL,
        metrics=report(
            "results/fr/models/{trainset}/metrics.csv",
            caption="../resources/report/fr_training.rst",
            category="Face recognition",
            labels={"training set": "{trainset}", "figure": "training log"},
        ),
    log:
        "logs/train_fr/{trainset}.log",
    benchmark:
        "benchmarks/train_fr/{trainset}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=FR["training"]["devices"],
        mem_mb=fr_train_mem_mb,
        runtime=FR["training"]["runtime"],
    params:
        train_set=get_train_set,
        training=FR["training"],
        checkpoint_dir="results/fr/models/{trainset}/checkpoints",
    script:
        "../workflow_scripts/train_fr.py"


rule evaluate_fr:
    input:
        unpack(get_evaluate_fr_input),
    output:
        evaluation=FR_EVALUATION,
    log:
        "logs/evaluate_fr/{frmodel}.log",
    benchmark:
        "benchmarks/evaluate_fr/{frmodel}.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=fr_evaluate_mem_mb,
        runtime=120,
    params:
        benchmarks=benchmark_files(),
        batch_size=FR["evaluation"]["batch_size"],
    script:
        "../workflow_scripts/evaluate_fr.py"


rule compare_fr:
    input:
        evaluations=expand(FR_EVALUATION, frmodel=FR_MODEL_ROWS),
    output:
        table=report(
            "results/fr/comparison.tsv",
            caption="../resources/report/fr_comparison.rst",
            category="Face recognition",
            labels={"figure": "comparison table"},
        ),
        figure=report(
            "results/fr/comparison.png",
            caption="../resources/report/fr_comparison.rst",
            category="Face recognition",
            labels={"figure": "comparison plot"},
        ),
    log:
        "logs/compare_fr/all.log",
    benchmark:
        "benchmarks/compare_fr/all.tsv"
    conda:
        "../envs/facelatent.yaml"
    threads: 1
    resources:
        # 477 MB measured on the demo (matplotlib, pandas); the table itself is a few rows
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/compare_fr.py"
