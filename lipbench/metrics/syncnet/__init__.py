"""SyncNet Sync-C / Sync-D (LSE-C / LSE-D) and AV offset (joonson/syncnet_python).

The network (`SyncNet`) is written in `network.py` with upstream `S`'s module names and
shapes, so the published `syncnet_v2.model` (a plain state_dict) loads strictly. The
score computation (`sync_scores`, `scores.py`) is upstream `SyncNetInstance.evaluate`:

- video: 224x224 BGR frames as raw 0-255 floats, windows of 5 frames (v .. v+4);
- audio: 16 kHz mono int16 sample values (not rescaled), python_speech_features
  `mfcc` with its defaults (13 coefficients, 100 frames/s); window v = MFCC columns
  [4v, 4v + 20);
- windows v = 0 .. min(n_frames, floor(n_samples / 640)) - 6, further capped (as the
  paper's eval_metrics does) so every audio window has 20 MFCC columns; upstream
  would crash where that cap bites, so the two agree wherever upstream runs;
- audio features zero-padded by vshift = 15 on both sides; for window i and shift k,
  the L2 distance (torch pairwise_distance, eps 1e-6) between video feature i and
  audio feature i + k of the padded list; mean over windows per shift;
- Sync-D = min over shifts, Sync-C = median - min, AV offset = vshift - argmin.

The network runs batched over windows, and distances are computed for all windows
and shifts at once (upstream loops over windows; the values are the same).

Protocols:
- `latentsync`: the paper's evaluation (jinhyukj/eval_metrics eval/eval_sync.py, which
  runs LatentSync's eval/syncnet_detect.py + eval/syncnet/syncnet_eval.py): S3FD
  face tracks with min_track 50 (scenedetect 0.6.1 shots), each track cropped to 224
  and scored with its own stretch of audio; Sync-C and Sync-D are the means over
  tracks, AV offset int(mean) over tracks (truncated towards zero, as upstream).
  Upstream re-encodes each crop to MPEG-4 (mp4v) video + AAC audio and reads it
  back through JPEG frames (then resizes to 224, a no-op on 224 crops); lipbench
  scores the crops and the decoded 16-bit audio directly. eval_sync.py skips a
  video with no track (it prints the error and leaves the video out of the mean);
  lipbench raises an error naming the clip, so the run records the failure.
- `syncnet_python`: upstream run_pipeline.py + run_syncnet.py: the same detection
  and cropping with min_track 100 (so a clip needs more than 100 frames with a face)
  and scenedetect 0.5.1 shots. Upstream reports each track separately and has no
  per-video reduction; lipbench reports the mean over tracks of Sync-C and Sync-D
  (each track counts once, as when Wav2Lip's evaluation/scores_LSE averages its
  per-track lines) and the AV offset of the most confident track.
- `precropped`: Wav2Lip evaluation/scores_LSE calculate_scores_LRS.py: the frames
  are already face crops; every frame is resized to 224x224 (cv2 INTER_LINEAR), the
  whole audio is used, no detection. It assumes 25 fps, as upstream does.

Video at another frame rate is resampled to 25 fps for the two pipeline protocols
(upstream converts with `ffmpeg -r 25`; here each output frame k is the last input
frame whose time rounds to k/25 or earlier, as ffmpeg's fps filter picks them).

Known answer with the real weights (not checkable without them): upstream's demo
clip (data/example.avi, run through demo_syncnet.py) gives AV offset 3, min dist
5.353, confidence 10.021.

Modules, one step of the reproduction each:
- `network.py`: the SyncNet network, `load_syncnet`, its seeded `random_state_dict`;
- `scores.py`: MFCC features, window counts, `sync_scores`, `shifted_distances`;
- `s3fd.py`: syncnet_python's S3FD face detector (the pipelines' detections);
- `tracks.py`: scene detection, face tracks and the 224x224 face crops;
- `metric.py`: `SyncNetMetric` (the three protocols) and its video handling.

Importing this package imports none of them (the metric registry names
`lipbench.metrics.syncnet.metric:SyncNetMetric`), so the weight loader importing
`network.py` does not import the scores' or the metric's dependencies
(python_speech_features, scipy).
"""
