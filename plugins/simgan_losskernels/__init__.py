"""Triton loss kernels for simgan-toolkit: the SimGAN losses fused into a few GPU launches.

Registered as the loss implementation ``"triton"`` (priority 10, available on CUDA devices when
Triton imports), so ``train.loss = "auto"`` picks it on a GPU and the pure-PyTorch
``"reference"`` elsewhere. Modules:

- :mod:`simgan_losskernels.plugin`: the entry point (cheap: imports neither torch nor triton);
- :mod:`simgan_losskernels.loss`: :class:`~simgan_losskernels.loss.TritonSimGANLoss`, dispatch and
  fallback, error bounds;
- :mod:`simgan_losskernels.kernels`: the Triton kernels and autograd functions;
- :mod:`simgan_losskernels.check`: kernel-vs-reference comparison (used by the tests, CPU
  interpreter and CUDA);
- :mod:`simgan_losskernels.bench`: fused vs eager timings, bytes moved, peak copy bandwidth.
"""
