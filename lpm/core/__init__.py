"""The core of lpm: the layer-peeled model, its losses, solvers, certificates and geometry.

Layer rule (checked by the import contract in ``pyproject.toml``): modules of
``lpm.core`` import nothing from the rest of ``lpm`` and nothing from
``full_model``; ``full_model`` imports ``lpm.core`` (never its solvers);
the applications (``lpm.sweep``, ``lpm.compare``, ``lpm.figures``,
``lpm.reproduce``, ``lpm.simulate``, ``lpm.cli``) may import both.
"""
