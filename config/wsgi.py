import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from config.chunked import ChunkedBodyMiddleware  # noqa: E402 - needs the settings module set above

# gunicorn and runserver both load this: chunked request bodies reach Django with a known length.
application = ChunkedBodyMiddleware(django_application)
