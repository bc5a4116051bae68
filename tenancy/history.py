"""History tracking (django-simple-history) for configuration and member rows.

simple-history records ``request.user`` as the author of a change. API calls are made by services
(a token principal, not a Django user), so only a real Django user (an admin) is recorded there; the
calling service is recorded in the audit entry that every write also makes.
"""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from simple_history.models import HistoricalRecords


def _django_user_only(request: Any = None, **kwargs: Any) -> AbstractBaseUser | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) else None


def tracked(**kwargs: Any) -> HistoricalRecords:
    """``history = tracked()`` on a model: history with the admin user (if any) as author."""
    return HistoricalRecords(get_user=_django_user_only, **kwargs)
