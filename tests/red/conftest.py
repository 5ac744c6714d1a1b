"""Red-level tests: each test gets its own data dir (redbot.pytest's autouse fixture); make sure
no Config data cached in memory by an earlier test leaks into it."""

import weakref

import pytest
from redbot.core import config as config_module
from redbot.core._drivers import json as json_driver


@pytest.fixture(autouse=True)
def fresh_config_cache():
    config_module._config_cache = weakref.WeakValueDictionary()
    json_driver._shared_datastore.clear()
    yield
    json_driver._shared_datastore.clear()
