"""Layer 5, the studies: the paper's experiments (Tables 3-11) in miniature on the CPU and at a real size on a GPU,
each a restartable command that writes one results file.

Imports only the layers below: paper, data, training and testing.
"""
