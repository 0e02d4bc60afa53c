"""Short for ``python -m vgg_tutorial.testing.evaluate``, where the code is."""

import runpy

if __name__ == "__main__":
    runpy.run_module("vgg_tutorial.testing.evaluate", run_name="__main__", alter_sys=True)
