"""Mixed S3 load for the chaos test, through boto3 (a real client, with its standard retries).

Usage: chaos_load.py ENDPOINT ACCESS SECRET BUCKET SECONDS OUT.json [phase]

Each worker thread owns its keys (w<i>/k<j>), so what a key may hold is known exactly: a
model of the acceptable contents per key (sha256 hex, or None for absent). An acknowledged PUT
makes the key hold exactly its bytes; an acknowledged DELETE makes it absent; a request whose
outcome is unknown (a connection reset, a timeout, a 5xx after retries) adds its possible
result to what is acceptable. Every GET is checked against the model: a 200 with other bytes,
or a 404 for a key that must exist, is a wrong answer — the one thing that must never happen.

phase "final": no load; GET every key of the model saved in OUT.json by the load phase and
report which ones do not match.
"""

import hashlib
import json
import os
import random
import sys
import threading
import time

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, access, secret, bucket, seconds, out_path = sys.argv[1:7]
phase = sys.argv[7] if len(sys.argv) > 7 else "load"
seconds = float(seconds)

cfg = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
    signature_version="s3v4",
)


def client():
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=cfg,
    )


def sha(b):
    return hashlib.sha256(b).hexdigest()


def classify(e):
    """A failure's cause, and whether the request may have taken effect."""
    if isinstance(e, botocore.exceptions.ClientError):
        code = e.response.get("Error", {}).get("Code", "?")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return f"{status} {code}", status >= 500
    if isinstance(e, (botocore.exceptions.EndpointConnectionError,
                      botocore.exceptions.ConnectionClosedError)):
        return "connection", True
    if isinstance(e, botocore.exceptions.ReadTimeoutError):
        return "timeout", True
    return type(e).__name__, True


WORKERS = 6
KEYS = 12
lock = threading.Lock()
counts = {}
failures = {}
wrong = []
events = []


def count(op):
    with lock:
        counts[op] = counts.get(op, 0) + 1


def fail(op, cause, key):
    with lock:
        failures[f"{op}: {cause}"] = failures.get(f"{op}: {cause}", 0) + 1
        events.append([time.time(), op, cause, key])


def payload(rng, n):
    return rng.randbytes(n)


def worker(i, model):
    rng = random.Random(1000 + i)
    s3 = client()
    tc = TransferConfig(multipart_threshold=6 * 1024 * 1024,
                        multipart_chunksize=5 * 1024 * 1024, use_threads=False)
    end = time.time() + seconds
    while time.time() < end:
        key = f"w{i}/k{rng.randrange(KEYS)}"
        ok = model.setdefault(key, [None])
        r = rng.random()
        try:
            if r < 0.45:
                # Mostly small (packed) objects, some of a few stripes.
                sizes = [0, 1, 700, 4096, 40_000, 200_000] if r < 0.35 else [1_100_000, 2_500_000]
                body = payload(rng, rng.choice(sizes))
                h = sha(body)
                try:
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                    model[key] = [h]
                    count("put")
                except Exception as e:
                    cause, maybe = classify(e)
                    fail("put", cause, key)
                    if maybe:
                        ok.append(h)
            elif r < 0.50:
                import io
                body = payload(rng, 11 * 1024 * 1024 + rng.randrange(1000))
                h = sha(body)
                try:
                    s3.upload_fileobj(io.BytesIO(body), bucket, key, Config=tc)
                    model[key] = [h]
                    count("multipart")
                except Exception as e:
                    cause, maybe = classify(e)
                    fail("multipart", cause, key)
                    ok.append(h)
            elif r < 0.80:
                try:
                    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    count("get")
                    if sha(got) not in ok:
                        with lock:
                            wrong.append(f"GET {key}: {len(got)} bytes, not what was written")
                except botocore.exceptions.ClientError as e:
                    code = e.response.get("Error", {}).get("Code", "?")
                    if code == "NoSuchKey":
                        count("get")
                        if None not in ok:
                            with lock:
                                wrong.append(f"GET {key}: NoSuchKey for an acknowledged object")
                    else:
                        fail("get", classify(e)[0], key)
                except Exception as e:
                    fail("get", classify(e)[0], key)
            elif r < 0.92:
                try:
                    s3.delete_object(Bucket=bucket, Key=key)
                    model[key] = [None]
                    count("delete")
                except Exception as e:
                    cause, maybe = classify(e)
                    fail("delete", cause, key)
                    if maybe:
                        ok.append(None)
            else:
                try:
                    listed = set()
                    pages = s3.get_paginator("list_objects_v2").paginate(
                        Bucket=bucket, Prefix=f"w{i}/")
                    for page in pages:
                        for o in page.get("Contents", []):
                            listed.add(o["Key"])
                    count("list")
                    for k, acceptable in model.items():
                        if acceptable == [None] and k in listed:
                            with lock:
                                wrong.append(f"LIST shows {k}, deleted and acknowledged")
                        if None not in acceptable and k not in listed:
                            with lock:
                                wrong.append(f"LIST misses {k}, acknowledged")
                except Exception as e:
                    fail("list", classify(e)[0], "")
        except Exception as e:  # the model itself must not break the worker
            with lock:
                wrong.append(f"worker {i}: {type(e).__name__}: {e}")
            raise


def final():
    with open(out_path) as f:
        saved = json.load(f)
    s3 = client()
    bad = []
    checked = 0
    for key, acceptable in saved["model"].items():
        try:
            got = sha(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NoSuchKey":
                got = None
            else:
                bad.append(f"{key}: {classify(e)[0]}")
                continue
        checked += 1
        if got not in acceptable:
            bad.append(f"{key}: holds {'nothing' if got is None else 'other bytes'}")
    json.dump({"checked": checked, "bad": bad}, sys.stdout)


if phase == "final":
    final()
    sys.exit(0)

models = [dict() for _ in range(WORKERS)]
threads = [threading.Thread(target=worker, args=(i, models[i])) for i in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
model = {}
for m in models:
    model.update(m)
with open(out_path, "w") as f:
    json.dump({"counts": counts, "failures": failures, "wrong": wrong, "events": events,
               "model": model}, f)
print(json.dumps({"counts": counts, "failures": failures, "wrong": len(wrong)}))
