"""``python -m chordexp.bench``: the performance benchmarks of the project.

Each module measures one thing against a baseline taken in the same run and returns
``common.Row``s; ``__main__`` runs the chosen ones, prints one table and writes JSON.
"""
