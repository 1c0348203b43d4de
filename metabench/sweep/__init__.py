"""Sweeps: grids of runs from a TOML file, planned against the database and run by an executor.

sweep_file (the format), plan (what is left to do), executor (the interface executors implement), local
(a process pool on this machine), slurm (a cluster), engine (a plan through an executor), attempts (what
the database knows of earlier tries).
"""
