from typing import Any

from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_save


class BenefitsConfig(AppConfig):
    name = "benefits"

    def ready(self) -> None:
        from benefits.models import Benefit, TierBenefitMapping  # models load after the app registry

        for model in (Benefit, TierBenefitMapping):
            post_save.connect(_forget_catalog, sender=model, dispatch_uid=f"benefits.catalog.save.{model.__name__}")
            post_delete.connect(_forget_catalog, sender=model, dispatch_uid=f"benefits.catalog.delete.{model.__name__}")
        m2m_changed.connect(_forget_catalog, sender=Benefit.components.through, dispatch_uid="benefits.catalog.m2m")


def _forget_catalog(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Any write to a catalog row drops this process's cached catalog of its tenant (see selectors)."""
    from benefits.selectors import forget_catalog  # selectors import models: not at app-registry time

    forget_catalog(tenant_id=instance.tenant_id)
