from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
application = get_wsgi_application()
# Everything loaded so far (Django, the apps, their modules) lives as long as the process:
# moved out of the collector's reach, a full collection no longer walks it. Full
# collections were 50-200 ms pauses hitting one API request in 30 (bench/api.py --gc-freeze).
gc.freeze()
