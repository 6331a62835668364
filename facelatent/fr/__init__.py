"""Stage: face-recognition training and evaluation (verification benchmarks as the field reports them).

Files:
- `binfile.py`: insightface verification `.bin` files read (restricted unpickler, nothing executed) and written.
- `pairs.py`: LFW-style `pairs.txt` lists over a folder of aligned crops, read into the same pair set.
- `protocol.py`: insightface's protocol: mirror embeddings, squared distances, 10-fold accuracy, TAR@FAR.
- `job.py`: the evaluate_fr job (every model on every benchmark, a TSV) and the papers' comparison table.
"""
