from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "simulation"

    def ready(self) -> None:
        # The admin autodiscovered every app's admin module in its own ready(), which runs first
        # (django.contrib.admin precedes the project apps in INSTALLED_APPS).
        from simulation.admin_warnings import install

        install()
