from tests.simulation.scenario_plan import foreign, plan  # noqa: F401 - fixtures of the scenario tests
