"""The original sample's CertCheck listing, reproduced for the benchmark (`make bench`).

The sample (aws-samples/aws-privateca-certificate-deployment-automator, certCheck.py) runs one
PartiQL `SELECT hostID, expiry, certPath, keyPath` with boto3 and never follows `NextToken`, so
it sees one 1 MB page. For each item it logs a line and calls a host due when `expiry` is missing,
empty, or within a day. moto does not page PartiQL, so the same page is asked for as a Scan with
the same projection (DynamoDB pages both at 1 MB of items read). Invoking CertIssue per due host
is left out: only the listing is timed.

usage: original_listing.py <endpoint-url> <table> <runs>
Prints one JSON object: the median and minimum seconds, the due hosts and all hosts on the page.
"""
import json
import logging
import sys
import time
from datetime import datetime, timedelta

import boto3

logger = logging.getLogger("certcheck")


def listing(client, table):
    page = client.scan(TableName=table, ProjectionExpression="hostID, expiry, certPath, keyPath")
    due, seen = [], []
    soon = datetime.utcnow() + timedelta(days=1)
    for item in page["Items"]:
        host = item.get("hostID", {}).get("S")
        seen.append(host)
        expiry = item.get("expiry", {}).get("S", "")
        if not expiry:
            logger.info("no expiry for %s: a certificate will be issued", host)
            due.append(host)
            continue
        when = datetime.strptime(expiry, "%Y-%m-%d %H:%M:%S")
        if when <= soon:
            logger.info("certificate for %s expires %s: reissue", host, when)
            due.append(host)
        else:
            logger.info("certificate for %s is valid", host)
    return due, seen


def main():
    endpoint, table, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Lambda sends INFO lines to CloudWatch; here they go to stderr, which the bench discards.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    listing(client, table)  # warm-up: boto3 loads its models on the first call
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        due, seen = listing(client, table)
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"median_s": times[len(times) // 2], "min_s": times[0], "due": due, "seen": seen}))


if __name__ == "__main__":
    main()
