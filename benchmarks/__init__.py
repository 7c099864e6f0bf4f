"""The benchmark suite: does refinement pay, against which baselines, at what cost.

``python -m benchmarks --suite quick --task all --out bench/`` runs, per task:

- :mod:`benchmarks.sim2real`: the sim-to-real table (synthetic, Gaussian noise, kornia
  photometric augmentation, refined, 3x/4x synthetic vs refined, labelled target oracle);
- :mod:`benchmarks.ablations`: SimGAN variants (history buffer, discriminator, psi, lambda, K_g);
- :mod:`benchmarks.realism`: KID and a visual Turing test on task-trained features, plus
  each domain's label-preservation figures;
- :mod:`benchmarks.speed`: simulator, training and refinement throughput, peak memory.

Results go to JSON, a Markdown table and PNG plots (:mod:`benchmarks.report`), each with the
config, seeds, package versions, device and commit. Suites are defined in
:mod:`benchmarks.suites`.
"""
