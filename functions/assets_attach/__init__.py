"""assets-attach: attach files from S3 or Jira to Jira Service Management Assets objects.

``__version__`` is the one place the version is written: the package metadata (pyproject.toml reads it), the CLI's
``--version``, openapi.json's ``info.version`` and the User-Agent of every Atlassian call take it from here.
"""

__version__ = "3.0.0"
