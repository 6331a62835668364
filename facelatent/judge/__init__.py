"""Judging a synthetic identity set: an independent FR model's view of it, and how close it comes to real people.

Files:
- `separation.py`: identity separation of a labelled embedding set: the verification figures (EER, TAR@FAR,
  means) and the share of pairs on each side of a Euclidean distance threshold (dlib's 0.6), tile by tile.
- `leakage.py`: each synthetic identity's closest real image (max cosine, tiled), the threshold from the real
  impostor pairs, the leakage table, the kept crops manifest and the histogram.
- `job.py`: judge_synthetic (dlib's ResNet vs the run's FR model on the run's crops) and check_leakage.
"""
