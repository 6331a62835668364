"""Face detection: MTCNN (PyTorch port of mtcnn==1.0.0), and dlib's detector with 68 landmarks.

Files:
- `mtcnn.py`: MTCNN face detector in PyTorch that reproduces the `mtcnn==1.0.0` package (TensorFlow).
- `mtcnn_nets.py`: MTCNN P/R/O-Net in plain PyTorch, plus the converter from the `mtcnn==1.0.0` Keras weights.
- `mtcnn_ops.py`: Numeric building blocks of MTCNN, written to reproduce `mtcnn==1.0.0` (TensorFlow) exactly.
- `dlib68.py`: dlib's HOG face detector and 68-point shape predictor (the landmarks of FFHQ); import it
  from there (`from facelatent.detect.dlib68 import Dlib68`), it loads dlib and a 100 MB model.
"""

from facelatent.detect.mtcnn import MTCNN, MTCNNConfig, convert_mtcnn_weights, load_mtcnn_nets

__all__ = ["MTCNN", "MTCNNConfig", "convert_mtcnn_weights", "load_mtcnn_nets"]
