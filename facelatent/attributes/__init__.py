"""Attribute predictors on images, InterFaceGAN's generated-sample route to directions, and edits measured.

Predictors: pose, mouth, face placement, light and skin tone from MTCNN, and eye, mouth and brow shape from dlib's 68
points; each a plain function from a batch to a score column, NaN where no face is seen. The generated route: draw
latents through the generator's mapping, render them, score each render, and fit directions on the samples with the
highest and lowest scores; then measure what any direction does to held-out renders (its target's response, side
effects, identity drift). Nothing is re-exported here: import from the modules (`predictors.py` and `config.py` load
neither torch nor OpenCV).

Files:
- `predictors.py`: The predictor table, the detectors to load, `score_images`, and one documented function per
  predictor.
- `five_points.py`: Pose, mouth width, face scale and position from MTCNN's five points (numpy).
- `landmarks68.py`: Eye, mouth and brow shape from dlib's 68 iBUG points (numpy).
- `photometric.py`: Brightness and left-right asymmetry over the face box, skin tone over two cheek patches.
- `detections.py`: MTCNN's best face per image, and dlib's 68 points in its box on an upscaled crop.
- `docs.py`: docs/PREDICTORS.md generated from the predictor table.
- `config.py`: the `generated:` config section as dataclasses, and its shards.
- `sampling.py`: seeded draws z -> w through the mapping, written as latent shards.
- `scoring.py`: predict_attributes' resumable render-and-score of a shard, and the merge of the shards.
- `fit.py`: fit_direction on generated samples: rank by a score, read only the chosen latents, fit the SVM.
- `edits.py`: held-out latents moved along a direction, rendered, scored and embedded.
- `evaluate.py`: the measures of an edit: response curve, side effects, identity drift.
- `plots.py`: score histograms with faces at each end, one direction's measured edit, the entanglement matrix.
- `job.py`: the jobs behind sample_latents, predict_attributes, merge_attributes, plot_attributes,
  evaluate_direction and compare_directions.
"""
