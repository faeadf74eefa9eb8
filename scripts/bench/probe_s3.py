#!/usr/bin/env python3
"""Probe an S3 server for the features cutover and the peers rely on.

    probe_s3.py ENDPOINT BUCKET OUT.json

Uses botocore (the copy vendored in the awscli venv). BUCKET must exist and be empty.
Writes a JSON list of checks: {"name", "ok", "detail"}; "ok" is false when
the server behaved unlike AWS S3. Exit status is always 0 unless the probe
itself cannot run; bench.sh decides what a failed check means.
"""

import base64
import hashlib
import json
import sys

try:
    from botocore.config import Config
    from botocore.session import get_session
except ImportError:  # awscli >= 1.44 vendors botocore as awscli.botocore
    from awscli.botocore.config import Config
    from awscli.botocore.session import get_session


def main():
    endpoint, bucket, out = sys.argv[1:4]
    s = get_session()
    c = s.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    ClientError = c.exceptions.ClientError
    checks = []

    def check(name, ok, detail):
        checks.append({"name": name, "ok": bool(ok), "detail": detail})

    def err_text(e):
        r = e.response
        return f"HTTP {r['ResponseMetadata'].get('HTTPStatusCode')} {r['Error'].get('Code')}: {r['Error'].get('Message')}"

    body = b"hello cutover\n"
    sha_b64 = base64.b64encode(hashlib.sha256(body).digest()).decode()
    key = "packs/probe/a.js"

    # 1. PUT with If-None-Match: * and x-amz-checksum-sha256 on a new key.
    try:
        c.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ChecksumSHA256=sha_b64,
                     ContentType="text/javascript", CacheControl="public, max-age=31536000, immutable",
                     Metadata={"sha256": hashlib.sha256(body).hexdigest()})
        check("put If-None-Match:* + x-amz-checksum-sha256 (new key)", True, "200 OK")
    except ClientError as e:
        check("put If-None-Match:* + x-amz-checksum-sha256 (new key)", False, err_text(e))

    # 2. The same conditional PUT on the existing key must be refused with 412.
    try:
        c.put_object(Bucket=bucket, Key=key, Body=b"other bytes", IfNoneMatch="*")
        check("put If-None-Match:* on existing key -> 412", False, "accepted: the object was overwritten")
    except ClientError as e:
        st = e.response["ResponseMetadata"].get("HTTPStatusCode")
        check("put If-None-Match:* on existing key -> 412", st == 412, err_text(e))

    # 3. A wrong x-amz-checksum-sha256 must be refused.
    wrong = base64.b64encode(hashlib.sha256(b"not the body").digest()).decode()
    try:
        c.put_object(Bucket=bucket, Key="packs/probe/b.js", Body=body, ChecksumSHA256=wrong)
        check("put with wrong x-amz-checksum-sha256 -> 400 BadDigest", False, "accepted")
    except ClientError as e:
        check("put with wrong x-amz-checksum-sha256 -> 400 BadDigest", e.response["Error"].get("Code") in ("BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"), err_text(e))

    # 4. HEAD returns user metadata and, with checksum mode, the SHA-256.
    try:
        h = c.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        check("head returns x-amz-meta-sha256", h.get("Metadata", {}).get("sha256") == hashlib.sha256(body).hexdigest(),
              f"Metadata={h.get('Metadata')}")
        check("head (checksum mode) returns x-amz-checksum-sha256", h.get("ChecksumSHA256") == sha_b64,
              f"ChecksumSHA256={h.get('ChecksumSHA256')!r} ETag={h.get('ETag')!r} ContentType={h.get('ContentType')!r} CacheControl={h.get('CacheControl')!r}")
    except ClientError as e:
        check("head returns x-amz-meta-sha256", False, err_text(e))

    # 5. ListObjectsV2 pagination with continuation tokens, and ETags in the listing.
    n = 250
    for i in range(n):
        c.put_object(Bucket=bucket, Key=f"packs/page/{i:04d}.js", Body=b"x" * (i % 7 + 1))
    keys, pages, token, etags = [], 0, None, 0
    try:
        while True:
            kw = {"Bucket": bucket, "Prefix": "packs/page/", "MaxKeys": 100}
            if token:
                kw["ContinuationToken"] = token
            r = c.list_objects_v2(**kw)
            pages += 1
            for o in r.get("Contents", []):
                keys.append(o["Key"])
                if o.get("ETag"):
                    etags += 1
            if not r.get("IsTruncated"):
                break
            token = r.get("NextContinuationToken")
            if not token or pages > 10:
                break
        ok = pages == 3 and len(keys) == n and len(set(keys)) == n and keys == sorted(keys)
        check("ListObjectsV2 pagination (250 keys, MaxKeys=100)", ok, f"{pages} pages, {len(keys)} keys, {len(set(keys))} distinct")
        check("ListObjectsV2 returns ETag per object", etags == len(keys),
              f"{etags} of {len(keys)} listed objects carry an ETag")
    except ClientError as e:
        check("ListObjectsV2 pagination (250 keys, MaxKeys=100)", False, err_text(e))

    # 5b. HEAD of a key that is only a prefix of other keys ("packs/page") must be 404
    # (rclone HEADs its destination path, e.g. "packs", before every copy).
    try:
        c.head_object(Bucket=bucket, Key="packs/page")
        check("HEAD of a key that is a prefix of other keys -> 404", False, "200: reported as an object")
    except ClientError as e:
        st = e.response["ResponseMetadata"].get("HTTPStatusCode")
        check("HEAD of a key that is a prefix of other keys -> 404", st == 404,
              f"HTTP {st}" + ("" if st == 404 else " (a server error: clients retry it)"))

    # 6. Multipart upload with SHA-256 checksums, completed with If-None-Match: *.
    part = b"p" * (5 * 1024 * 1024)
    psha = base64.b64encode(hashlib.sha256(part).digest()).decode()
    mkey = "packs/probe/big.bin"
    try:
        for attempt in (1, 2):
            m = c.create_multipart_upload(Bucket=bucket, Key=mkey, ChecksumAlgorithm="SHA256")
            up = c.upload_part(Bucket=bucket, Key=mkey, UploadId=m["UploadId"], PartNumber=1, Body=part, ChecksumSHA256=psha)
            try:
                c.complete_multipart_upload(Bucket=bucket, Key=mkey, UploadId=m["UploadId"], IfNoneMatch="*",
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": up["ETag"], "ChecksumSHA256": psha}]})
                if attempt == 1:
                    check("multipart (SHA256) complete with If-None-Match:* (new key)", True, "200 OK")
                else:
                    check("multipart complete If-None-Match:* on existing key -> 412", False, "accepted: overwritten")
            except ClientError as e:
                c.abort_multipart_upload(Bucket=bucket, Key=mkey, UploadId=m["UploadId"])
                st = e.response["ResponseMetadata"].get("HTTPStatusCode")
                if attempt == 1:
                    check("multipart (SHA256) complete with If-None-Match:* (new key)", False, err_text(e))
                    break
                check("multipart complete If-None-Match:* on existing key -> 412", st == 412, err_text(e))
    except ClientError as e:
        check("multipart (SHA256) upload", False, err_text(e))

    with open(out, "w") as f:
        json.dump(checks, f, indent=2)
    for ch in checks:
        print(("ok   " if ch["ok"] else "FAIL ") + ch["name"] + " -- " + ch["detail"])


if __name__ == "__main__":
    main()
