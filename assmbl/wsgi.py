from __future__ import annotations

import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from assmbl.chunked import ChunkedRequestBody

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
application = ChunkedRequestBody(get_wsgi_application())
# What the first request would otherwise load: the URLconf imports every view, and through
# them DRF, drf-spectacular, boto3 and the rest (~38k objects that would stay in the
# collector's reach for the life of the process).
import_module(settings.ROOT_URLCONF)
# Everything loaded so far (Django, the apps, their modules) lives as long as the process:
# frozen, a full collection does not walk it. Walking it makes each full collection a
# 50-200 ms pause, on about one API request in 30 (docs/decisions/0050-gc-freeze.md).
gc.collect()
gc.freeze()
