"""Defaults of the SHR codec, chosen by the codec study (docs/codec_study.md, made by
`shr-fan codec-error`): among all (sigma, blur, window, temperature) whose mean round-trip error
on clean 64x64 maps is <= 0.005 px, the one with the lowest error on network-like maps
(amplitude 0.5-1, blurred by 0.5 sigma, + N(0, 0.03^2) noise). Figures from that run
(4352 landmarks): clean 0.0026 px, noise 0.0504 px, network-like 0.0525 px; DARK 0.0004 /
0.0503 / 0.0529; the plain local soft-argmax without the pre-filter at its best setting
(window 9, temperature 10) 0.0036 / 0.1186 / 0.0939; HRNet's rounded centre + 1/4 shift
0.3806 / 0.5343 / 0.5835."""

DEFAULT_SIGMA = 2.0
DEFAULT_WINDOW = 9
DEFAULT_TEMPERATURE = 40.0
DEFAULT_BLUR: float | None = 2.0
