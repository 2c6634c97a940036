"""The product's entry points: the ``dagbridge`` command line, the worker and bridge processes,
and the local stack of ``dagbridge dev``. The only package that may import every other one."""
