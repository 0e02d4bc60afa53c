"""Short for ``python -m vgg_tutorial.studies.chain_study``, where the code is."""

import runpy

if __name__ == "__main__":
    runpy.run_module("vgg_tutorial.studies.chain_study", run_name="__main__", alter_sys=True)
