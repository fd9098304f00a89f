"""rlcourse: the tested helper package behind the rlcourse notebooks.

One module per idea; each module's docstring names the chapter that derives it.
Notebooks import from here; nothing here imports a notebook.
"""

__version__ = "0.1.0"
