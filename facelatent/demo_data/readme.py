"""The ground-truth README written next to the fixtures: the planting rules, in words."""

from __future__ import annotations

from facelatent.demo_data.ckplus import EMOTION_AUS, EXTRA_AU_PROB, PRESENCE_ONLY_AUS, UNLABELLED_AU_PROB
from facelatent.demo_data.planted import (
    AU_DIRECTIONS,
    AU_PRESENT,
    BASE_DIRECTIONS,
    ILLUMINATION_SCORE,
    MARGIN,
    NOISE_STD,
)

TEMPLATE = """# Demo fixtures: planted ground truth

Written by `facelatent.demo_data.make_demo_data` (seed {seed}, sizes {sizes}).
Images: {counts}.

## Latents and directions

* `directions.npz`: name -> unit vector [100] in the DCGAN z space, all inside the generator's
  13 most visible directions (top eigenvectors of the mean Jacobian Gram, similarity warps removed).
  {base} are mutually orthogonal, except that smile leans towards happy (cosine 0.5). AU directions are tilted towards a parent on purpose (cosine with the parent):
  {aus}. The remaining part of each AU direction is a private orthogonal unit vector.
* Every image's latent is `z = P(identity + noise) + D_S^+ t`: `P` removes the span of all
  directions, `identity` is one N(0, I) vector per subject, `noise` is N(0, {noise}^2 I) per image,
  `D_S` stacks the directions planted in that dataset and `t` are the image's scores. Therefore
  `z . d_k = t_k` exactly for each planted direction `k`, and every label below is a function of
  that score. Planted per dataset: CK+ happy, surprise, au*; Multi-PIE yaw, illumination, smile,
  surprise, squint, scream; FFHQ and folder all directions. A direction not planted in a dataset is
  not controlled there (its score follows from the correlations above).
* `latents.h5`: one group per dataset with `ids` (equal to the indexer ids), `z` [N, 100] float32 and
  `scores` [N, S] float32 (`scores.attrs['names']`). `<dataset>_labels.tsv` holds the same scores as
  `s_<direction>` columns next to the labels and the face box `x,y,w,h` of each image.
* CK+: from the neutral first frame (all scores negative) to the peak of a happy or surprise sequence the
  latent moves along that emotion's direction only; the AUs tilted towards it rise with it (by their cosine).

## Rules

* Binary label (yes/no): score = sign * U{margin}; threshold 0, so a linear SVM without intercept is exact.
* Multi-PIE `yaw`: score = yaw_deg / 45 (camera table of DATASETS.md §2.3; the face itself stays frontal).
* Multi-PIE `illumination`: score by flash group {illum}.
* Multi-PIE expressions `smile`, `surprise`, `squint`, `scream`: binary per recording (neutral = all negative);
  shared by every camera/flash of that recording.
* CK+ `happy` / `surprise`: binary at the peak (positive for emotion 5 / 7); the neutral first frame
  is negative on every CK+ direction. Frames between interpolate the scores linearly (frame 1 -> last).
* CK+ AUs (1, 2, 4, 6, 12, 25): present at the peak -> score U{present}, absent -> -U{margin}.
  Intensity = min(5, 1 + floor(2 * score)) when score > 0 (monotone in z . d_au), written in the FACS
  file; AU {presence_only} is written with intensity 0 ("present, intensity not coded").
  Present AUs: those of the emotion {emotion_aus} plus each other AU with probability {extra};
  sequences without an emotion file: each AU with probability {unlabelled} (at least one).
* FFHQ and folder faces: scores ~ N(0, 0.5^2) on every direction (no labels to learn from).

## Quirks placed on purpose

* CK+: `S005/001` happy, grey 640x490, FACS with an intensity-0 line; `S005/002` unlabelled with an
  empty Emotion dir; `S010/001` unlabelled with no Emotion dir and 640x480 RGB frames; `S010/002`
  surprise with 11 frames; `.DS_Store` in `cohn-kanade-images/S005/`, `cohn-kanade-images/S005/001/`
  and `Emotion/S005/`; sequence `004` without `003` in some subjects.
* Multi-PIE: session 4 has two neutral recordings; the third subject skipped session 2 (also in
  `meta/subject_list.txt`, whose second line has the two-digit birth year `57`); nobody attends
  session 3 in this subset; `.DS_Store` in `data/session01/multiview/`.
* FFHQ: indices 0, 1000 (folder `01000/`) and 60000 (validation) are always present; `file_url`s are
  `file://` URLs into `ffhq_remote/`; LICENSE.txt is fixture text (not NVIDIA's; other md5).
* folder: see `folder_cases.tsv` (case, faces, boxes, what the align stage should do); hidden files,
  a `.DS_Store`, an AppleDouble `._` file and a `.txt` must be skipped by the indexer.
"""  # noqa: E501  (the README it writes keeps its wording and lines)


def ground_truth_readme(seed: int, sizes: dict, counts: dict) -> str:
    aus = ", ".join(f"{au} ~ {parent} ({cos})" for au, (parent, cos) in AU_DIRECTIONS.items() if parent)
    orth = [au for au, (parent, _) in AU_DIRECTIONS.items() if not parent]
    return TEMPLATE.format(
        seed=seed,
        sizes=sizes,
        counts=counts,
        base=", ".join(BASE_DIRECTIONS),
        aus=aus + (f"; {', '.join(orth)} orthogonal to all" if orth else ""),
        noise=NOISE_STD,
        margin=MARGIN,
        present=AU_PRESENT,
        illum=ILLUMINATION_SCORE,
        presence_only=", ".join(map(str, sorted(PRESENCE_ONLY_AUS))),
        emotion_aus={k: sorted(v) for k, v in EMOTION_AUS.items()},
        extra=EXTRA_AU_PROB,
        unlabelled=UNLABELLED_AU_PROB,
    )
