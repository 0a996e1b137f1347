"""What the functions under test consume in DynamoDB, by DynamoDB's published rules,
recorded by the emulator (serve.py) for every request it serves.

A write costs one write unit per KB (rounded up) of the item — the larger of its
before and after images — and twice that inside `TransactWriteItems`; each global
secondary index the item is in (before or after) costs another write of the projected
item. A condition check in a transaction reads the item. Reads cost one read unit per
4 KB for a strongly consistent read, half for an eventually consistent one (`Query`
sums the items it returns). Item sizes follow DynamoDB's published rules (`_size`):
attribute names plus values, binary values by their bytes (moto's own size counts
their base64 text), numbers by their significant digits.

Each write also names the partitions it lands on: `pk`, the item's partition key, and
`index_keys`, `[index, partition key]` of each global secondary index the item is in
(before or after), for the tests that count writes per partition key (DynamoDB takes
at most ~1,000 write units a second on one key).

`GET /_inlet/usage?tables=<text>` answers the records of the tables whose names contain
the text (each test's stack has its own unique part) as JSON, oldest first.
"""

import base64
import json
import math
import threading
import urllib.parse

RECORDS = []
GUARD = threading.Lock()


def _backend_tables():
    from moto.dynamodb.models import dynamodb_backends

    for regions in dynamodb_backends.values():
        for backend in regions.values():
            yield from backend.tables.items()


def _table(name):
    for table_name, table in _backend_tables():
        if table_name == name:
            return table
    return None


def _item(table, key):
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        return table.get_item(hash_key, range_key)
    except Exception:  # noqa: BLE001 - a missing key or item: nothing there
        return None


def _key_of(table, attrs):
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {n: attrs[n] for n in names if n in attrs}


def _writes(target, body):
    """(table, key, transactional) of each item a request writes, and its checks."""
    op = target.split(".", 1)[-1]
    if op == "PutItem":
        return [(body["TableName"], ("item", body["Item"]), False)]
    if op in ("UpdateItem", "DeleteItem"):
        return [(body["TableName"], ("key", body["Key"]), False)]
    if op == "BatchWriteItem":
        out = []
        for name, requests in body.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    out.append((name, ("item", request["PutRequest"]["Item"]), False))
                else:
                    out.append((name, ("key", request["DeleteRequest"]["Key"]), False))
        return out
    if op == "TransactWriteItems":
        out = []
        for entry in body.get("TransactItems", []):
            for kind, part in entry.items():
                if kind == "Put":
                    out.append((part["TableName"], ("item", part["Item"]), True))
                elif kind in ("Update", "Delete"):
                    out.append((part["TableName"], ("key", part["Key"]), True))
                elif kind == "ConditionCheck":
                    out.append((part["TableName"], ("check", part["Key"]), True))
        return out
    return []


def before(target, body):
    """The sizes of the items a request is about to write (for the larger image)."""
    sizes = []
    for name, (kind, attrs), _ in _writes(target, body):
        table = _table(name)
        if table is None:
            sizes.append(None)
            continue
        key = attrs if kind != "item" else _key_of(table, attrs)
        item = _item(table, key)
        sizes.append((_item_size(item), _indexed(table, item), _index_keys(table, item)))
    return sizes


def _value_size(kind, value):
    """The size of one attribute value (wire form: type letter and value)."""
    if kind == "S":
        return len(value.encode())
    if kind == "B":
        # The request's base64 text, or (in moto's stored items) the bytes themselves.
        if isinstance(value, bytes):
            return len(value)
        try:
            return len(base64.b64decode(value, validate=True))
        except ValueError:
            return len(value.encode())
    if kind == "N":
        digits = value.lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
        return (max(1, len(digits)) + 1) // 2 + 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size(kind[0], v) for v in value)
    if kind == "L":
        return 3 + sum(1 + _value_size(*next(iter(v.items()))) for v in value)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(*next(iter(v.items()))) for k, v in value.items())
    return 1  # BOOL, NULL


def _size(attrs):
    """An item's size (wire form: name -> {type: value})."""
    return sum(len(name.encode()) + _value_size(*next(iter(value.items()))) for name, value in attrs.items())


def _item_size(item):
    return _size(item.to_json()["Attributes"]) if item is not None else 0


def _request_size(attrs):
    return _size(attrs)


def _key_text(value):
    """A key attribute's value as text (`{"S": "a"}` -> `a`)."""
    return str(next(iter(value.values()))) if isinstance(value, dict) else str(value)


def _index_keys(table, item):
    """[index, partition key] of each global secondary index `item` is in."""
    if item is None:
        return []
    found = []
    for index in table.global_indexes or []:
        if all(attr in item.attrs for attr in index.schema_key_attrs):
            hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
            found.append([index.name, _key_text(item.attrs[hash_attr].to_json())])
    return found


def _indexed(table, item):
    if item is None:
        return []
    found = []
    for index in table.global_indexes or []:
        if all(attr in item.attrs for attr in index.schema_key_attrs):
            found.append((index.name, _item_size(index.project(item))))
    return found


def record(target, body, before_sizes, response):
    op = target.split(".", 1)[-1]
    entries = []
    writes = _writes(target, body)
    for (name, (kind, attrs), transactional), prior in zip(writes, before_sizes):
        table = _table(name)
        if table is None or prior is None:
            continue
        prior_size, prior_indexed, prior_index_keys = prior
        key = attrs if kind != "item" else _key_of(table, attrs)
        item = _item(table, key)
        after_size = _item_size(item)
        pk = _key_text(key[table.hash_key_attr])
        if kind == "check":
            entries.append({"table": name, "op": op, "kind": "check", "bytes": prior_size, "pk": pk,
                            "read_units": 2 * max(1, math.ceil(prior_size / 4096)), "write_units": 0})
            continue
        index_keys = [k for k in prior_index_keys]
        index_keys += [k for k in _index_keys(table, item) if k not in index_keys]
        size = max(prior_size, after_size, _request_size(attrs) if kind == "item" else 0)
        units = max(1, math.ceil(size / 1024)) * (2 if transactional else 1)
        index_units = 0
        indexes = dict(prior_indexed)
        indexes.update(dict(_indexed(table, item)))
        for _, projected in indexes.items():
            index_units += max(1, math.ceil(projected / 1024))
        entries.append({"table": name, "op": op, "kind": kind, "bytes": size,
                        "transactional": transactional, "write_units": units,
                        "index_write_units": index_units, "read_units": 0,
                        "pk": pk, "index_keys": index_keys})
    if op in ("GetItem", "Query", "BatchGetItem", "Scan"):
        try:
            answer = json.loads(response or b"{}")
        except ValueError:
            answer = {}
        items = []
        if "Item" in answer:
            items = [answer["Item"]]
        items += answer.get("Items", [])
        for found in answer.get("Responses", {}).values():
            items += found
        size = sum(len(json.dumps(i)) for i in items)
        consistent = body.get("ConsistentRead", False)
        units = max(1, math.ceil(size / 4096)) * (1 if consistent else 0.5)
        name = body.get("TableName") or ",".join(body.get("RequestItems", {}).keys())
        entries.append({"table": name, "op": op, "kind": "read", "bytes": size,
                        "read_units": units, "write_units": 0})
    with GUARD:
        RECORDS.extend(entries)


def answer(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    part = query.get("tables", [""])[0]
    with GUARD:
        found = [r for r in RECORDS if part in r["table"]]
    data = json.dumps(found).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
