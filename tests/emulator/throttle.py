"""Throttling on demand, for the tests of what a provisioned table does under a burst.

`POST /_inlet/throttle?tables=<text>&operations=PutItem,UpdateItem&count=N` makes the
next N DynamoDB requests of those operations (all operations when `operations` is left
out) on any table whose name contains the text answer as DynamoDB does when a table's
provisioned throughput is exceeded: HTTP 400 with
`ProvisionedThroughputExceededException`, nothing applied and nothing charged. `count=0`
removes the rules for that text. Each test's tables have a unique part in their names,
so tests running at once do not throttle each other.
"""

import json
import threading
import urllib.parse

RULES = []
GUARD = threading.Lock()

ERROR = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
}


def configure(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    tables = query.get("tables", [""])[0]
    operations = [o for o in query.get("operations", [""])[0].split(",") if o]
    count = int(query.get("count", ["0"])[0])
    with GUARD:
        RULES[:] = [r for r in RULES if r["tables"] != tables]
        if count > 0 and tables:
            RULES.append({"tables": tables, "operations": set(operations), "remaining": count})
    start_response("204 No Content", [])
    return [b""]


def _tables(body):
    names = set()
    if "TableName" in body:
        names.add(body["TableName"])
    names.update(body.get("RequestItems", {}).keys())
    for item in body.get("TransactItems", []):
        for operation in item.values():
            if "TableName" in operation:
                names.add(operation["TableName"])
    return names


def intercept(target, body, start_response):
    """The throttling answer for this request when a rule takes it, else None."""
    operation = target.split(".", 1)[-1]
    tables = _tables(body)
    with GUARD:
        for rule in RULES:
            if rule["remaining"] <= 0:
                continue
            if rule["operations"] and operation not in rule["operations"]:
                continue
            if not any(rule["tables"] in name for name in tables):
                continue
            rule["remaining"] -= 1
            break
        else:
            return None
    data = json.dumps(ERROR).encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))],
    )
    return [data]
