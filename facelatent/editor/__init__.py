"""Stage: the browser latent editor (`facelatent serve`), over one results folder and the configured generator.

Files:
- `app.py`: the Starlette application: routes, the editor's state (generator, directions, upload jobs).
- `catalog.py`: what a results folder offers: latents files, synthetic runs, fitted / conditional / PCA directions.
- `faces.py`: a face spec (projected row, synthetic identity, seed, upload) -> its latent and its photo.
- `render.py`: slider state -> edited latent (edit-grid units, a W+ layer range) -> PNG.
- `safety.py`: what a request may name (allow-listed faces, files under the results folder) and upload caps.
- `upload.py`: an uploaded photo -> detected, aligned, projected in a background thread with progress.
- `browser.py`: headless Chromium under Selenium, for the browser test and the README screenshots.
- `job.py`: the `editor` rule's job: the command that starts the editor on this workflow's results.
- `serve.py`: `facelatent serve`: the config read and checked, the app run under uvicorn.

The page itself is `page.html`, `editor.js` and `editor.css` (plain HTML and JavaScript: no build step, no CDN).
Starlette and uvicorn are the optional extra `ui` (`pip install -e '.[ui]'`).
"""
