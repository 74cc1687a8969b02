"""Defaults of the SHR codec, chosen by the codec study (docs/codec_study.md, made by
`shr-fan codec-error`): among all (sigma, blur, window, temperature) whose mean round-trip error
on clean 64x64 maps is <= 0.005 px, the one with the lowest error on network-like maps
(amplitude 0.5-1, blurred by 0.5 sigma, + N(0, 0.03^2) noise), at the training targets' sigma 2
(the study gives the other sigmas; a narrower target is a training choice it cannot judge).
The default decoder's Gaussian fit only corrects the window estimate's bias, so window,
temperature and blur set its noise and belong to sigma 2 (the study gives the settings for the
other sigmas). Figures from that run (2026-12-02, 4352 landmarks in [4, 59]; the baselines as their
projects run them, shr_ops.codecs): clean 1.1e-06 px, noise 0.0503 px, network-like 0.0522 px;
DARK (mmpose) 0.0004 / 0.0503 / 0.0529; the plain local
soft-argmax without the pre-filter at its best setting (window 9, temperature 10) 0.0036 /
0.1186 / 0.0939; HRNet (mmpose's MSRAHeatmap) 0.3806 / 0.5343 / 0.5835; face-alignment 1.5
0.4322 / 0.7501 / 0.7556. Up to the frame edge too: on clean maps at most 2.8e-06 px in every
bin of the distance to the outermost pixel centre (0-1, 1-2, 2-3, > 3 px), where DARK errs by
0.38 / 0.34 / 0.11 px on average in the first three (docs/codec_study.md)."""

DEFAULT_SIGMA = 2.0
DEFAULT_WINDOW = 9
DEFAULT_TEMPERATURE = 40.0
DEFAULT_BLUR: float | None = 2.0
