"""Stage: face-recognition training and evaluation (verification benchmarks as the field reports them).

Files:
- `binfile.py`: insightface verification `.bin` files read (restricted unpickler, nothing executed) and written.
- `pairs.py`: LFW-style `pairs.txt` lists over a folder of aligned crops, read into the same pair set.
- `protocol.py`: insightface's protocol: mirror embeddings, squared distances, 10-fold accuracy, TAR@FAR.
- `plan.py`: which subjects of a real dataset are held out for benchmarks and which train (no torch: the
  Snakefile imports it).
- `heldout.py`: a benchmark `.bin` drawn from held-out subjects of an aligned dataset (genuine / impostor pairs).
- `compare.py`: every model's evaluation in the papers' table (rows: training sets) and a bar plot.
- `evaluate.py`: a benchmark read from either form, a model's mirrored embeddings of it, its TSV rows.
- `job.py`: make_benchmark_bin, evaluate_fr (every model on every benchmark, a TSV), compare_fr (the papers' table).
"""
