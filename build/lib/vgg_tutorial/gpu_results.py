"""Short for ``python -m vgg_tutorial.studies.gpu_results``, where the code is."""

import runpy

if __name__ == "__main__":
    runpy.run_module("vgg_tutorial.studies.gpu_results", run_name="__main__", alter_sys=True)
