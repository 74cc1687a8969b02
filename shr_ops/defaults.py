"""Defaults of the SHR codec, chosen by the codec study (docs/codec_study.md, made by
`shr-fan codec-error`): among all (sigma, blur, window, temperature) whose mean round-trip error
on clean 64x64 maps is <= 0.005 px, the one with the lowest error on network-like maps
(amplitude 0.5-1, blurred by 0.5 sigma, + N(0, 0.03^2) noise). Figures from that run
(2026-12-01, 4352 landmarks in [4, 59]; the baselines as their projects run them,
shr_ops.codecs): clean 0.0026 px, noise 0.0504 px, network-like 0.0525 px; DARK (mmpose)
0.0004 / 0.0503 / 0.0529; the plain local soft-argmax without the pre-filter at its best
setting (window 9, temperature 10) 0.0036 / 0.1186 / 0.0939; HRNet (mmpose's MSRAHeatmap)
0.3806 / 0.5343 / 0.5835; face-alignment 1.5 0.4322 / 0.7501 / 0.7556. Near the frame edge
these defaults are pulled inward: on clean maps 0.99 px mean error where the nearest coordinate
lies 0.5-1 px from the edge, 0.58 px at 1-2 px, 0.23 px at 2-3 px (docs/codec_study.md)."""

DEFAULT_SIGMA = 2.0
DEFAULT_WINDOW = 9
DEFAULT_TEMPERATURE = 40.0
DEFAULT_BLUR: float | None = 2.0
