"""Checks that the emulator's speed-ups (serve.py, 3 to 7) change no answer: the same
writes and reads are sent to it and to moto's own server, and every answer must be the
same — queries of a table and of an index, forwards and backwards, with limits, range
conditions, filters and every page of each; GetItem; BatchGetItem; an error. Items
carry every attribute type (binary and sets included).

Usage: same_answers.py ENDPOINT   (the emulator's; moto's own server is started here)
"""

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3


def client(endpoint):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def pages(c, **query):
    answers = [c.query(**query)]
    while "LastEvaluatedKey" in answers[-1]:
        answers.append(c.query(ExclusiveStartKey=answers[-1]["LastEvaluatedKey"], **query))
    return answers


def answers(endpoint, table):
    c = client(endpoint)
    c.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "gs")
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "gs", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["n", "b"]},
            }
        ],
    )
    for i in range(40):
        item = {
            "pk": {"S": f"p{i % 3}"},
            "sk": {"S": f"s{i:03}"},
            "gs": {"S": f"{i % 7:03}"},
            "n": {"N": str(i * 1.5)},
            "b": {"B": bytes([i, 0, 255])},
            "bs": {"BS": [b"a", b"b"]},
            "ss": {"SS": ["a", "b"]},
            "m": {"M": {"x": {"L": [{"N": "1"}, {"S": "y"}, {"NULL": True}, {"BOOL": False}]}}},
        }
        if i % 5:  # some items are not in the index
            item["g"] = {"S": f"g{i % 2}"}
        c.put_item(TableName=table, Item=item)
    out = pages(
        c,
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p1"}},
        Limit=5,
    )
    for forward in (True, False):
        for limit in (1, 3, 7, 30):
            query = dict(
                TableName=table,
                IndexName="by-g",
                KeyConditionExpression="g = :g AND gs < :u",
                ExpressionAttributeValues={":g": {"S": "g0"}, ":u": {"S": "005"}},
                Limit=limit,
                ScanIndexForward=forward,
                ReturnConsumedCapacity="TOTAL",
            )
            out += pages(c, **query)
            query["FilterExpression"] = "n > :n"
            query["ExpressionAttributeValues"] = {
                **query["ExpressionAttributeValues"],
                ":n": {"N": "10"},
            }
            out += pages(c, **query)
            out += pages(
                c,
                TableName=table,
                IndexName="by-g",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": "g1"}},
                Limit=limit,
                ScanIndexForward=forward,
            )
    out.append(c.get_item(TableName=table, Key={"pk": {"S": "p1"}, "sk": {"S": "s001"}}))
    out.append(c.get_item(TableName=table, Key={"pk": {"S": "p1"}, "sk": {"S": "none"}}))
    keys = [("p1", "s001"), ("p2", "s002"), ("p2", "none")]
    out.append(
        c.batch_get_item(
            RequestItems={
                table: {"Keys": [{"pk": {"S": p}, "sk": {"S": s}} for p, s in keys]}
            }
        )
    )
    try:
        c.query(
            TableName=f"{table}-missing",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p1"}},
        )
    except Exception as error:  # noqa: BLE001 - the error is the answer compared
        out.append(str(error))
    for answer in out:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
            for name in list(answer.get("Responses", {})):
                answer["Responses"][name].sort(key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
    return [str(a).replace(table, "<table>") for a in out]


def main():
    emulator = sys.argv[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto_server = Path(sys.executable).parent / "moto_server"
    plain = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/")
                break
            except OSError:
                time.sleep(0.1)
        table = f"same-answers-{uuid.uuid4().hex[:8]}"
        ours = answers(emulator, table)
        theirs = answers(f"http://127.0.0.1:{port}", table)
    finally:
        plain.kill()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            sys.exit(f"answer {i} differs from moto's own:\n  emulator: {a}\n  moto:     {b}")
    if len(ours) != len(theirs):
        sys.exit(f"{len(ours)} answers, moto's own server gave {len(theirs)}")
    print(f"the emulator's {len(ours)} answers are moto's own")


if __name__ == "__main__":
    main()
