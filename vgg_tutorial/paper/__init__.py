"""Layer 1, the paper: Table 1 as data (:mod:`.configs`), the builder of every configuration (:mod:`.models`), its
fully convolutional form for dense evaluation (:mod:`.dense`), the arithmetic of parameters, MACs and receptive fields
(:mod:`.accounting`), and the table type every layer prints its results with (:mod:`.table`).

Imports nothing else from the package: every other layer builds on it.
"""
