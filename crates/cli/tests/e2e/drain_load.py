"""S3 clients for the drain test, through boto3 (a real client, with its standard retries).

Usage:
  drain_load.py ENDPOINT ACCESS SECRET BUCKET fill N OUT.json
      PUT N objects (fill/<i>, mixed sizes: 90 % 1-16 KiB, 9 % to 256 KiB, 1 % to 2 MiB),
      16 at a time;
      OUT.json gets {key: sha256}.
  drain_load.py ENDPOINT ACCESS SECRET BUCKET load STOPFILE OUT.json [FILL.json]
      Until STOPFILE exists: 4 workers PUT (their own keys live/<w>/<j>), GET (fill keys and
      their own, checked byte for byte) and DELETE (their own keys); OUT.json gets the counts,
      every failure, and the model of the live keys {key: sha256 or null}.
  drain_load.py ENDPOINT ACCESS SECRET BUCKET check MODEL.json... OUT.json
      GET every key of the models (16 at a time): each must hold exactly its bytes (null:
      must be absent); OUT.json gets the mismatches.

Contents are a function of (key, generation), so a GET is checked without keeping bodies.
"""

import hashlib
import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore
from botocore.config import Config

endpoint, access, secret, bucket, mode = sys.argv[1:6]
rest = sys.argv[6:]

cfg = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
    signature_version="s3v4",
    max_pool_connections=32,
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


def body(key, gen, size):
    seed = hashlib.sha256(f"{key}/{gen}".encode()).digest()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


def size_of(rng):
    r = rng.random()
    if r < 0.90:
        return rng.randint(1024, 16 * 1024)
    if r < 0.99:
        return rng.randint(16 * 1024, 256 * 1024)
    return rng.randint(256 * 1024, 2 * 1024 * 1024)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def fill(n, out):
    local = threading.local()
    rng = random.Random(16)
    sizes = [size_of(rng) for _ in range(n)]

    def put(i):
        if not hasattr(local, "c"):
            local.c = client()
        key = f"fill/{i:05d}"
        b = body(key, 0, sizes[i])
        local.c.put_object(Bucket=bucket, Key=key, Body=b)
        return key, sha(b)

    t = time.time()
    with ThreadPoolExecutor(16) as ex:
        model = dict(ex.map(put, range(n)))
    json.dump(model, open(out, "w"))
    print(f"fill: {n} objects, {sum(sizes)} bytes in {time.time() - t:.1f} s")


def load(stop, out):
    fill_keys = []
    lock = threading.Lock()
    counts = {"put": 0, "get": 0, "delete": 0}
    failures = []
    model = {}

    def worker(w):
        c = client()
        rng = random.Random(w)
        gens = {}
        while not os.path.exists(stop):
            roll = rng.random()
            try:
                if roll < 0.4:
                    key = f"live/{w}/{rng.randrange(40)}"
                    gen = gens.get(key, 0) + 1
                    b = body(key, gen, size_of(rng))
                    c.put_object(Bucket=bucket, Key=key, Body=b)
                    gens[key] = gen
                    with lock:
                        model[key] = sha(b)
                        counts["put"] += 1
                elif roll < 0.85:
                    with lock:
                        own = [k for k, v in model.items() if v and k.startswith(f"live/{w}/")]
                    if fill_keys and (not own or rng.random() < 0.5):
                        key, want = rng.choice(fill_keys)
                    else:
                        if not own:
                            continue
                        key = rng.choice(own)
                        with lock:
                            want = model[key]
                    got = sha(c.get_object(Bucket=bucket, Key=key)["Body"].read())
                    if got != want:
                        with lock:
                            failures.append(f"GET {key}: wrong bytes")
                    with lock:
                        counts["get"] += 1
                else:
                    key = f"live/{w}/{rng.randrange(40)}"
                    c.delete_object(Bucket=bucket, Key=key)
                    with lock:
                        model[key] = None
                        counts["delete"] += 1
            except Exception as e:  # every failure is reported, none retried beyond boto3's
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
            time.sleep(0.005)

    if len(rest) > 2:
        fill_keys = list(json.load(open(rest[2])).items())
    t = time.time()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    json.dump(
        {"counts": counts, "failures": failures, "model": model, "seconds": time.time() - t},
        open(out, "w"),
    )
    print(f"load: {counts} in {time.time() - t:.1f} s, {len(failures)} failures")


def check(models, out):
    want = {}
    for m in models:
        d = json.load(open(m))
        want.update(d.get("model", d))
    local = threading.local()

    def one(item):
        key, h = item
        if not hasattr(local, "c"):
            local.c = client()
        try:
            got = sha(local.c.get_object(Bucket=bucket, Key=key)["Body"].read())
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None if h is None else f"{key}: missing"
            return f"{key}: {e}"
        if h is None:
            return f"{key}: deleted but still there"
        return None if got == h else f"{key}: wrong bytes"

    with ThreadPoolExecutor(16) as ex:
        bad = [r for r in ex.map(one, want.items()) if r]
    json.dump({"checked": len(want), "bad": bad}, open(out, "w"))
    print(f"check: {len(want)} keys, {len(bad)} wrong")


if mode == "fill":
    fill(int(rest[0]), rest[1])
elif mode == "load":
    load(rest[0], rest[1])
elif mode == "check":
    check(rest[:-1], rest[-1])
else:
    sys.exit(f"unknown mode {mode}")
