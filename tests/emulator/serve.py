"""The AWS emulator for the tests: moto's server (pinned in requirements.txt), with two
changes to how it runs DynamoDB transactions, so that they behave like DynamoDB's.

1. One request at a time. moto applies a transaction's writes one by one and undoes
   them if a condition fails; with its threaded server another request can see (or
   snapshot) the half-applied state. DynamoDB's transactions are atomic, so every
   request is serialised behind one lock. Connections keep their own threads, so the
   SDKs' keep-alive connections never wait on each other.
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

It also records what each DynamoDB request consumes (usage.py), for the tests that
count write units per event, and throttles requests on demand (throttle.py), for the
tests of what a provisioned table's throttling does.

Usage: serve.py HOST PORT
"""

import copy
import io
import json
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


def partition_query(original):
    """`Table.query` over the queried partition's items only (module docs, 3)."""

    def query(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name:
            items = _index_partition(self, index_name, kwargs.get("hash_key_conditions"))
            if items is None:
                return original(self, hash_key, *args, **kwargs)
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
