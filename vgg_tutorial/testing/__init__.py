"""Layer 4, testing (§3.2, §4): the views a net sees at test time, the paper's test methods, ensembles of nets, and a
trained net as an image descriptor (Appendix B).

Imports only the layers below: paper, data and training (checkpoints are read through its run files).
"""
