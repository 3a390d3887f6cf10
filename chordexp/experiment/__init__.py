"""The training experiment: a Hydra config in, a run folder out.

Everything that knows about run folders, Hydra, sweeps, trackers and resume lives
here; the layers below (``model``, ``data``, ``training``, ``inference``) are plain,
typed Python that never imports this package.
"""
