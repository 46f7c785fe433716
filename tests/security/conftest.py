"""schemathesis gives every operation's test the same node id (test_api_schemathesis.py::test_...), the operation only
in its name. pytest-xdist (`make test`) hands out tests by node id, so it would run one operation of the 127: each
item's node id gets its name (with the operation), as a parametrized test's would."""

from __future__ import annotations


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "SchemathesisFunction" and not item.nodeid.endswith("]"):
            item._id = item.parent.id.child(item.name)  # pytest 9 keeps the node id structured in _id
            assert item.nodeid.endswith("]"), item.nodeid
