"""In-process mode (no broker: ``CELERY_TASK_ALWAYS_EAGER``) runs the relay in this process. Inside an
HTTP request it must not run in the request's on-commit callback: a webhook or IAM call with a 10 s
timeout would hold the API response. This middleware collects the request's relay kicks and runs the
relay once, when the server closes the response, i.e. after the response has been sent (WSGI calls
``close()`` after writing the body). Outside a request (tasks, commands, shell) a kick runs the relay
at once, as before. With a broker the kick only enqueues a task and none of this applies."""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from outbox.tasks import deferred_kicks, deliver_outbox

logger = logging.getLogger("privilege.outbox")


class RelayAfterResponseMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        token = deferred_kicks.set([])
        try:
            response = self.get_response(request)
        finally:
            kicked = bool(deferred_kicks.get())
            deferred_kicks.reset(token)
        if kicked:
            # Run by response.close(), which the server calls after sending the body (Django keeps its own
            # closers here; there is no public hook that runs after the response is sent).
            response._resource_closers.append(_run_relay)  # type: ignore[attr-defined]
        return response


def _run_relay() -> None:
    try:
        deliver_outbox.delay()
    except Exception:  # the response is gone; the beat relay (or the next kick) retries what is due
        logger.exception("in-process relay after a response failed")
