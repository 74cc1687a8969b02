"""Emulated CUDA for the tests: the build of the emulated op library and the test device."""
