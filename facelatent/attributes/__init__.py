"""Stage: attributes predicted on images, the generated-sample route to directions, and edits measured.

InterFaceGAN's own route: draw latents through the generator's mapping, render them, score each render with
offline predictors, and fit directions on the samples with the highest and lowest scores; then measure what any
direction does to held-out renders (its target's response, side effects, identity drift).

Files:
- `config.py`: the `generated:` config section as dataclasses, and its shards.
- `predictors.py`: the attribute predictors (pose, mouth, light, ... from MTCNN and dlib's 68 points) on image batches.
- `sampling.py`: seeded draws z -> w through the mapping, written as latent shards; renders as uint8.
- `scoring.py`: predict_attributes' resumable render-and-score of a shard, and the merge of the shards.
- `fit.py`: fit_direction on generated samples: rank by a score, read only the chosen latents, fit the SVM.
- `edits.py`: held-out latents moved along a direction, rendered, scored and embedded.
- `evaluate.py`: the measures of an edit: response curve, side effects, identity drift.
- `plots.py`: score histograms with faces at each end, one direction's measured edit, the entanglement matrix.
- `job.py`: the jobs behind sample_latents, predict_attributes, merge_attributes, plot_attributes,
  evaluate_direction and compare_directions.
"""
