"""Layer 3, training (§3.1, §3.3): the training step, run files and checkpoints, the settings and command line of
``python -m vgg_tutorial.train``, several GPUs, the benchmark of the step, and the localisation net of Appendix A.

Imports only the layers below: :mod:`vgg_tutorial.paper` and :mod:`vgg_tutorial.data`.
"""
