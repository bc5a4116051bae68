from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"

    def ready(self) -> None:
        # Imported in ready(), not at the top: registering the OpenAPI auth extension imports DRF and the
        # auth classes, which need the app registry.
        from tenancy import schema  # noqa: F401
