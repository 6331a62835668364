"""Attribute predictors on images: pose, mouth, face placement, light and skin tone from MTCNN, and eye, mouth and
brow shape from dlib's 68 points; each a plain function from a batch to a score column, NaN where no face is seen.
Nothing is re-exported here: import from the modules (`predictors.py` loads neither torch nor OpenCV).

Files:
- `predictors.py`: The predictor table, the detectors to load, `score_images`, and one documented function per
  predictor.
- `five_points.py`: Pose, mouth width, face scale and position from MTCNN's five points (numpy).
- `landmarks68.py`: Eye, mouth and brow shape from dlib's 68 iBUG points (numpy).
- `photometric.py`: Brightness and left-right asymmetry over the face box, skin tone over two cheek patches.
- `detections.py`: MTCNN's best face per image, and dlib's 68 points in its box on an upscaled crop.
- `docs.py`: docs/PREDICTORS.md generated from the predictor table.
"""
