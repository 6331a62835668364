"""Stage: semantic directions in latent space (SVM normals, conditional, PCA), the visible subspace, edits.

Files:
- `edit.py`: Latent edits along a unit direction, and the edit grids shown in the report.
- `edit_cli.py`: `facelatent edit`: edited latents (HDF5) plus one PNG per edited face.
- `job.py`: The jobs behind fit_direction, fit_pca, render_edits and visible_subspace.
- `svm.py`: Semantic directions: linear-SVM normals (InterFaceGAN / latent-analysis), conditional and PCA.
- `visible.py`: The generator's visible subspace: the latent directions that change its images most.
"""
