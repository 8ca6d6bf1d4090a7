"""The built-in merge methods; each module registers its plug-ins (solar_ray/merge/plugin.py) on import.

A new method is a module here (or anywhere imported before use) calling `register(...)`: no registry or builder
elsewhere changes.
"""

from solar_ray.merge.methods import linear, model_stock, slerp, task_vectors  # noqa: F401
