"""Layer 2, the data: the synthetic datasets and their folders in Imagenette's layout, Imagenette itself, the paper's
augmentation (§3.1) and test-time preprocessing (§3.2), the boxes of Appendix A, and the two loaders that batch a
training set.

Imports only the layer below, :mod:`vgg_tutorial.paper`.
"""
