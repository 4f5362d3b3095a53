"""The inside of a `HostProcess`: runs the statements it reads from stdin, one JSON request per line."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Dict


def main() -> None:
    scope: Dict[str, Any] = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # prints of the code under test must not corrupt the answers
    for line in sys.stdin:
        request = json.loads(line)
        scope.update(request["names"])
        scope.pop("result", None)
        try:
            exec(request["code"], scope)  # noqa: S102 - test harness: the test sends the code
            answer: Dict[str, Any] = {"result": scope.get("result")}
        except BaseException as e:  # noqa: BLE001 - reported to the test, which decides
            traceback.print_exc()
            answer = {"error": type(e).__name__, "message": str(e), "wire": getattr(e, "wire_name", None)}
        out.write(json.dumps(answer, default=repr) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
