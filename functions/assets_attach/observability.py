"""The one Logger, Tracer and Metrics of the package (Powertools), named once.

Every module logs through this logger, so the correlation keys a handler appends (``jobId``,
``objectId``, ``bucket``, ``key``) appear on every line of that invocation.
"""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "assets-attach"
NAMESPACE = "AssetsAttach"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# A status lookup records no metric; that is expected, not worth a warning on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
