"""Face detection: MTCNN (PyTorch port of mtcnn==1.0.0)."""

from facelatent.detect.mtcnn import MTCNN, MTCNNConfig, convert_mtcnn_weights, load_mtcnn_nets

__all__ = ["MTCNN", "MTCNNConfig", "convert_mtcnn_weights", "load_mtcnn_nets"]
