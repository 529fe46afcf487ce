"""The ``denoiselab`` command line."""
