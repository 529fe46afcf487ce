"""The single-image real-noise baselines of the ScoreDVI paper's Table 1, each from its own paper.

Every baseline is a plain function over one noisy image, in the style of
``skimage.restoration``::

    restored = method(noisy, *, seed=0, device="auto", progress=False, **settings)

- ``noisy``: float32 array (H, W) or (H, W, C) with C in {1, 3}, values nominally in [0, 1]
  (not clipped: real noise overshoots).
- returns a float32 array of the same shape (not clipped; metrics clip).
- ``seed`` makes a run reproducible; ``device`` is ``"auto" | "cpu" | "cuda"``;
  ``progress`` shows a tqdm bar over the method's iterations.
- Defaults follow each method's paper; every deviation is stated in the function's docstring.

Modules
-------
bm3d_est      BM3D / CBM3D with σ from our noise estimator (Dabov et al. 2007)
pd_denoising  pixel-shuffle down-sampling + our Gaussian denoiser + PD refinement (Zhou et al. 2020)
dip           deep image prior (Ulyanov et al. 2018), ScoreDVI's X-net UNet; oracle iteration
self2self     Bernoulli-dropout self-supervision with test-time ensemble (Quan et al. 2020)
nn_denoiser   learned noise model + plug-and-play classical denoiser, NN+BM3D (Zheng et al. 2021)
apbsn         AP-BSN trained on the single noisy image, PD 5 in training, 2 at test (Lee et al. 2022)
"""
