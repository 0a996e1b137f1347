"""The AWS emulator for the tests: moto's server (pinned in requirements.txt), with
changes to how it runs DynamoDB transactions, so that they behave like DynamoDB's (1,
2), and to how fast it answers, without changing what it answers (3 to 7).

1. One request at a time. moto applies a transaction's writes one by one and undoes
   them if a condition fails; with its threaded server another request can see (or
   snapshot) the half-applied state. DynamoDB's transactions are atomic, so every
   request is serialised behind one lock. (werkzeug's server closes each connection
   after its request, so a client's requests never wait behind another connection's.)
2. Undo by item. moto snapshots the tables a transaction touches with `copy.deepcopy`,
   and a table refers to its backend, so each transaction copied the emulator's whole
   state: the suite slowed down quadratically as tests added items. Here a transaction
   remembers the items it touches (and the length of each table's stream) and restores
   just those. The checks moto makes are unchanged: at most 100 items, each item once,
   the conditions, and the cancellation reasons with the old items (ALL_OLD).

3. A query reads its partition. moto's `Table.query` sorts every item of the table to
   find the queried partition's, so each query cost more as the suite filled its
   tables; here a query hands moto only the items of its partition: a table's from the
   table, an index's from a map of the index's partitions, built on the first query of
   the index after a write to the table. What it answers is unchanged.
4. An index query reads up to its limit. moto sorts, compares and counts every item of
   the partition before it applies the limit, so a query of 3 items from a partition of
   300 cost as much as reading all 300. Here a partition is sorted once (in moto's
   order, until the next write to its table), and moto is handed the items past the
   query's start key that meet its range condition, up to its limit, and the next one:
   the items, LastEvaluatedKey and filtering moto answers are the same.
5. An index projects by name. moto projects an item onto an index by converting the
   whole item to JSON once per projected attribute; here the index's attributes are
   picked from the item.
6. Reads answer with `json.dumps`. moto writes every answer through a serializer driven
   by the service model, which took more time than the query itself; a read's answer
   (Query, GetItem, BatchGetItem) is plain DynamoDB JSON, so it is dumped as it is
   (binary values base64, as on the wire). `INLET_EMULATOR_MOTO_SERIALIZER=1` serves
   them with moto's serializer, to compare. An index query's items are projected before
   moto copies them (moto deep-copies whole items, then projects).
7. Less per request: moto's list of its own modules is read once, not per request, and
   requests are not logged one line each (warnings and errors are).

It also records what each DynamoDB request consumes (usage.py), for the tests that
count write units per event, and throttles requests on demand (throttle.py), for the
tests of what a provisioned table's throttling does.

Usage: serve.py HOST PORT
"""

import base64
import copy
import io
import json
import logging
import os
import sys
import threading

from werkzeug.serving import run_simple

import throttle
import usage
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def transact_write_items(self, transact_items):
    """moto 5.2.5's `DynamoDBBackend.transact_write_items`, undoing by item."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    # What to restore if the transaction is cancelled: each touched item as it was,
    # and each touched table's stream length.
    undo = []
    streams = {}
    target_items = set()

    def remember(table_name, key):
        table = self.get_table(table_name)
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = (
            DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        )
        undo.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        if table.stream_shard is not None and table_name not in streams:
            streams[table_name] = (table.stream_shard, len(table.stream_shard.items))

    def rollback():
        for table, hash_key, range_key, item in reversed(undo):
            if range_key is not None:
                if item is None:
                    table.items[hash_key].pop(range_key, None)
                    if not table.items[hash_key]:
                        table.items.pop(hash_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        for shard, length in streams.values():
            del shard.items[length:]

    errors = []
    for item in transact_items:
        original_item = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            return_old = op.get("ReturnValuesOnConditionCheckFailure")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in target_items:
                raise MultipleTransactionsException()
            target_items.add(unique)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition = get_filter_expression(condition_expression, names, values)
                if not condition.expr(current):
                    if return_old == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                remember(table_name, key)
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001, as moto does: every failure is a reason
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


# table name -> (index name, key attribute) -> key value (JSON) -> items; a table's
# entry is dropped by every write to it.
INDEX_PARTITIONS = {}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def forget_index_partitions(target, body):
    """Drops the index maps of the tables a write request names."""
    if target.split(".", 1)[-1] not in WRITES:
        return
    names = {body.get("TableName")} | set(body.get("RequestItems", {}))
    for item in body.get("TransactItems", []):
        for operation in item.values():
            names.add(operation.get("TableName"))
    for name in names:
        INDEX_PARTITIONS.pop(name, None)
    SORTED_PARTITIONS.difference_update({m for m in SORTED_PARTITIONS if m[0] in names})


def _index_partition(table, index_name, conditions):
    """The items of one partition of an index, or None when the query is not of that
    simple form (one key condition)."""
    if not conditions or len(conditions) != 1:
        return None
    attribute, value = conditions[0]
    maps = INDEX_PARTITIONS.setdefault(table.name, {})
    partitions = maps.get((index_name, attribute))
    if partitions is None:
        partitions = {}
        for hash_set in table.items.values():
            for item in hash_set.values() if table.range_key_attr else [hash_set]:
                found = item.attrs.get(attribute)
                if found is not None:
                    key = json.dumps(found.to_json(), sort_keys=True)
                    partitions.setdefault(key, []).append(item)
        maps[(index_name, attribute)] = partitions
    return partitions.get(json.dumps(value.to_json(), sort_keys=True), [])


# (table name, index name, key value) of the index partitions already sorted in place
# (in moto's order); dropped with the table's index maps.
SORTED_PARTITIONS = set()


def _window(table, index_name, key, items, args):
    """The items of an index partition moto's query can reach (module docs, 4): the
    partition sorted once as moto sorts it, those past the start key that meet the
    range condition up to the limit, and the one after them, which tells moto there is
    more (a LastEvaluatedKey)."""
    range_comparison, range_objs, limit, start, forward = args[:5]
    index = table.get_index(index_name)
    hash_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    range_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if not limit or len(hash_keys) != 1 or len(range_keys) != 1:
        return items
    hash_attrs = hash_keys + [table.hash_key_attr]
    range_attrs = range_keys + [table.range_key_attr]
    marker = (table.name, index_name, key)
    if marker not in SORTED_PARTITIONS:
        sort_by = table._generate_attr_to_sort_by(hash_attrs, range_attrs)
        items[:] = [i for i in items if all(i.attrs.get(a) for a in sort_by)]
        table.sorted_items(hash_attrs, range_attrs, items)
        SORTED_PARTITIONS.add(marker)
    window = []
    matched = 0
    past_start = start is None
    for item in items if forward is not False else reversed(items):
        if not past_start:
            if table._item_comes_before_dct(item, start, hash_attrs, range_attrs, forward is not False):
                continue
            past_start = True
        window.append(item)
        if matched == limit:
            break
        value = item.attrs.get(range_keys[0])
        if not range_comparison or value.compare(range_comparison, range_objs):
            matched += 1
    return window


def project(self, item):
    """`SecondaryIndex.project` for an index's top-level attributes (module docs, 5)."""
    from moto.dynamodb.models.dynamo_type import Item

    projection_type = (self.projection or {}).get("ProjectionType")
    if projection_type not in ("KEYS_ONLY", "INCLUDE"):
        return item
    names = self.table_key_attrs + [key["AttributeName"] for key in self.schema]
    if projection_type == "INCLUDE":
        names = names + self.projection.get("NonKeyAttributes", [])
    projected = Item(hash_key=item.hash_key, range_key=item.range_key, attrs={})
    # dict.update: moto's item dict re-measures the whole item on each attribute set.
    dict.update(projected.attrs, {n: item.attrs[n] for n in names if n in item.attrs})
    return projected


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _capacity_as_doubles(value):
    """Capacity units as the service model types them (doubles: `3.0`, not `3`)."""
    if isinstance(value, list):
        return [_capacity_as_doubles(v) for v in value]
    if isinstance(value, dict):
        return {
            name: float(v) if name.endswith("CapacityUnits") and isinstance(v, int) else _capacity_as_doubles(v)
            for name, v in value.items()
        }
    return value


def plain_json(original):
    """A DynamoDB action whose answer is written with `json.dumps` (module docs, 6)."""

    def action(self):
        result = original(self)
        body = getattr(result, "result", None)
        if not isinstance(body, dict):
            return result
        body = {name: value for name, value in body.items() if value is not None}
        if "ConsumedCapacity" in body:
            body["ConsumedCapacity"] = _capacity_as_doubles(body["ConsumedCapacity"])
        return json.dumps(body, default=_json_default)

    return action


def partition_query(original):
    """`Table.query` over the queried partition's items only (module docs, 3 and 4)."""

    def query(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name:
            conditions = kwargs.get("hash_key_conditions")
            items = _index_partition(self, index_name, conditions)
            if items is None:
                return original(self, hash_key, *args, **kwargs)
            key = json.dumps(conditions[0][1].to_json(), sort_keys=True)
            index = self.get_index(index_name)
            # Projected before moto copies them: moto deep-copies each item whole.
            items = [index.project(item) for item in _window(self, index_name, key, items, args)]
        elif hash_key is None or not self.range_key_attr:
            return original(self, hash_key, *args, **kwargs)
        else:
            partition = self.items.get(hash_key)
            items = list(partition.values()) if partition else []
        # Requests run one at a time (see 1), so shadowing the method is safe.
        self.all_items = lambda: items
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    return query


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    from moto.dynamodb.models import DynamoDBBackend

    from moto.dynamodb.models.table import Table

    DynamoDBBackend.transact_write_items = transact_write_items
    Table.query = partition_query(Table.query)
    from moto.dynamodb.models.table import SecondaryIndex

    SecondaryIndex.project = project
    from moto.dynamodb.responses import DynamoHandler
    from moto import backends

    # moto lists its own package directory on every request to find the backend.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    # One log line per request cost an eighth of the emulator's time; errors still log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    if os.environ.get("INLET_EMULATOR_MOTO_SERIALIZER") != "1":
        for name in ("query", "get_item", "batch_get_item"):
            setattr(DynamoHandler, name, plain_json(getattr(DynamoHandler, name)))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        if environ.get("PATH_INFO") == "/_inlet/usage":
            with lock:
                return usage.answer(environ, start_response)
        if environ.get("PATH_INFO") == "/_inlet/throttle":
            return throttle.configure(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        body = None
        if target.startswith("DynamoDB_"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
        if body is not None:
            throttled = throttle.intercept(target, body, start_response)
            if throttled is not None:
                return throttled
        with lock:
            # The whole response is produced inside the lock.
            if body is not None:
                forget_index_partitions(target, body)
            prior = usage.before(target, body) if body is not None else None
            response = list(app(environ, start_response))
            if body is not None:
                try:
                    usage.record(target, body, prior, b"".join(response))
                except Exception as error:  # noqa: BLE001 - never fail a request for it
                    print(f"usage: cannot record {target}: {error!r}", file=sys.stderr)
            return response

    run_simple(
        host,
        port,
        one_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
