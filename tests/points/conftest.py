from tests.points.test_pipeline import ann, program  # noqa: F401 - shared fixtures of the points tests
