"""Stage: face alignment, the FFHQ way, and the crops FR models expect.

Files:
- `ffhq.py`: NVlabs' FFHQ alignment from 68 (or 5) landmarks: quad, crop, pad, blur, resample.
- `crops.py`: ArcFace 112 px crops, the FFHQ-to-ArcFace box and a batched differentiable warp.
- `template.py`: the mean 68-point face shape (landmark files for synthetic faces).
- `job.py`: the `align_shard` and `align_report` rules' jobs.

The alignment API is re-exported here: `from facelatent.align import align_face_5`.
"""

from __future__ import annotations

from facelatent.align.crops import (
    ARCFACE_112,
    arcface_template,
    crop_ffhq_to_arcface,
    ffhq_to_arcface_box,
    ffhq_to_arcface_box_float,
    norm_crop_5pt,
    similarity_transform_5pt,
    warp_affine_torch,
)
from facelatent.align.ffhq import (
    align_face,
    align_face_5,
    align_face_68,
    ffhq_quad,
    ffhq_quad_from_5,
    ffhq_quad_from_68,
    five_points_from_68,
    gaussian_blur_hw,
    pad_amounts,
    points_to_aligned,
    quad_to_affine,
)
from facelatent.align.template import BOX_ANCHORS, landmarks68_template, template_landmarks_for_box

__all__ = [
    "align_face",
    "align_face_5",
    "align_face_68",
    "ffhq_quad",
    "ffhq_quad_from_5",
    "ffhq_quad_from_68",
    "five_points_from_68",
    "gaussian_blur_hw",
    "pad_amounts",
    "points_to_aligned",
    "quad_to_affine",
    "ARCFACE_112",
    "arcface_template",
    "crop_ffhq_to_arcface",
    "ffhq_to_arcface_box",
    "ffhq_to_arcface_box_float",
    "norm_crop_5pt",
    "similarity_transform_5pt",
    "warp_affine_torch",
    "BOX_ANCHORS",
    "landmarks68_template",
    "template_landmarks_for_box",
]
