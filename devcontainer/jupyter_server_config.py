"""Jupyter Server settings of the devcontainer (installed at /etc/jupyter).

`lab-env lab` starts JupyterLab on 127.0.0.1 with its token. Jupyter then
answers only requests whose Host header is local, and the Codespaces port
forwarder in a browser sends the codespace's own host name
(<codespace>-<port>.<forwarding domain>). This adds exactly those names to
the local ones. The token stays required: nothing here disables it.
"""

import os

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

_name = os.environ.get("CODESPACE_NAME")
_domain = os.environ.get("GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN")
if _name and _domain:
    # 8888 and the next ports Jupyter tries when 8888 is taken.
    c.ServerApp.local_hostnames = ["localhost", *(f"{_name}-{port}.{_domain}" for port in range(8888, 8898))]
