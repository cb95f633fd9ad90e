from e2e_helpers import stack, stack_home  # noqa: F401  (fixtures)
