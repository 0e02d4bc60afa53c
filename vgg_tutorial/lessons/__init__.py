"""Layer 6, what only the book's chapters use: the paper's tables rendered, plots, model summaries, diagrams, the GPU
results as tables, and the checks of the exercises.

May import every layer below; no layer imports it (only ``vgg_tutorial`` itself re-exports a few names).
"""
