"""Access keys other than root, through boto3: each may do what its grants allow, nothing more."""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["ENDPOINT"]
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def client(prefix):
    return boto3.client("s3", endpoint_url=EP, region_name="us-east-1", config=cfg,
                        aws_access_key_id=os.environ[prefix + "_ID"],
                        aws_secret_access_key=os.environ[prefix + "_SECRET"])


checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "OK"


reader, writer = client("READER"), client("WRITER")
check(reader.get_object(Bucket="shared", Key="doc")["Body"].read() == b"shared doc", "reader reads")
check([b["Name"] for b in reader.list_buckets()["Buckets"]] == ["shared"], "reader sees its bucket only")
check(reader.list_objects_v2(Bucket="shared")["KeyCount"] == 1, "reader lists")
check(code(reader.put_object, Bucket="shared", Key="x", Body=b"x") == "AccessDenied", "reader cannot write")
check(code(reader.delete_object, Bucket="shared", Key="doc") == "AccessDenied", "reader cannot delete")
check(code(reader.get_object, Bucket="private", Key="secret") == "AccessDenied", "no grant, no read")
check(code(reader.list_objects_v2, Bucket="private") == "AccessDenied", "no grant, no list")
check(code(reader.create_bucket, Bucket="mine") == "AccessDenied", "only root creates buckets")
check(code(writer.put_object, Bucket="shared", Key="new", Body=b"new") == "OK", "writer writes")
check(writer.get_object(Bucket="shared", Key="new")["Body"].read() == b"new", "writer reads back")
check(code(writer.delete_object, Bucket="shared", Key="new") == "OK", "writer deletes")
check(code(writer.delete_bucket, Bucket="shared") == "AccessDenied", "deleting the bucket needs admin")
check(code(writer.copy_object, Bucket="shared", Key="stolen",
           CopySource={"Bucket": "private", "Key": "secret"}) == "AccessDenied", "copy needs read on the source")
check(code(writer.head_object, Bucket="shared", Key="stolen") in ("404", "NoSuchKey"), "nothing copied")
print(f"access suite: {checks} checks passed")
