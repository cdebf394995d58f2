"""MuseTalk 1.5 (TMElyralab/MuseTalk at 0a89dec) run in-process: `adapter.MuseTalk`.

`networks` (UNet, VAE, whisper encoder, positional encoding: diffusers / transformers
classes built from the published configs), `audio` (whisper features cut per frame),
`bisenet` (face parsing for the blending mask), `blending` (paste-back), `faces` (boxes:
S3FD + a MediaPipe stand-in for DWPose), `weights` (the files it loads). Imports stay
light: torch, diffusers and transformers load only where used.
"""
