"""The registries' entry types: a registration names only the hooks its entry type declares."""

from __future__ import annotations

import pytest

from chalicelib.imaging.analyzers import ANALYZERS
from chalicelib.imaging.operations import OPERATIONS
from chalicelib.ml.features import FEATURES
from chalicelib.ml.runtimes import MODEL_TASKS
from chalicelib.ml.training import ALGORITHMS
from chalicelib.registry import OperationEntry, Param, Registry


def test_a_misspelt_keyword_is_refused():
    operations = Registry("operation", OperationEntry)
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['scale_plans'\]"):
        operations.register("resize", Param("width", int, 1), scale_plans=lambda p, w, h: None)
    assert "resize" not in operations


def test_a_hook_of_another_registry_is_refused():
    with pytest.raises(TypeError, match="takes"):
        Registry("operation", OperationEntry).register("blur", takes="pil")


def test_the_hooks_registered_are_the_ones_run():
    plan = OPERATIONS.get("flip").scale_plan
    assert plan is not None and tuple(plan({}, 40, 30)) == (40, 30)
    assert ANALYZERS.get("phash").takes == "pil" and ANALYZERS.get("properties").takes == "array"
    assert FEATURES.get("pixels").length(size=8) == 64


def test_one_name_for_the_cross_parameter_validator():
    """Operations and features both validate across parameters through check_params."""
    from chalicelib.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="does not fit"):
        FEATURES.get("hog").clean_params({"size": 8, "cell_size": 8, "block_size": 2})
    assert OPERATIONS.get("resize").check_params is not None


def test_every_registry_has_its_own_entry_type():
    types = {registry.entry_type for registry in (OPERATIONS, ANALYZERS, FEATURES, ALGORITHMS, MODEL_TASKS)}
    assert len(types) == 5
    for registry in (OPERATIONS, ANALYZERS, FEATURES, ALGORITHMS, MODEL_TASKS):
        assert all(isinstance(entry, registry.entry_type) for entry in registry)
