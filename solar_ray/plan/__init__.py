"""`solar-ray plan`: what an experiment needs from a cluster before it runs (memory, devices, hours, disk, cost).

Stages declare their needs and workload (solar_ray/contract.py); `models` sizes models from their configs,
`estimate` holds the memory arithmetic (DeepSpeed's estimators for model states), `cluster` reads cluster specs,
`planner` places stages on node types and schedules them, `render` prints the tables.
"""
