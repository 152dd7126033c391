"""ipywidgets over library objects for the notebooks: scene browser, trace browser, results table
and the live training dashboard."""
