"""Stage: face alignment, the FFHQ way, and the crops FR models expect.

Files:
- `ffhq.py`: NVlabs' FFHQ alignment from 68 (or 5) landmarks: quad, crop, pad, blur, resample.
- `crops.py`: ArcFace 112 px crops, the FFHQ-to-ArcFace box and a batched differentiable warp.
- `template.py`: the mean 68-point face shape (landmark files for synthetic faces).
- `sources.py`: where each dataset's landmarks come from (a file, the manifest, a detector); no torch.
- `job.py`: the `align_shard` and `align_report` rules' jobs.

The alignment API is re-exported here: `from facelatent.align import align_face_5`.
"""

from __future__ import annotations

from facelatent.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "facelatent.align.crops": (
            "ARCFACE_112",
            "arcface_template",
            "crop_ffhq_to_arcface",
            "ffhq_to_arcface_box",
            "ffhq_to_arcface_box_float",
            "norm_crop_5pt",
            "similarity_transform_5pt",
            "warp_affine_torch",
        ),
        "facelatent.align.ffhq": (
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
        ),
        "facelatent.align.template": ("BOX_ANCHORS", "landmarks68_template", "template_landmarks_for_box"),
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
