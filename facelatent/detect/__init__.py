"""Face detection: MTCNN (PyTorch port of mtcnn==1.0.0).

Files:
- `mtcnn.py`: MTCNN face detector in PyTorch that reproduces the `mtcnn==1.0.0` package (TensorFlow).
- `mtcnn_nets.py`: MTCNN P/R/O-Net in plain PyTorch, plus the converter from the `mtcnn==1.0.0` Keras weights.
- `mtcnn_ops.py`: Numeric building blocks of MTCNN, written to reproduce `mtcnn==1.0.0` (TensorFlow) exactly.
"""

from facelatent.detect.mtcnn import MTCNN, MTCNNConfig, convert_mtcnn_weights, load_mtcnn_nets

__all__ = ["MTCNN", "MTCNNConfig", "convert_mtcnn_weights", "load_mtcnn_nets"]
