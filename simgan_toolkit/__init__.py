"""simgan-toolkit: SimGAN (S+U learning) with a plugin system for new domains.

Import what you need from the submodules (``simgan_toolkit.task``, ``.networks``,
``.features``, ``.training``, ``.plugin``); importing this package itself is cheap.
"""

__version__ = "0.1.0"
