"""The kernel side of the labs: magics, the workspace, one-line tracebacks, widgets, JupyterLab settings."""
