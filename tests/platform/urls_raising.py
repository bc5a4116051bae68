"""A URLconf for tests: the real routes plus views that fail in the ways the error layer must catch."""

from django.http import HttpRequest
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.views import APIView

from config.errors import Conflict, Invalid
from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as real_urlpatterns


class Boom(APIView):
    public = True
    authentication_classes: list = []

    def get(self, request: Request):
        raise RuntimeError("secret internal detail /etc/passwd")


class DomainBoom(APIView):
    public = True
    authentication_classes: list = []

    def get(self, request: Request):
        if request.query_params.get("kind") == "invalid":
            raise Invalid(errors={"email": ["Enter a valid email address."]})
        raise Conflict("The code was already redeemed.")


def django_boom(request: HttpRequest):
    raise RuntimeError("secret internal detail in a plain Django view")


urlpatterns = [
    path("api/v1/test/boom", Boom.as_view()),
    path("api/v1/test/domain", DomainBoom.as_view()),
    path("api/v1/test/django-boom", django_boom),
    path("", include(real_urlpatterns)),
]
