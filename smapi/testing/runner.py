"""`smapi conformance`: run the conformance suite against one driver, from an installed package."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from typing import Optional, Sequence

from smapi.testing.sut import CERTIFY_ENV, factory_from_environment

SUITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance")
#: pytest's short summary of skips, failures and errors: a skipped feature is reported with its reason
REPORT = "-rfEs"


class ToolsMissing(RuntimeError):
    pass


def _require_test_tools() -> None:
    # found, not imported: pytest must import them itself to rewrite their assertions
    absent = [name for name in ("pytest", "hypothesis") if importlib.util.find_spec(name) is None]
    if absent:
        raise ToolsMissing(f"the conformance suite runs on pytest and hypothesis ({', '.join(absent)} missing); "
                           "install them with pip install 'smapi[testing]'")


def describe(driver_spec: str) -> str:
    """One line on what the suite will hold the driver to: its declared features and the hooks it offers."""
    from smapi.core.driver import load_driver
    from smapi.testing.client import HOOKS, lookup_hook

    driver = load_driver(driver_spec)
    features = driver.call("storage", "Query.query", dbg="conformance:describe").get("features", [])
    hooks = [h for h in HOOKS if lookup_hook(driver, h) is not None]
    return (f"conformance: driver {driver.name} declares {' '.join(features) or 'no features'}; hooks: "
            f"{', '.join(hooks) or 'none'}. Tests needing anything else are skipped with the reason.")


def run(driver: str, config: Optional[str] = None, factory_ref: Optional[str] = None,
        pytest_args: Sequence[str] = ()) -> int:
    """Run the suite against `driver`; returns pytest's exit code (0: every test passed or was skipped)."""
    _require_test_tools()
    import pytest

    if config is not None and factory_ref is not None:
        raise ValueError("give --config or --factory, not both (a factory makes its own device_config)")
    certify = json.dumps({"driver": driver, "config": config, "factory": factory_ref})
    factory_from_environment(certify)  # a bad driver, config or factory is reported now, not once per test
    print(describe(driver), file=sys.stderr, flush=True)
    os.environ[CERTIFY_ENV] = certify
    if "SMAPI_LOG_FILE" not in os.environ:  # keep the suite's calls out of the host's /var/log/smapi
        os.environ["SMAPI_LOG_FILE"] = os.path.join(tempfile.mkdtemp(prefix="smapi-conformance-"), "smapi.log")
    # -c /dev/null: no configuration of whatever project the command runs in applies to the suite
    args = [SUITE_DIR, "-c", os.devnull, "--rootdir", SUITE_DIR, "-p", "smapi.testing.plugin",
            "-p", "no:cacheprovider", REPORT, *pytest_args]
    return int(pytest.main(args))
