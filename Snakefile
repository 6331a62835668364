# facelatent: face datasets -> StyleGAN latents -> directions, AU classifiers, synthetic identities.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "resources/report/workflow.rst"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/demo.smk"
include: "rules/datasets.smk"
include: "rules/align.smk"
include: "rules/project.smk"
include: "rules/directions.smk"
include: "rules/attributes.smk"
include: "rules/edit.smk"
include: "rules/editor.smk"
include: "rules/synthetic.smk"
include: "rules/au.smk"
include: "rules/embed.smk"
include: "rules/fr.smk"
include: "rules/judge.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


# Everything but the FR loop (make_benchmark_bin, train_fr, evaluate_fr, compare_fr): the synthetic sets,
# directions, edits and AU classifier without the hours of FR training a production config asks for.
rule all_but_fr:
    input:
        get_final_output(fr_loop=False),
